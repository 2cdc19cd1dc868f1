"""rlab-compare on fabricated run directories: seed groups, paired tests, outputs, bad input."""

import csv
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from retrieval_lab.compare.cli import main
from retrieval_lab.compare.grouping import group_runs, run_labels
from retrieval_lab.compare.runs import load_runs
from retrieval_lab.compare.significance import paired_tests
from retrieval_lab.run_layout import RunLayout
from tests.conftest import REPO

METRICS = ("ndcg@10", "mrr@10", "recall@10", "recall@100", "map@100")
N_QUERIES = 60
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHROMIUM = Path("/usr/bin/chromium")
INFRASTRUCTURE = ["hydra.sweep.dir=/somewhere", "paths.cache_dir=/cache", "progress=false"]


def make_run(path: Path, overrides: list[str], ndcg: float | None = None,
             per_query: np.ndarray | None = None, seed: int | None = None, status: str = "done",
             error: str | None = None, record: bool = True, curves: bool = False,
             query_ids: list[str] | None = None) -> Path:
    """A run directory as rlab writes it. Overall metrics: ``ndcg`` for ndcg@10 (else the
    per-query mean) and fixed offsets from it for the other metrics."""
    layout = RunLayout(path)
    layout.overrides.parent.mkdir(parents=True)
    layout.overrides.write_text(yaml.safe_dump(overrides + INFRASTRUCTURE))
    metrics = None
    if status == "done":
        if per_query is None:
            per_query = np.full(N_QUERIES, ndcg if ndcg is not None else 0.5)
        per_query = np.round(per_query, 6)
        ndcg = float(per_query.mean()) if ndcg is None else ndcg
        metrics = {m: round(ndcg + 0.05 * i, 6) for i, m in enumerate(METRICS)}
        ids = query_ids or [f"q{i}" for i in range(len(per_query))]
        rows = ["query_id\t" + "\t".join(METRICS)]
        rows += [f"{q}\t" + "\t".join(f"{min(1.0, v + 0.05 * i):.6f}" for i in range(len(METRICS)))
                 for q, v in zip(ids, per_query)]
        layout.metrics_per_query.write_text("\n".join(rows) + "\n")
        layout.metrics.write_text(json.dumps(
            {"dataset": "scifact", "split": "test", "k": 1000, "num_queries": len(ids), "metrics": metrics}))
    if record:
        layout.record.write_text(json.dumps({
            "status": status, "error": error, "seed": seed, "overrides": overrides + INFRASTRUCTURE,
            "job": {"mode": "MULTIRUN", "num": 0, "sweep_dir": str(path.parent)},
            "stages": {"train": {"status": status, "seconds": 1.0, "peak_rss_mb": 100.0}},
            "metrics": metrics}))
    if curves:
        layout.training_log.parent.mkdir()
        layout.training_log.write_text(
            "epoch,lr-AdamW/pg1,step,train/loss,val/ndcg@10,val/recall@100\n"
            "0,,3,,0.60,0.90\n"
            ",0.0005,4,,,\n"
            "1,,4,1.82,,\n"
            "1,,7,,0.65,0.92\n"
            "2,,8,1.41,,\n")
    return path


