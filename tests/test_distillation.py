"""Distillation end to end on the tiny corpus: the teach stage scores the training pairs once,
the scores reach the losses, each term of a weighted sum is logged, and bad set-ups fail early."""

import csv
import json
from pathlib import Path

from tests.conftest import run_rlab

DISTIL = ["miner=bm25", "miner.num_negatives=2", "teacher=bm25", "objective=infonce_margin_mse"]


def test_teacher_scores_are_computed_once_and_every_term_is_logged(tmp_path: Path, tiny_beir: Path, tiny_args):
    first = run_rlab([*tiny_args, *DISTIL], tmp_path / "first", tiny_beir)
    assert first.returncode == 0, first.stderr[-3000:]
    record = json.loads((tmp_path / "first" / "run.json").read_text())
    assert list(record["stages"]) == ["mine", "teach", "train", "index", "evaluate"]
    teacher = record["teacher"]
    assert teacher["cache_hit"] is False and teacher["teacher"]["kind"] == "bm25"
    assert teacher["pairs"] == 30 * 3 and Path(teacher["file"]).is_file()  # positive + 2 negatives each
    with open(tmp_path / "first" / "csv" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    logged = [r for r in rows if r.get("train/margin_mse")]
    assert logged and all(float(r["train/margin_mse"]) >= 0 and float(r["train/infonce"]) > 0 for r in logged)
    second = run_rlab([*tiny_args, *DISTIL, "objective.terms.margin_mse.weight=0.5"], tmp_path / "second", tiny_beir)
    assert second.returncode == 0, second.stderr[-3000:]
    again = json.loads((tmp_path / "second" / "run.json").read_text())["teacher"]
    assert again["cache_hit"] is True and again["file"] == teacher["file"]


def test_a_teacher_without_negatives_fails_before_any_work(tmp_path: Path, tiny_beir: Path, tiny_args):
    result = run_rlab([*tiny_args, "teacher=bm25", "objective=margin_mse"], tmp_path / "run", tiny_beir)
    assert result.returncode == 2 and "teacher: a teacher scores each query's positive" in result.stderr
    assert not (tmp_path / "run" / "run.json").exists()
