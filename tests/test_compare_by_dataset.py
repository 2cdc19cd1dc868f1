"""rlab-compare --by-dataset on hand-written single runs, benchmark runs and MTEB results files."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import retrieval_lab
from retrieval_lab.compare import by_dataset
from retrieval_lab.compare.cli import main
from retrieval_lab.compare.errors import CompareError
from retrieval_lab.compare.references import load_reference, ranx_metric, task_configs, task_map
from retrieval_lab.compare.significance import paired_tests

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REVISION = "8b3219a92973c328a8e22fadcfa821b5dc75636a"  # an MTEB model-revision directory's name
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# The data configs' mteb blocks these tests map through (written as conf/data/*.yaml in a tmp conf).
TASKS = {"SciFact": "scifact", "ArguAna": "arguana",
         "CQADupstackAndroidRetrieval": "cqadupstack/android",
         "CQADupstackEnglishRetrieval": "cqadupstack/english"}
N = 20  # queries of scifact and arguana
M = 10  # queries of each CQADupStack forum


def _write_eval(path: Path, dataset: str, ndcg: np.ndarray) -> dict[str, float]:
    """metrics.json, metrics_per_query.tsv and run.trec of one dataset's evaluation; recall@100 is
    ndcg + 0.1 (capped at 1) on every query."""
    path.mkdir(parents=True, exist_ok=True)
    ndcg = np.round(ndcg, 6)
    recall = np.minimum(1.0, ndcg + 0.1)
    ids = [f"{dataset.replace('/', '-')}-q{i}" for i in range(len(ndcg))]
    rows = ["query_id\tndcg@10\trecall@100"] + [f"{q}\t{a:.6f}\t{b:.6f}" for q, a, b in zip(ids, ndcg, recall)]
    (path / "metrics_per_query.tsv").write_text("\n".join(rows) + "\n")
    (path / "run.trec").write_text("".join(f"{q} Q0 d1 1 1.0 rlab\n" for q in ids))
    metrics = {"ndcg@10": float(ndcg.mean()), "recall@100": float(recall.mean())}
    (path / "metrics.json").write_text(json.dumps(
        {"dataset": dataset, "split": "test", "k": 1000, "num_queries": len(ids), "metrics": metrics}))
    return metrics


def _write_record(path: Path, overrides: list[str], seed: int, status: str = "done",
                  metrics: dict[str, float] | None = None) -> None:
    """run.json (its metrics: a single run's, a benchmark's mean, as the pipeline records them) and config.yaml."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "run.json").write_text(json.dumps({"status": status, "error": None, "seed": seed, "metrics": metrics,
                                               "overrides": overrides + ["progress=false"]}))
    model = next((o.split("=", 1)[1] for o in overrides if o.startswith("model=")), "default")
    (path / "config.yaml").write_text(yaml.safe_dump({"model": {"name": model}, "seed": seed}))


def make_single(path: Path, overrides: list[str], dataset: str, ndcg: np.ndarray, seed: int = 42) -> Path:
    _write_record(path, overrides, seed, metrics=_write_eval(path, dataset, ndcg))
    return path


def make_benchmark(path: Path, overrides: list[str], datasets: dict[str, np.ndarray], seed: int = 42,
                   skipped: dict[str, str] | None = None) -> Path:
    """A benchmark run as benchmark.py writes it: each dataset's files in <run>/<dataset>/,
    benchmark.json with their metrics, the CQADupStack group and the BEIR mean."""
    entries, groups = {}, {}
    for name, ndcg in datasets.items():
        metrics = _write_eval(path / name, name, ndcg)
        entry = {"dir": name, "split": "test", "num_queries": len(ndcg), "metrics": metrics}
        if name.startswith("cqadupstack/"):
            entry["group"] = "cqadupstack"
            groups.setdefault("cqadupstack", []).append(name)
        entries[name] = entry
    group_metrics = {g: {m: float(np.mean([entries[d]["metrics"][m] for d in members]))
                         for m in ("ndcg@10", "recall@100")} for g, members in groups.items()}
    top = [d for d in entries if "group" not in entries[d]] + list(groups)
    value = {**{d: entries[d]["metrics"] for d in entries}, **group_metrics}
    mean = {m: float(np.mean([value[u][m] for u in top])) for m in ("ndcg@10", "recall@100")}
    (path / "benchmark.json").write_text(json.dumps({
        "datasets": entries,
        "groups": {g: {"datasets": members, "metrics": group_metrics[g]} for g, members in groups.items()},
        "mean": mean, "mean_over": top, "skipped": skipped or {}}))
    _write_record(path, overrides, seed, metrics=mean)
    return path