def scores(rng: np.random.Generator, base: np.ndarray, shift: float, noise: float = 0.02) -> np.ndarray:
    return np.round(np.clip(base + shift + rng.normal(0, noise, base.size), 0, 1), 6)


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """A Hydra multirun: temperature 0.05 (the baseline) and 0.02 (clearly better) x seeds
    1, 2, 3; learning rate 1e-3 at seed 1; and a job that failed."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 0.8, N_QUERIES)
    root = tmp_path / "multirun" / "12-00-00_rlab"
    job = 0
    for temperature, shift in (("0.05", 0.0), ("0.02", 0.1)):
        for seed in (1, 2, 3):
            make_run(root / str(job), [f"objective.temperature={temperature}", f"seed={seed}"],
                     per_query=scores(rng, base, shift), seed=seed, curves=job % 2 == 0)
            job += 1
    make_run(root / str(job), ["objective.temperature=0.05", "optimizer.lr=1e-3", "seed=1"],
             per_query=scores(rng, base, 0.0), seed=1)
    make_run(root / str(job + 1), ["objective.temperature=0.01", "seed=1"], seed=1, status="failed",
             error="ValueError: loss is NaN")
    # A job that died before writing run.json or metrics.json: only Hydra's files.
    make_run(root / str(job + 2), ["objective.temperature=0.2", "seed=1"], status="failed", record=False)
    return root


def group_averages(root: Path, jobs: list[int]) -> np.ndarray:
    tables = [pd.read_csv(RunLayout(root / str(j)).metrics_per_query, sep="\t") for j in jobs]
    return np.mean([t["ndcg@10"].to_numpy() for t in tables], axis=0)


def read_table(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as f:
        return {row["label"]: row for row in csv.DictReader(f)}


# --- seed groups -----------------------------------------------------------------------------

def test_seed_groups_mean_and_sample_std(tmp_path: Path):
    for job, (temperature, seed, ndcg) in enumerate([("0.05", 1, 0.60), ("0.05", 2, 0.62),
                                                     ("0.05", 3, 0.67), ("0.02", 1, 0.70),
                                                     ("0.02", 2, 0.74)]):
        make_run(tmp_path / "sweep" / str(job), [f"objective.temperature={temperature}", f"seed={seed}"],
                 ndcg=ndcg, seed=seed)
    groups = {g.label: g for g in group_runs(load_runs([tmp_path / "sweep"]))}
    assert set(groups) == {"objective.temperature=0.05", "objective.temperature=0.02"}
    a, b = groups["objective.temperature=0.05"], groups["objective.temperature=0.02"]
    assert (a.n, b.n) == (3, 2)
    assert a.mean("ndcg@10") == pytest.approx(0.63, abs=1e-12)
    # deviations -0.03, -0.01, +0.04: sum of squares 0.0026 over n - 1 = 2
    assert a.std("ndcg@10") == pytest.approx(math.sqrt(0.0013), abs=1e-12)
    assert b.mean("ndcg@10") == pytest.approx(0.72, abs=1e-12)
    assert b.std("ndcg@10") == pytest.approx(math.sqrt(0.0008), abs=1e-12)  # 2 * 0.02^2 / 1

    assert main([str(tmp_path / "sweep")]) == 0
    rows = read_table(tmp_path / "sweep" / "compare" / "table.csv")
    assert list(rows) == ["objective.temperature=0.02", "objective.temperature=0.05"]  # best first
    base = rows["objective.temperature=0.05"]
    assert float(base["ndcg@10"]) == pytest.approx(0.63, abs=1e-9)
    assert float(base["ndcg@10_std"]) == pytest.approx(math.sqrt(0.0013), abs=1e-9)
    assert float(base["mrr@10"]) == pytest.approx(0.68, abs=1e-9)
    assert rows["objective.temperature=0.02"]["n"] == "2"
    markdown = (tmp_path / "sweep" / "compare" / "table.md").read_text()
    assert "| objective.temperature=0.05 | 3 | 0.6300 ± 0.0361 |" in markdown


def test_same_seed_runs_are_not_grouped_and_labels_use_differing_overrides(tmp_path: Path):
    make_run(tmp_path / "a", ["index=flat"], ndcg=0.5, seed=42)
    make_run(tmp_path / "b", ["index=flat"], ndcg=0.6, seed=42)
    make_run(tmp_path / "c", ["index=hnsw"], ndcg=0.4, seed=42)
    runs = load_runs([tmp_path / "a", tmp_path / "b", tmp_path / "c"])
    assert all("hydra.sweep.dir" not in r.overrides and "progress" not in r.overrides for r in runs)
    labels = [g.label for g in group_runs(runs)]
    assert labels == ["index=flat [a]", "index=flat [b]", "index=hnsw"]
    assert list(run_labels(runs).values()) == labels


# --- significance ----------------------------------------------------------------------------

def test_overrides_that_leave_the_resolved_config_unchanged_do_not_split_or_label(tmp_path: Path):
    # Seed replicates of the default, one launched with data.name=scifact (the default anyway) and
    # logged to wandb; a BM25 run. Only the model tells them apart.
    config = {"data": {"name": "scifact"}, "model": {"_target_": "BiEncoder"}}
    bm25 = {"data": {"name": "scifact"}, "model": {"_target_": "BM25Index"}}
    for name, overrides, seed, cfg in (("a", [], 1, config), ("b", ["data.name=scifact", "logger=wandb"], 2, config),
                                       ("c", ["index=bm25"], 1, bm25)):
        make_run(tmp_path / "runs" / name, overrides, ndcg=0.5, seed=seed)
        RunLayout(tmp_path / "runs" / name).config.write_text(yaml.safe_dump({**cfg, "seed": seed}))
    groups = group_runs(load_runs([tmp_path / "runs"]))
    assert [(g.label, g.n) for g in groups] == [("runs", 2), ("index=bm25", 1)]  # no override left: the dir


def test_a_choice_the_config_lacks_still_splits_seed_groups(tmp_path: Path):
    # experiment= selects other groups and leaves no key of its own in config.yaml: the two arms
    # must stay apart, each a group of its two seeds.
    for name, experiment, seed in (("0", "a", 42), ("1", "a", 43), ("2", "b", 42), ("3", "b", 43)):
        make_run(tmp_path / "sweep" / name, [f"experiment={experiment}", "trainer.max_epochs=3"], ndcg=0.5, seed=seed)
        RunLayout(tmp_path / "sweep" / name).config.write_text(yaml.safe_dump({"trainer": {"max_epochs": 3},
                                                                                "seed": seed}))
    groups = group_runs(load_runs([tmp_path / "sweep"]))
    assert [(g.label, g.n) for g in groups] == [("experiment=a", 2), ("experiment=b", 2)]


def test_paired_tests_agree_with_scipy():
    rng = np.random.default_rng(1)
    control = rng.uniform(0, 1, 80)
    treatment = np.clip(control + rng.normal(0.02, 0.1, 80), 0, 1)
    ids = [f"q{i}" for i in range(80)]
    shuffled = pd.Series(treatment, index=ids).sample(frac=1, random_state=0)  # pairing is by id
    result = paired_tests(pd.Series(control, index=ids), shuffled, max_p=0.05, n_permutations=10_000)

    assert result.n_queries == 80
    assert result.p_ttest == pytest.approx(stats.ttest_rel(control, treatment).pvalue, rel=1e-9, abs=1e-12)
    reference = stats.permutation_test(
        (control, treatment), lambda x, y, axis: np.mean(x - y, axis=axis), vectorized=True,
        permutation_type="samples", alternative="two-sided", n_resamples=10_000, random_state=0)
    assert 0.05 < reference.pvalue < 0.9  # a p-value in the range where the check means something
    assert result.p_fisher == pytest.approx(reference.pvalue, abs=0.02)


def test_clearly_different_pair_is_significant_and_identical_pair_is_not():
    rng = np.random.default_rng(2)
    ids = [f"q{i}" for i in range(50)]
    control = pd.Series(rng.uniform(0, 0.7, 50), index=ids)
    better = control + 0.2 + rng.normal(0, 0.02, 50)

    different = paired_tests(control, better, max_p=0.05, n_permutations=2000)
    assert different.significant_ttest and different.significant_fisher
    assert different.p_ttest < 1e-10 and different.p_fisher < 0.001

    identical = paired_tests(control, control.copy(), max_p=0.05, n_permutations=2000)
    assert not identical.significant_ttest and not identical.significant_fisher
    assert identical.p_ttest == 1.0 and identical.p_fisher == 1.0

    with pytest.raises(ValueError, match="query sets differ"):
        paired_tests(control, better.drop("q3"), max_p=0.05)


# --- the command -----------------------------------------------------------------------------

def test_cli_writes_table_plots_and_self_contained_html(sweep: Path, tmp_path: Path):
    html = tmp_path / "report" / "report.html"
    assert main([str(sweep), "--baseline", str(sweep / "0"), "--html", str(html),
                 "--permutations", "2000"]) == 0
    out = sweep / "compare"

    rows = read_table(out / "table.csv")
    better, base, lr = "objective.temperature=0.02", "objective.temperature=0.05", \
        "objective.temperature=0.05 optimizer.lr=1e-3"
    assert list(rows)[:3] == [better, base, lr] or list(rows)[:3] == [better, lr, base]
    assert rows[base]["baseline"] == "True" and rows[base]["n"] == "3"
    # The group is tested through its per-query scores averaged over its three seeds.
    expected = stats.ttest_rel(group_averages(sweep, [0, 1, 2]), group_averages(sweep, [3, 4, 5])).pvalue
    assert float(rows[better]["p_ttest"]) == pytest.approx(expected, rel=1e-6)
    assert rows[better]["significant_ttest"] == "True" and rows[better]["significant_fisher"] == "True"
    assert rows[lr]["significant_ttest"] == "False"  # same system as the baseline, one seed
    assert rows["objective.temperature=0.01 seed=1"]["status"] == "failed"
    assert rows["objective.temperature=0.01 seed=1"]["note"] == "ValueError: loss is NaN"
    assert rows["objective.temperature=0.2 seed=1"]["status"] == "failed"
    assert rows["objective.temperature=0.2 seed=1"]["note"] == "no metrics (metrics.json missing)"

    markdown = (out / "table.md").read_text()
    assert f"| {base} (baseline) | 3 |" in markdown
    assert "*†" in next(line for line in markdown.splitlines() if line.startswith(f"| {better} |"))
    assert "Failed or unfinished runs:" in markdown
    assert "objective.temperature=0.01 seed=1: failed (ValueError: loss is NaN)" in markdown

    pngs = ["metric_by_run.png", "training_curves.png", "metric_vs_objective.temperature.png",
            "metric_vs_optimizer.lr.png"]
    for name in pngs:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name
    assert not list(out.glob(".*.tmp"))  # no temp file left behind

    page = html.read_text()
    assert "<table" in page and page.count("data:image/png;base64,") == len(pngs)
    assert "http://" not in page and "https://" not in page
    assert "ValueError: loss is NaN" in page and 'class="failed"' in page
    assert "paired Student t-test" in page and "Fisher randomization" in page  # the legend
    assert "optimizer.lr=1e-3" in page  # the runs' overrides are listed


def test_baseline_by_group_label_with_bonferroni(sweep: Path):
    base = "objective.temperature=0.05"
    assert main([str(sweep), "--baseline", base, "--bonferroni", "--alpha", "0.01",
                 "--permutations", "500", "--out", str(sweep / "by_label")]) == 0
    rows = read_table(sweep / "by_label" / "table.csv")
    assert rows[base]["baseline"] == "True"
    tested = [row for row in rows.values() if row["p_ttest"]]
    assert len(tested) == 2  # temperature 0.02 and the learning-rate run; the failed ones are not
    for row in tested:  # two comparisons: significant at p <= 0.01 / 2
        assert (row["significant_ttest"] == "True") == (float(row["p_ttest"]) <= 0.005)
        assert (row["significant_fisher"] == "True") == (float(row["p_fisher"]) <= 0.005)
    assert "alpha 0.01 / 2 comparisons (Bonferroni) = 0.005" in (sweep / "by_label" / "table.md").read_text()


def test_cli_without_baseline_runs_no_tests_and_skips_runs_without_training_log(tmp_path: Path):
    make_run(tmp_path / "r1", ["model=tiny"], ndcg=0.3, seed=1)
    make_run(tmp_path / "r2", ["model=minilm"], ndcg=0.5, seed=1, record=False)  # no run.json
    out = tmp_path / "out"
    assert main([str(tmp_path / "r1"), str(tmp_path / "r2"), "--out", str(out),
                 "--metric", "recall@100"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["metric_by_run.png", "metric_vs_model.png",
                                                     "table.csv", "table.md"]
    assert "p_ttest" not in read_table(out / "table.csv")["model=tiny"]
    assert list(read_table(out / "table.csv")) == ["model=minilm", "model=tiny"]
    assert "No significance tests" in (out / "table.md").read_text()


def test_query_set_mismatch_is_reported_not_tested(tmp_path: Path):
    make_run(tmp_path / "a", ["x=1"], per_query=np.linspace(0, 1, 10), seed=1)
    make_run(tmp_path / "b", ["x=2"], per_query=np.linspace(0, 1, 10), seed=1,
             query_ids=[f"other{i}" for i in range(10)])
    assert main([str(tmp_path / "a"), str(tmp_path / "b"), "--baseline", str(tmp_path / "a")]) == 0
    row = read_table(tmp_path / "a" / "compare" / "table.csv")["x=2"]
    assert row["p_ttest"] == "" and "query sets differ (10 queries only in the baseline" in row["note"]


def test_console_module_runs(sweep: Path):
    result = subprocess.run([sys.executable, "-m", "retrieval_lab.compare.cli", str(sweep),
                             "--metric", "mrr@10", "--out", str(sweep.parent / "o")],
                            capture_output=True, text=True, timeout=120, cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr
    assert "| objective.temperature=0.02 | 3 |" in result.stdout
    assert "warning: objective.temperature=0.01 seed=1: failed" in result.stderr


# --- bad input -------------------------------------------------------------------------------

def _break_metrics_json(sweep: Path) -> str:
    path = RunLayout(sweep / "2").metrics
    path.write_text('{"metrics": {"ndcg@10": ')
    return str(path)


def _break_metric_value(sweep: Path) -> str:
    RunLayout(sweep / "2").metrics.write_text(json.dumps({"metrics": {"ndcg@10": "high"}}))
    return "'ndcg@10'"


def _break_per_query(sweep: Path) -> str:
    path = RunLayout(sweep / "4").metrics_per_query
    lines = path.read_text().splitlines()
    lines[5] = "q4\tnan?\t0\t0\t0\t0"
    path.write_text("\n".join(lines) + "\n")
    return f"{path}:6"


@pytest.mark.parametrize("case", ["missing path", "no runs", "unknown metric", "baseline elsewhere",
                                  "baseline failed", "bad json", "bad metric value", "bad per-query"])
def test_bad_input_exits_2_naming_the_culprit_and_writes_nothing(case: str, sweep: Path,
                                                                   tmp_path: Path, capsys):
    args, expected = [str(sweep), "--baseline", str(sweep / "0")], None
    if case == "missing path":
        args[0], expected = str(tmp_path / "nope"), str(tmp_path / "nope")
    elif case == "no runs":
        (tmp_path / "empty" / "sub").mkdir(parents=True)
        args[0], expected = str(tmp_path / "empty"), str(tmp_path / "empty")
    elif case == "unknown metric":
        args += ["--metric", "ndcg@5"]
        expected = "--metric ndcg@5"
    elif case == "baseline elsewhere":
        other = make_run(tmp_path / "elsewhere", ["x=1"], ndcg=0.1, seed=1)
        args[2], expected = str(other), f"--baseline {other}"
    elif case == "baseline failed":
        args[2], expected = str(sweep / "7"), f"--baseline {sweep / '7'}"
    elif case == "bad json":
        expected = _break_metrics_json(sweep)
    elif case == "bad metric value":
        expected = _break_metric_value(sweep)
    elif case == "bad per-query":
        expected = _break_per_query(sweep)
    html = tmp_path / "report.html"
    assert main([*args, "--html", str(html)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("rlab-compare: ") and expected in err, err
    assert not (sweep / "compare").exists() and not html.exists()


# --- the report in a browser -----------------------------------------------------------------

@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_html_report_renders_in_headless_chromium(sweep: Path, tmp_path: Path):
    from matplotlib.image import imread

    html = tmp_path / "report.html"
    assert main([str(sweep), "--baseline", str(sweep / "0"), "--html", str(html),
                 "--permutations", "1000"]) == 0
    screenshot = tmp_path / "report.png"
    profile = tempfile.mkdtemp(dir=tmp_path)
    result = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", f"--screenshot={screenshot}",
         "--window-size=1400,2400", html.as_uri()],
        capture_output=True, text=True, timeout=120, env=dict(os.environ, HOME=str(tmp_path)),
        check=False)
    assert screenshot.is_file(), result.stderr[-2000:]
    assert screenshot.read_bytes().startswith(PNG_MAGIC) and screenshot.stat().st_size > 50_000
    pixels = imread(screenshot)
    assert pixels.shape[:2] == (2400, 1400)
    assert pixels[..., :3].std() > 0.05  # not a blank page: text, table and plots drew
    if os.environ.get("RLAB_KEEP_SCREENSHOT"):
        shutil.copy(screenshot, os.environ["RLAB_KEEP_SCREENSHOT"])
