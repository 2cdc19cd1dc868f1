"""rlab-reproduce: OK / OKish / FAIL, the exit status, spec errors, and a tiny end-to-end run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from retrieval_lab.reproduce import (
    FAIL,
    OK,
    OKISH,
    Row,
    SpecError,
    available_specs,
    classify,
    exit_status,
    load_spec,
)
from retrieval_lab.reproduce.cli import _last_line, check_metrics, reproduce, run_precision
from retrieval_lab.reproduce.status import worst
from retrieval_lab.run_layout import RunLayout
from tests.conftest import REPO, write_tiny_beir


@pytest.mark.parametrize(
    ("expected", "actual", "status"),
    [
        (0.6451, 0.6451, OK),
        (0.6451, 0.64514, OK),  # equal at 4 decimals
        (0.6451, 0.64506, OK),
        (0.6451, 0.64515, OKISH),  # |diff| = 0.00005: no longer OK
        (0.6451, 0.6454, OKISH),
        (0.6451, 0.6456, OKISH),  # |diff| = 0.0005 exactly (0.000500000000000056 in floats)
        (0.6451, 0.6446, OKISH),
        (0.6451, 0.64561, FAIL),
        (0.6451, 0.6445, FAIL),
        (0.9250, 0.8, FAIL),
        (0.6451, None, FAIL),
        (0.6451, float("nan"), FAIL),
    ],
)
def test_classify(expected, actual, status):
    assert classify(expected, actual) == status


def test_exit_status_and_worst():
    assert exit_status([OK, OKISH, OK]) == 0
    assert exit_status([OK, FAIL]) == 1
    assert exit_status([]) == 0
    assert worst([OK, OKISH]) == OKISH and worst([OKISH, FAIL, OK]) == FAIL and worst([]) == OK


def test_a_metric_missing_from_the_run_fails():
    row = Row("r", [], {"ndcg@10": 0.5, "recall@100": 0.9})
    checks = check_metrics(row.expected, {"ndcg@10": 0.50002})
    assert [(c.metric, c.status) for c in checks] == [("ndcg@10", OK), ("recall@100", FAIL)]
    assert all(c.status == FAIL for c in check_metrics(row.expected, None))


def test_a_precision_with_its_own_pins_is_checked_against_them():
    row = Row("r", [], {"ndcg@10": 0.6786}, measured_at={"precision": "bf16-mixed"},
              expected_at={"32-true": {"ndcg@10": 0.6700}})
    assert row.pins("32-true") == ({"ndcg@10": 0.6700}, "32-true")
    assert row.pins("bf16-mixed") == ({"ndcg@10": 0.6786}, None)
    assert row.pins(None) == ({"ndcg@10": 0.6786}, None)


def test_the_precision_of_a_run_is_read_from_its_record(tmp_path):
    assert run_precision(tmp_path) is None  # no run.json: the run failed before it
    record = RunLayout(tmp_path).record
    record.write_text(json.dumps({"precision": {}}))
    assert run_precision(tmp_path) is None  # BM25
    encode = {"precision": "32-true", "requested": "32-true", "device": "cpu", "reason": "..."}
    record.write_text(json.dumps({"precision": {"encode": encode}}))
    assert run_precision(tmp_path) == "32-true"
    train = {**encode, "precision": "bf16-mixed", "requested": "auto"}
    record.write_text(json.dumps({"precision": {"train": train, "encode": encode}}))
    assert run_precision(tmp_path) == "bf16-mixed"


def test_the_scifact_spec_is_valid():
    assert "scifact" in available_specs()
    spec = load_spec(REPO / "conf" / "reproduce" / "scifact.yaml")
    rows = {r.name: r for r in spec.rows}
    assert set(rows) == {"minilm_zero_shot", "bm25", "bm25_no_stemmer", "minilm_fine_tune"}
    assert rows["minilm_zero_shot"].expected == {"ndcg@10": 0.6451, "recall@100": 0.925}
    assert rows["minilm_fine_tune"].overrides == [] and "index=bm25" in rows["bm25"].overrides
    # Every row says where its pins were measured; a trained row, at which precision.
    assert all(row.measured_at.get("cpu") for row in spec.rows)
    assert rows["minilm_fine_tune"].measured_at["precision"] in ("bf16-mixed", "32-true")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("rows: []", "rows: expected a non-empty list"),
        ("rows: [{name: a, expected: {ndcg@10: high}}]", "rows[0].expected.ndcg@10: expected a number"),
        ("rows: [{name: a, expected: {}}]", "rows[0].expected: expected a non-empty mapping"),
        ("rows: [{name: a/b, expected: {ndcg@10: 0.5}}]", "rows[0].name: expected a name"),
        ("rows: [{name: a, expect: {ndcg@10: 0.5}}]", "rows[0].expect: unknown key"),
        ("rows: [{name: a, overrides: index=bm25, expected: {ndcg@10: 0.5}}]",
         "rows[0].overrides: expected a list"),
        ("rows: [{name: a, expected: {m: 1}}, {name: a, expected: {m: 1}}]", "duplicate row name 'a'"),
        ("rows: [{name: a, expected: {m: 1}]", "malformed YAML"),
        ("colour: blue", "colour: unknown key"),
        ("rows: [{name: a, expected: {m: 1}, measured_at: {gpu: a100}}]", "rows[0].measured_at.gpu: unknown key"),
        ("rows: [{name: a, expected: {m: 1}, measured_at: 32-true}]", "rows[0].measured_at: expected a mapping"),
        ("rows: [{name: a, expected: {m: 1}, expected_at: {32-true: {m: low}}}]",
         "rows[0].expected_at.32-true.m: expected a number"),
        ("rows: [{name: a, expected: {m: 1}, expected_at: {32-true: {}}}]",
         "rows[0].expected_at.32-true: expected a non-empty mapping"),
    ],
)
def test_a_bad_spec_is_one_line_naming_file_and_key(tmp_path, capsys, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content + "\n")
    with pytest.raises(SpecError, match=str(path)) as info:
        load_spec(path)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert reproduce([str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_an_unknown_name_lists_the_available_ones(capsys):
    assert reproduce(["scifcat"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'scifcat'" in err[0] and "scifact" in err[0].split("available:")[1]


def test_only_an_unknown_row_is_refused(capsys):
    assert reproduce(["scifact", "--only", "bm26", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "bm26" in err and "bm25_no_stemmer" in err


def test_dry_run_prints_each_command_and_runs_nothing(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        ["rlab-reproduce", "scifact", "--dry-run", "--output-dir", str(out), "--only", "bm25",
         "--only", "minilm_zero_shot", "paths.cache_dir=/tmp/c"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and "-m retrieval_lab data.name=scifact" in lines[0]
    assert lines[0].endswith(f"paths.cache_dir=/tmp/c hydra.run.dir={out / 'minilm_zero_shot'}")
    assert "index=bm25 'stages=[index,evaluate]'" in lines[1]
    assert not out.exists()


# Pinned from a first run on this machine (2-core CPU): the random-init tiny model is seeded.
# fp32 encoding on any CPU (encode_precision=auto would pick bf16 where it is native).
TINY_SPEC = {
    "overrides": ["data.name=tiny", "data.download=false", "evaluator.k=20", "encode_precision=32-true"],
    "rows": [
        {"name": "tiny_zero_shot", "overrides": ["model=tiny", "stages=[index,evaluate]"],
         "expected": {"ndcg@10": 0.2461, "recall@10": 0.5}},
        {"name": "bm25", "overrides": ["index=bm25", "stages=[index,evaluate]"],
         "expected": {"ndcg@10": 0.7079, "recall@10": 0.9997}},  # recall@10 is 1.0: OKish
        {"name": "bm25_wrong", "overrides": ["index=bm25", "stages=[index,evaluate]"],
         "expected": {"ndcg@10": 0.7179}},
        {"name": "bm25_trained", "overrides": ["index=bm25"], "expected": {"ndcg@10": 0.7079}},
        # Wrong for any other precision, right for the one it encodes in: its own pin decides.
        {"name": "tiny_pinned_for_fp32", "overrides": ["model=tiny", "stages=[index,evaluate]"],
         "expected": {"ndcg@10": 0.9}, "expected_at": {"32-true": {"ndcg@10": 0.2461}}},
    ],
}


@pytest.fixture(scope="module")
def tiny_reproduction(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    tmp = tmp_path_factory.mktemp("reproduce")
    write_tiny_beir(tmp / "data")
    spec = tmp / "tiny.yaml"
    spec.write_text(yaml.safe_dump(TINY_SPEC, sort_keys=False))
    out = tmp / "out"
    result = subprocess.run(
        [sys.executable, "-m", "retrieval_lab.reproduce", str(spec), "--output-dir", str(out),
         f"paths.cache_dir={tmp / 'cache'}", "progress=false"],
        cwd=REPO, env=dict(os.environ, RLAB_DATA_DIR=str(tmp / "data")),
        capture_output=True, text=True, timeout=900, check=False,
    )
    return result, out


def test_pinned_rows_are_ok_and_a_wrong_pin_fails_with_exit_1(tiny_reproduction):
    result, out = tiny_reproduction
    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    summary = json.loads((out / "reproduce.json").read_text())
    statuses = {(r["name"], c["metric"]): c["status"] for r in summary["rows"] for c in r["checks"]}
    assert statuses == {
        ("tiny_zero_shot", "ndcg@10"): OK, ("tiny_zero_shot", "recall@10"): OK,
        ("bm25", "ndcg@10"): OK, ("bm25", "recall@10"): OKISH,
        ("bm25_wrong", "ndcg@10"): FAIL, ("bm25_trained", "ndcg@10"): FAIL,
        ("tiny_pinned_for_fp32", "ndcg@10"): OK,
    }
    assert summary["status"] == FAIL and summary["counts"] == {OK: 4, OKISH: 1, FAIL: 2}
    rows = {r["name"]: r for r in summary["rows"]}
    assert rows["tiny_zero_shot"]["precision"] == "32-true" and rows["bm25"]["precision"] is None
    assert rows["tiny_pinned_for_fp32"]["pinned_for"] == "32-true" and rows["tiny_zero_shot"]["pinned_for"] is None
    assert summary["finished"] and summary["extra_overrides"][-1] == "progress=false"
    for name in ("tiny_zero_shot", "bm25", "bm25_wrong"):
        assert RunLayout(out / name).metrics.is_file() and RunLayout(out / name).run_file.is_file()
    table = [line.split() for line in result.stdout.splitlines()]
    assert ["bm25", "recall@10", "0.9997", "1.0000", "+0.00030", "OKish", "-"] in table
    assert ["bm25_wrong", "ndcg@10", "0.7179", "0.7079", "-0.00996", "FAIL", "-"] in table
    status_and_precision = [[line[i] for i in (0, 1, 2, 5, 6)] for line in table if len(line) == 7]
    assert ["tiny_zero_shot", "ndcg@10", "0.2461", "OK", "32-true"] in status_and_precision
    assert ["tiny_pinned_for_fp32", "ndcg@10", "0.2461", "OK", "32-true"] in status_and_precision
    assert "tiny_pinned_for_fp32: checked against the pins for 32-true (expected_at)" in result.stdout


def test_a_failed_run_is_a_fail_with_its_last_error_line(tiny_reproduction):
    result, out = tiny_reproduction
    row = next(r for r in json.loads((out / "reproduce.json").read_text())["rows"]
               if r["name"] == "bm25_trained")
    assert row["returncode"] == 2 and row["checks"][0]["actual"] is None
    assert row["error"].startswith("rlab exited 2: rlab: config error: stages:")
    assert "bm25_trained: rlab exited 2: rlab: config error: stages:" in result.stdout


def test_existing_row_directories_are_never_overwritten(tiny_reproduction, capsys):
    _, out = tiny_reproduction
    spec = out.parent / "tiny.yaml"
    assert reproduce([str(spec), "--output-dir", str(out), "--only", "bm25"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_the_error_of_a_failed_run_is_its_last_line_less_hydras_hint(tmp_path):
    log = tmp_path / "row.log"
    log.write_text("Traceback (most recent call last):\n  ...\nKeyError: 'nope'\n\n"
                   "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.\n")
    assert _last_line(log) == "KeyError: 'nope'"
    log.write_text("")
    assert _last_line(log) == "(no output)"
