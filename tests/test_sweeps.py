"""Sweeps through the CLI on the tiny dataset: grid sweeps on each launcher, a failing job that
does not stop its sweep, an Optuna search that gets each job's metric, the SLURM launcher config."""

import json
from pathlib import Path

import optuna
import pytest
import yaml
from hydra.utils import instantiate

from retrieval_lab.run_layout import SWEEP_SUMMARY_FILE, RunLayout
from tests.conftest import TINY, compose_config, run_rlab
from tests.wandb_records import records_by_type

# One epoch is enough: these tests are about the sweep machinery, not the model.
SWEEP = [*TINY, "trainer.max_epochs=1"]


def _records(sweep_dir: Path) -> list[dict]:
    """The jobs' run records, in job order."""
    jobs = sorted((p for p in sweep_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    return [json.loads(RunLayout(job).record.read_text()) for job in jobs]


@pytest.mark.parametrize("launcher", [
    [],
    ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    ["hydra/launcher=submitit_local"],
], ids=["basic", "joblib", "submitit_local"])
def test_two_job_sweep_writes_two_complete_run_records(tiny_beir: Path, tmp_path: Path, launcher):
    sweep_dir = tmp_path / "sweep"
    result = run_rlab([*SWEEP, "seed=1,2", *launcher], sweep_dir, tiny_beir, timeout=600, multirun=True)
    assert result.returncode == 0, result.stderr[-3000:]
    records = _records(sweep_dir)
    assert [r["seed"] for r in records] == [1, 2]
    for num, record in enumerate(records):
        layout = RunLayout(sweep_dir / str(num))
        assert record["status"] == "done" and f"seed={num + 1}" in record["overrides"]
        assert record["job"] == {"mode": "MULTIRUN", "num": num, "sweep_dir": str(sweep_dir)}
        assert list(record["stages"]) == ["train", "index", "evaluate"]
        assert record["metrics"] == json.loads(layout.metrics.read_text())["metrics"]
        assert record["git"]["commit"] and record["versions"]["torch"] and record["data"]["sha256"]
        for path in [layout.config, layout.metrics_per_query, layout.run_file, layout.log, layout.training_log]:
            assert path.is_file(), path
    summary = json.loads((sweep_dir / SWEEP_SUMMARY_FILE).read_text())
    assert [job["status"] for job in summary["jobs"]] == ["done", "done"]
    assert [job["ndcg@10"] for job in summary["jobs"]] == [r["metrics"]["ndcg@10"] for r in records]


def test_a_failing_job_is_recorded_and_the_sweep_goes_on(tiny_beir: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb_data"))
    sweep_dir = tmp_path / "sweep"
    # AdamW refuses a negative learning rate when training starts: job 0 fails mid-run, job 1 runs.
    result = run_rlab([*SWEEP, "optimizer.lr=-1.0,1e-3", "logger=[csv,wandb]"], sweep_dir, tiny_beir,
                      timeout=600, multirun=True)
    assert result.returncode == 1
    assert "rlab: 1 job(s) of the sweep failed: 0" in result.stderr
    failed, done = _records(sweep_dir)
    assert failed["status"] == "failed" and "Invalid learning rate" in failed["error"]
    assert failed["stages"]["train"]["status"] == "failed" and failed["metrics"] == {}
    assert not RunLayout(sweep_dir / "0").metrics.exists()
    assert "Traceback" in RunLayout(sweep_dir / "0").log.read_text()
    assert done["status"] == "done" and RunLayout(sweep_dir / "1").metrics.is_file()
    summary = json.loads((sweep_dir / SWEEP_SUMMARY_FILE).read_text())
    assert [(job["status"], job["ndcg@10"] is None) for job in summary["jobs"]] == [("failed", True), ("done", False)]
    # Each job is one wandb run, finished either way, grouped by the sweep.
    exits = [records_by_type(sweep_dir / str(n))["exit"][0].exit_code for n in (0, 1)]
    assert exits == [1, 0]
    groups = {records_by_type(sweep_dir / str(n))["run"][0].run_group for n in (0, 1)}
    assert groups == {f"{tmp_path.name}/sweep"}


def test_an_input_error_in_one_job_is_recorded_without_stopping_the_sweep(tiny_beir: Path, tmp_path: Path):
    sweep_dir = tmp_path / "sweep"
    result = run_rlab([*SWEEP, "data.train_split=missing,train"], sweep_dir, tiny_beir, timeout=600, multirun=True)
    assert result.returncode == 1
    failed, done = _records(sweep_dir)
    assert failed["status"] == "failed" and "split 'missing' not found" in failed["error"]
    assert done["status"] == "done"


def test_optuna_search_gets_each_trials_metric(tiny_beir: Path, tmp_path: Path):
    sweep_dir = tmp_path / "optuna"
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"  # a resumable study (the pinned SQLAlchemy)
    result = run_rlab([*SWEEP, "hparams_search=scifact_optuna", "hydra.sweeper.n_trials=3",
                       f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=tiny",
                       "data.val_queries=5", "data.val_distractors=10"], sweep_dir, tiny_beir,
                      timeout=900, multirun=True)
    assert result.returncode == 0, result.stderr[-3000:]
    records = _records(sweep_dir)
    assert len(records) == 3 and all(r["status"] == "done" for r in records)
    values = [r["validation"]["val/ndcg@10"] for r in records]
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(max(values))
    chosen = records[values.index(max(values))]["overrides"]
    assert all(f"{key}={value}" in chosen for key, value in best["best_params"].items())
    assert len({tuple(r["overrides"]) for r in records}) == 3  # three different trials
    study = optuna.load_study(study_name="tiny", storage=storage)
    assert sorted(t.value for t in study.trials) == pytest.approx(sorted(values))


def test_optimizing_a_metric_the_run_does_not_measure_is_refused(tmp_path: Path):
    result = run_rlab([*SWEEP, "optimized_metric=val/ndcg@10"], tmp_path / "run", timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("rlab: config error: optimized_metric:")


def test_slurm_launcher_config_builds_a_submitit_launcher():
    cfg = compose_config(["hydra/launcher=slurm", "hydra.launcher.partition=gpu"], with_hydra=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert launcher.partition == "gpu" and launcher.gpus_per_node == 1
    assert type(instantiate(launcher)).__name__ == "SlurmLauncher"