def mteb_file(path: Path, task_name: str, ndcg: float, revision: str = "rev", split: str = "test",
              **extra) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    scores = {"ndcg_at_10": ndcg, "recall_at_100": min(1.0, ndcg + 0.2), "mrr_at_10": ndcg - 0.01,
              "map_at_100": ndcg - 0.05, "main_score": ndcg, "hf_subset": "default", "languages": ["eng-Latn"]}
    path.write_text(json.dumps({"dataset_revision": revision, "task_name": task_name, "mteb_version": "2.26.24",
                                "evaluation_time": 12.5, "kg_co2_emissions": None,
                                "scores": {split: [scores]}, **extra}))
    return path


@pytest.fixture
def conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A conf tree whose data configs map TASKS (nested cqadupstack/ configs included), and the
    CLI pointed at it."""
    root = tmp_path / "conf"
    (root / "data").mkdir(parents=True)
    (root / "data" / "_beir.yaml").write_text("mteb: null\nroot: data\n")
    for task, name in TASKS.items():
        config = root / "data" / f"{name}.yaml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(yaml.safe_dump({"defaults": ["_beir", "_self_"], "name": name,
                                          "mteb": {"task_name": task, "revision": "rev", "split": "test"}}))
    monkeypatch.setattr(retrieval_lab, "CONF_DIR", root)
    return root


def _base(n: int, low: float, high: float) -> np.ndarray:
    return np.linspace(low, high, n)


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, Path]:
    """Baseline benchmark B0; B1 better than B0 on every scifact query, identical on arguana,
    worse on every android query, one query better on english; S, a single scifact run worse than
    B0 on every query; an MTEB results directory for MiniLM (SciFact, Android, an unmapped STS12)."""
    steps = 0.05 + 0.01 * (np.arange(N) % 5)  # differences that vary, all of one sign
    b0 = {"scifact": _base(N, 0.2, 0.8), "arguana": _base(N, 0.1, 0.6),
          "cqadupstack/android": _base(M, 0.3, 0.7), "cqadupstack/english": _base(M, 0.1, 0.3)}
    english = b0["cqadupstack/english"].copy()
    english[3] += 0.2
    b1 = {"scifact": b0["scifact"] + steps, "arguana": b0["arguana"].copy(),
          "cqadupstack/android": b0["cqadupstack/android"] - 0.1 - 0.01 * (np.arange(M) % 3),
          "cqadupstack/english": english}
    root = tmp_path / "outputs"
    paths = {
        "B0": make_benchmark(root / "b0", ["benchmark=beir", "model=zero_shot"], b0,
                             skipped={"fiqa": "no data under RLAB_DATA_DIR"}),
        "B1": make_benchmark(root / "b1", ["benchmark=beir", "model=finetuned"], b1),
        "S": make_single(root / "s", ["model=scifact_only"], "scifact", b0["scifact"] - steps),
    }
    results = tmp_path / "results" / "sentence-transformers__all-MiniLM-L6-v2" / REVISION
    mteb_file(results / "SciFact.json", "SciFact", 0.64508)
    mteb_file(results / "CQADupstackAndroidRetrieval.json", "CQADupstackAndroidRetrieval", 0.4)
    mteb_file(results / "STS12.json", "STS12", 0.7)  # no data config maps it: left out
    (results / "model_meta.json").write_text(json.dumps({"name": MODEL, "revision": REVISION}))
    paths["MTEB"] = results
    paths["b0_values"] = b0  # type: ignore[assignment]
    paths["b1_values"] = b1  # type: ignore[assignment]
    return paths


def read_csv(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    with open(path, newline="") as f:
        return {(row["label"], row["column"]): row for row in csv.DictReader(f)}


def markdown_rows(text: str) -> dict[str, list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(header, cells))
    return rows


B0, B1, S = "benchmark=beir model=zero_shot", "benchmark=beir model=finetuned", "model=scifact_only"
COLUMNS = ["scifact", "arguana", "cqadupstack/android", "cqadupstack/english", "cqadupstack", "mean"]


def test_table_means_tests_reference_and_plot(runs, conf: Path, tmp_path: Path, capsys):
    out = tmp_path / "cmp"
    code = main([str(runs["B0"]), str(runs["B1"]), str(runs["S"]), "--by-dataset", "--baseline", str(runs["B0"]),
                 "--reference", str(runs["MTEB"]), "--permutations", "2000", "--out", str(out),
                 "--html", str(tmp_path / "report.html")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    b0, b1 = runs["b0_values"], runs["b1_values"]

    markdown = (out / by_dataset.TABLE_MD).read_text()
    assert markdown in captured.out
    header = [c.strip() for c in markdown.splitlines()[0].strip("|").split("|")]
    assert header == ["run", "n", *COLUMNS]  # the first benchmark's order, the group after its members
    rows = markdown_rows(markdown)
    assert list(rows) == [f"{B0} (baseline)", B1, S, f"{MODEL} (MTEB)"]

    # The baseline: each dataset's mean; the mean counts CQADupStack once, as the mean of its two.
    base = rows[f"{B0} (baseline)"]
    cqa = (b0["cqadupstack/android"].mean() + b0["cqadupstack/english"].mean()) / 2
    mean = (b0["scifact"].mean() + b0["arguana"].mean() + cqa) / 3
    assert base["scifact"] == f"{b0['scifact'].mean():.4f}"
    assert base["cqadupstack"] == f"{cqa:.4f}"
    assert base["mean"] == f"{mean:.4f}"
    # not the mean over the four datasets, which weighs CQADupStack twice
    assert f"{mean:.4f}" != f"{np.mean([v.mean() for v in b0.values()]):.4f}"

    # B1: better on every scifact query and worse on every android one: both tests mark them;
    # identical on arguana and one query apart on english: no mark.
    better = rows[B1]
    assert better["scifact"] == f"{np.round(b1['scifact'], 6).mean():.4f} *†"
    assert better["cqadupstack/android"] == f"{np.round(b1['cqadupstack/android'], 6).mean():.4f} *†"
    assert better["arguana"] == f"{b0['arguana'].mean():.4f}"
    assert better["cqadupstack/english"] == f"{np.round(b1['cqadupstack/english'], 6).mean():.4f}"
    assert "*" not in better["cqadupstack"] and "*" not in better["mean"]  # groups and means untested

    # S: one dataset, worse on every query (marked); its mean is its one dataset.
    single = rows[S]
    assert single["scifact"].endswith(" *†")
    assert [single[c] for c in COLUMNS[1:5]] == ["–"] * 4
    assert single["mean"] == single["scifact"].split()[0]

    # The MTEB reference: its two mapped tasks, no tests, the group from its one forum.
    ref = rows[f"{MODEL} (MTEB)"]
    assert (ref["scifact"], ref["cqadupstack/android"], ref["cqadupstack"]) == ("0.6451", "0.4000", "0.4000")
    assert ref["arguana"] == "–" and ref["mean"] == f"{(0.64508 + 0.4) / 2:.4f}"
    assert "not comparable" in markdown and f"{S} lacks arguana, cqadupstack" in markdown
    assert "Bonferroni" not in markdown and "p <= alpha 0.05" in markdown
    assert "b0: skipped fiqa (no data under RLAB_DATA_DIR)" in markdown
    assert "STS12" in captured.err  # left out of the reference, said once
    assert "not comparable" in captured.err

    table = read_csv(out / by_dataset.TABLE_CSV)
    assert float(table[(B0, "mean")]["value"]) == pytest.approx(mean, abs=1e-9)
    assert table[(B0, "mean")]["over"] == "scifact;arguana;cqadupstack"
    assert float(table[(B1, "scifact")]["p_ttest"]) < 1e-6
    assert table[(B1, "scifact")]["significant_fisher"] == "True"
    assert float(table[(B1, "arguana")]["p_ttest"]) == 1.0 and float(table[(B1, "arguana")]["p_fisher"]) == 1.0
    assert float(table[(B1, "cqadupstack/english")]["p_ttest"]) == pytest.approx(0.3434, abs=1e-3)
    assert table[(B1, "cqadupstack/english")]["significant_ttest"] == "False"
    assert float(table[(B1, "cqadupstack/english")]["p_fisher"]) == 1.0  # every swap ties: see below
    assert table[(MODEL, "scifact")]["kind"] == "reference" and table[(MODEL, "scifact")]["p_ttest"] == ""
    assert table[(B1, "cqadupstack")]["column_kind"] == "group"
    assert table[(B1, "cqadupstack")]["over"] == "cqadupstack/android;cqadupstack/english"
    assert table[(B1, "scifact")]["paths"] == str(runs["B1"].resolve() / "scifact")

    png = (out / by_dataset.PLOT).read_bytes()
    assert png.startswith(PNG_MAGIC)
    html = (tmp_path / "report.html").read_text()
    assert "Results by dataset (ndcg@10)" in html and "data:image/png;base64," in html and MODEL in html
    assert "Failed or unfinished" not in html  # benchmark runs are finished runs, listed with their mean
    assert f'<td class="text">{mean:.4f}</td>' in html


def test_fisher_counts_ties_as_reaching_the_observed_difference():
    # One query apart: every swap gives the same |mean difference|, so p = 1. Ranx's numba test
    # compares the two summed in different orders and gave p = 0 here (a spurious "†").
    control = pd.Series(np.round(np.linspace(0.1, 0.3, 10), 6), index=[f"q{i}" for i in range(10)])
    treatment = control.copy()
    treatment["q3"] += 0.2
    result = paired_tests(control, treatment, max_p=0.05, n_permutations=2000)
    assert result.p_fisher == 1.0 and not result.significant_fisher
    # Two queries apart by 0.2 and 0.1: |mean| 0.03 when both keep or both swap, half the time.
    treatment["q5"] += 0.1
    assert paired_tests(control, treatment, max_p=0.05, n_permutations=4000).p_fisher == pytest.approx(0.5, abs=0.03)


def test_bonferroni_divides_by_the_rows_tested_on_each_dataset(runs, tmp_path: Path):
    # The english difference is one query of 10 (p 0.34): no correction makes it significant; the
    # scifact ones stay significant at 0.05 / 2 (B1 and S are tested there, B1 alone on the others).
    out = tmp_path / "cmp"
    assert main([str(runs["B0"]), str(runs["B1"]), str(runs["S"]), "--by-dataset", "--baseline", B0,
                 "--bonferroni", "--permutations", "2000", "--out", str(out)]) == 0
    table = read_csv(out / by_dataset.TABLE_CSV)
    assert float(table[(B1, "scifact")]["threshold"]) == pytest.approx(0.025)
    assert float(table[(B1, "arguana")]["threshold"]) == pytest.approx(0.05)
    assert table[(S, "scifact")]["significant_ttest"] == "True"
    markdown = (out / by_dataset.TABLE_MD).read_text()
    assert "alpha 0.05 / m (Bonferroni), m the rows tested on the dataset (1, 2)" in markdown


def test_seed_replicates_are_one_row_and_other_metric(tmp_path: Path):
    # Two seeds of one single-run config: one row, mean ± std; --metric picks recall@100.
    a = make_single(tmp_path / "sweep" / "0", ["model=x", "seed=1"], "nfcorpus", np.full(8, 0.30), seed=1)
    make_single(tmp_path / "sweep" / "1", ["model=x", "seed=2"], "nfcorpus", np.full(8, 0.40), seed=2)
    make_single(tmp_path / "sweep" / "2", ["model=y", "seed=1"], "scifact", np.full(8, 0.50), seed=1)
    _write_record(tmp_path / "sweep" / "3", ["model=z", "seed=1"], 1, status="failed")  # listed apart
    out = tmp_path / "cmp"
    assert main([str(tmp_path / "sweep"), "--by-dataset", "--metric", "recall@100", "--out", str(out)]) == 0
    rows = markdown_rows((out / by_dataset.TABLE_MD).read_text())
    assert rows["model=x"]["n"] == "2"
    assert rows["model=x"]["nfcorpus"] == f"0.4500 ± {math.sqrt(0.005):.4f}"  # recall = ndcg + 0.1
    assert rows["model=x"]["scifact"] == "–" and rows["model=y"]["scifact"] == "0.6000"
    markdown = (out / by_dataset.TABLE_MD).read_text()
    assert "No significance tests (no --baseline given)." in markdown
    assert "model=x lacks scifact" in markdown
    assert "Failed or unfinished runs:" in markdown and "- model=z seed=1: failed" in markdown
    assert a.is_dir()


def test_mteb_files_load_in_mteb_and_map_through_the_data_configs(runs, conf: Path, tmp_path: Path):
    import mteb

    for name in ("SciFact.json", "CQADupstackAndroidRetrieval.json"):
        result = mteb.TaskResult.from_disk(runs["MTEB"] / name)
        assert result.task_name == name.removesuffix(".json")
        assert result.scores["test"][0]["ndcg_at_10"] == (0.64508 if name == "SciFact.json" else 0.4)

    tasks = task_configs()  # the conf fixture's data configs, nested cqadupstack/ ones included
    assert {t: [c.name for c in cs] for t, cs in tasks.items()} == {t: [n] for t, n in TASKS.items()}
    assert tasks["CQADupstackAndroidRetrieval"][0].config == conf / "data" / "cqadupstack" / "android.yaml"
    ref = load_reference(runs["MTEB"], tasks)
    assert ref.label == MODEL
    assert ref.datasets["scifact"] == {"ndcg@10": 0.64508, "recall@100": 0.84508, "mrr@10": pytest.approx(0.63508),
                                       "map@100": pytest.approx(0.59508)}
    assert set(ref.datasets) == {"scifact", "cqadupstack/android"}
    # the same from a small dict; one file is one dataset, labelled by its model directory
    single = load_reference(runs["MTEB"] / "SciFact.json", task_map({"SciFact": "scifact"}))
    assert single.label == MODEL and set(single.datasets) == {"scifact"}
    (runs["MTEB"] / "model_meta.json").unlink()
    assert load_reference(runs["MTEB"].parent, tasks).label == "sentence-transformers__all-MiniLM-L6-v2"
    loose = mteb_file(tmp_path / "loose" / "SciFact.json", "SciFact", 0.6)
    assert load_reference(loose, tasks).label == "SciFact"
    assert ranx_metric("ndcg_at_10") == "ndcg@10" and ranx_metric("main_score") is None


def test_the_project_data_configs_map_mteb_tasks():
    tasks = task_configs()  # the real conf/data/**/*.yaml
    assert [c.name for c in tasks["SciFact"]] == ["scifact"]
    assert [c.name for c in tasks["CQADupstackAndroidRetrieval"]] == ["cqadupstack/android"]
    assert tasks["SciFact"][0].split == "test"


def test_a_revision_other_than_the_configs_is_warned(runs, tmp_path: Path):
    file = mteb_file(tmp_path / "r" / "SciFact.json", "SciFact", 0.6, revision="other")
    ref = load_reference(file, task_map({"SciFact": {"name": "scifact", "revision": "d56462d"}}))
    assert ref.warnings and "revision other, not d56462d" in ref.warnings[0]


def test_a_benchmark_mean_other_than_its_datasets_is_warned(runs, tmp_path: Path, capsys):
    path = runs["B0"] / "benchmark.json"
    data = json.loads(path.read_text())
    data["mean"]["ndcg@10"] = float(np.mean([e["metrics"]["ndcg@10"] for e in data["datasets"].values()]))
    path.write_text(json.dumps(data))  # the mean over the four datasets, CQADupStack weighed twice
    assert main([str(runs["B0"]), "--by-dataset", "--out", str(tmp_path / "cmp")]) == 0
    assert f"{path}: its mean ndcg@10 0.3875 is not the mean of its datasets here, 0.4000" in capsys.readouterr().err


def _bad_run_dir(runs, tmp_path: Path) -> tuple[list[str], str]:
    broken = tmp_path / "outputs" / "nometrics"
    _write_record(broken, ["model=broken"], 42)  # finished, but neither metrics.json nor benchmark.json
    return [str(runs["B0"]), str(broken), "--by-dataset"], f"{broken}: a finished run with neither metrics.json nor benchmark.json"


def _not_mteb(runs, tmp_path: Path) -> tuple[list[str], str]:
    file = tmp_path / "junk" / "SciFact.json"
    file.parent.mkdir()
    file.write_text(json.dumps({"scores": {"test": [{"ndcg_at_10": 0.5}]}}))  # no task_name
    return [str(runs["B0"]), "--by-dataset", "--reference", str(file)], f"{file}: not an MTEB results file"


def _unmapped_task(runs, tmp_path: Path) -> tuple[list[str], str]:
    file = mteb_file(tmp_path / "nfc" / "NFCorpus.json", "NFCorpus", 0.3)
    return ([str(runs["B0"]), "--by-dataset", "--reference", str(file)],
            f"{file}: MTEB task 'NFCorpus' is mapped by no data config")


def _missing_split(runs, tmp_path: Path) -> tuple[list[str], str]:
    file = mteb_file(tmp_path / "dev" / "SciFact.json", "SciFact", 0.3, split="dev")
    return ([str(runs["B0"]), "--by-dataset", "--reference", str(file)],
            f"{file}: no scores for split 'test'")


def _reference_baseline(runs, tmp_path: Path) -> tuple[list[str], str]:
    return ([str(runs["B0"]), "--by-dataset", "--reference", str(runs["MTEB"]), "--baseline", MODEL],
            f"--baseline {MODEL}: an MTEB reference has no per-query scores")


def _bad_benchmark(runs, tmp_path: Path) -> tuple[list[str], str]:
    path = runs["B1"] / "benchmark.json"
    data = json.loads(path.read_text())
    del data["datasets"]["arguana"]["dir"]
    path.write_text(json.dumps(data))
    return [str(runs["B1"]), "--by-dataset"], f"{path}: datasets.arguana needs 'dir'"


def _unknown_metric(runs, tmp_path: Path) -> tuple[list[str], str]:
    return [str(runs["B0"]), "--by-dataset", "--metric", "ndcg@5"], "--metric ndcg@5: no dataset of any row reports it"


@pytest.mark.parametrize("case", [_bad_run_dir, _not_mteb, _unmapped_task, _missing_split, _reference_baseline,
                                  _bad_benchmark, _unknown_metric])
def test_bad_input_exits_2_naming_the_file_and_writes_nothing(case, runs, conf: Path, tmp_path: Path, capsys):
    argv, expected = case(runs, tmp_path)
    out = tmp_path / "cmp"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("rlab-compare: ") and expected in err, err
    assert not out.exists()


def test_reference_needs_by_dataset(runs, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(runs["B0"]), "--reference", str(runs["MTEB"])])
    assert exit_info.value.code == 2 and "--reference needs --by-dataset" in capsys.readouterr().err


def test_plain_compare_points_a_benchmark_run_to_by_dataset(runs, tmp_path: Path, capsys):
    record = json.loads((runs["B0"] / "run.json").read_text())
    (runs["B0"] / "run.json").write_text(json.dumps({**record, "metrics": None}))  # no mean recorded
    assert main([str(runs["B0"]), str(runs["S"]), "--out", str(tmp_path / "cmp")]) == 0
    assert "compare it with --by-dataset" in (tmp_path / "cmp" / "table.md").read_text()


def test_mixed_group_names_are_an_error(runs):
    path = runs["B1"] / "benchmark.json"
    data = json.loads(path.read_text())
    data["datasets"]["cqadupstack/english"]["group"] = "forums"
    path.write_text(json.dumps(data))
    args = by_dataset_args([runs["B0"], runs["B1"]])
    with pytest.raises(CompareError, match="is in group 'forums', but in 'cqadupstack'"):
        by_dataset.build(args)


def by_dataset_args(paths: list[Path]):
    from retrieval_lab.compare.cli import parse_args
    return parse_args([*map(str, paths), "--by-dataset"])
