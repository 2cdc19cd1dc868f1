"""Loggers through the CLI on the tiny dataset: wandb offline, TensorBoard and CSV receive the
config, the training curves, per-stage figures and the final metrics."""

import csv
import json
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from retrieval_lab.run_layout import RunLayout
from tests.conftest import TINY, run_rlab
from tests.wandb_records import records_by_type

RUN = [*TINY, "trainer.max_epochs=1", "trainer.log_every_n_steps=1"]


def test_wandb_offline_run_is_written_and_finished(tiny_beir: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb_data"))
    run_dir = tmp_path / "run"
    result = run_rlab([*RUN, "logger=wandb", "tags=[smoke,tiny]"], run_dir, tiny_beir)
    assert result.returncode == 0, result.stderr[-3000:]
    records = records_by_type(run_dir)
    run = records["run"][0]
    assert run.project == "retrieval_lab" and list(run.tags) == ["smoke", "tiny"] and run.run_group == ""
    config = {item.key: json.loads(item.value_json) for item in records["config"][0].update}
    assert config["seed"] == 42 and config["model"]["random_init"] is True
    logged = {item.nested_key[0] if item.nested_key else item.key
              for history in records["history"] for item in history.item}
    assert {"train/loss", "stage/train/seconds", "stage/index/peak_rss_mb", "test/ndcg@10"} <= logged
    (artifact,) = records["artifact"]
    assert {entry.path for entry in artifact.manifest.contents} == {
        "run.trec", "metrics.json", "metrics_per_query.tsv", "run.json"}
    assert records["exit"][0].exit_code == 0


def test_tensorboard_and_csv_get_curves_stage_figures_and_metrics(tiny_beir: Path, tmp_path: Path):
    run_dir = tmp_path / "run"
    result = run_rlab([*RUN, "logger=[csv,tensorboard]"], run_dir, tiny_beir)
    assert result.returncode == 0, result.stderr[-3000:]
    layout = RunLayout(run_dir)
    metrics = json.loads(layout.metrics.read_text())["metrics"]
    # The trainer closes its event file after fit; the later stages' figures go to a second one.
    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    assert {"train/loss", "stage/train/seconds", "stage/evaluate/seconds", "test/ndcg@10"} <= set(events.Tags()["scalars"])
    ndcg = events.Scalars("test/ndcg@10")
    assert abs(ndcg[-1].value - metrics["ndcg@10"]) < 1e-6
    with open(layout.training_log) as handle:
        rows = list(csv.DictReader(handle))
    final = [r for r in rows if r.get("test/ndcg@10")]
    assert len(final) == 1 and abs(float(final[0]["test/ndcg@10"]) - metrics["ndcg@10"]) < 1e-6
    assert any(r.get("stage/index/seconds") for r in rows)
    assert (run_dir / "csv" / "hparams.yaml").is_file()
