"""Runs that survive: killed (SIGKILL, SIGTERM) at any moment and resumed, they end exactly where
an uninterrupted run of the same seed ends; a run repeats byte for byte in deterministic mode;
every way out leaves run.json in a final status."""

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.cli_process import ForkedRun, run_module, start_module
from tests.conftest import REPO, TINY, run_rlab, write_tiny_beir

# 120 training pairs at batch 8: 15 steps an epoch, 30 in all, a checkpoint every 4.
ARGS = [*TINY, "trainer.deterministic=true", "callbacks.checkpoint.every_n_steps=4", "trainer.log_every_n_steps=1"]
REPEATED = ("metrics.json", "metrics_per_query.tsv", "run.trec")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_tiny_beir(root, n_docs=200, n_queries=160)
    return root


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_root: Path) -> Path:
    """The uninterrupted run every other one must reproduce."""
    run_dir = tmp_path_factory.mktemp("runs") / "reference"
    result = run_rlab(ARGS, run_dir, data_root)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def _same_results(run_dir: Path, reference: Path) -> None:
    for name in REPEATED:
        assert (run_dir / name).read_bytes() == (reference / name).read_bytes(), name


def _record(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def _launch(run_dir: Path, data_root: Path, args: list[str], **popen) -> ForkedRun | subprocess.Popen:
    """The run started in its own process (tests/cli_process.py); ``popen``: Popen's options, for
    a run that needs a fresh interpreter set up by them."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", RLAB_DATA_DIR=str(data_root))
    argv = [*args, f"hydra.run.dir={run_dir}", f"paths.cache_dir={run_dir.parent / 'cache'}", "progress=false"]
    if popen:
        return subprocess.Popen([sys.executable, "-m", "retrieval_lab", *argv], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
    return start_module(argv, env, REPO)


def _resume_argv(run_dir: Path) -> list[str]:
    return [f"resume={run_dir}"]


def _kill_when(process: subprocess.Popen, log: Path, pattern: str, signum: int, delay: float = 0.0,
               timeout: float = 600) -> str | None:
    """Sends ``signum`` ``delay`` seconds after ``pattern`` appears in the run's log; returns the
    process's stderr, or None if it ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return None
        if log.is_file() and pattern in log.read_text():
            time.sleep(delay)
            if process.poll() is not None:
                return None
            process.send_signal(signum)
            return process.communicate(timeout=300)[1]
        time.sleep(0.01)
    raise TimeoutError(f"{pattern!r} never appeared in {log}")


def _resume(run_dir: Path, data_root: Path) -> subprocess.CompletedProcess:
    return run_module([f"resume={run_dir}"], dict(os.environ, RLAB_DATA_DIR=str(data_root)), REPO, timeout=900)


def test_two_deterministic_runs_write_the_same_files(tmp_path: Path, data_root: Path, reference: Path):
    again = tmp_path / "again"
    assert run_rlab(ARGS, again, data_root).returncode == 0
    _same_results(again, reference)
    timings = _record(again)["timings"]["evaluate"]
    assert timings["index"]["qps"] > 0 and "qps" not in json.loads((again / "metrics.json").read_text())["index"]


def test_killed_three_times_in_training_and_resumed_ends_as_an_uninterrupted_run(tmp_path: Path, data_root: Path):
    # 4 epochs (60 steps): room for three kills even where a step takes a few milliseconds.
    args = [*ARGS, "trainer.max_epochs=4"]
    reference = tmp_path / "reference"
    assert run_rlab(args, reference, data_root).returncode == 0
    run_dir = tmp_path / "killed"
    rng = random.Random(7)
    process = _launch(run_dir, data_root, args)
    steps = []
    for attempt in range(3):
        # A random moment of training: after a random checkpoint, then a random fraction of a step.
        step = rng.choice([4, 8, 12, 16, 20]) if attempt == 0 else steps[-1] + rng.choice([4, 8, 12])
        killed = _kill_when(process, run_dir / "rlab.log", f"checkpoint at step {step}:", signal.SIGKILL,
                            delay=rng.uniform(0, 0.02))
        assert killed is not None, f"attempt {attempt}: the run ended before step {step}"
        record = _record(run_dir)
        assert record["status"] == "running"  # SIGKILL leaves no chance to write; resume takes it so
        steps.append(step)
        if attempt < 2:
            process = _launch(run_dir, data_root, _resume_argv(run_dir))
    finished = _resume(run_dir, data_root)
    assert finished.returncode == 0, finished.stderr[-3000:]
    record = _record(run_dir)
    assert record["status"] == "done" and record["attempts"] == 4
    assert [r["after"] for r in record["resumed"]] == ["running"] * 3
    log = (run_dir / "rlab.log").read_text()
    resumed_at = [int(line.split("resuming at step ")[1].split(":")[0])
                  for line in log.splitlines() if "resuming at step " in line]
    assert len(resumed_at) == 3 and all(r >= s for r, s in zip(resumed_at, steps))
    assert any(r % 15 for r in resumed_at)  # at least one resume mid-epoch
    _same_results(run_dir, reference)


def test_killed_while_indexing_and_resumed_ends_as_an_uninterrupted_run(
        tmp_path: Path, data_root: Path, reference: Path):
    run_dir = tmp_path / "killed_indexing"
    process = _launch(run_dir, data_root, ARGS)
    assert _kill_when(process, run_dir / "rlab.log", "stage index: start", signal.SIGKILL) is not None
    assert _record(run_dir)["stages"]["train"]["status"] == "done"
    finished = _resume(run_dir, data_root)
    assert finished.returncode == 0, finished.stderr[-3000:]
    log = (run_dir / "rlab.log").read_text()
    assert "resuming at step 30" in log  # the end-of-training checkpoint: no step trained again
    _same_results(run_dir, reference)


def test_sigterm_in_training_checkpoints_and_exits_interrupted_then_resumes(
        tmp_path: Path, data_root: Path, reference: Path):
    run_dir = tmp_path / "terminated"
    process = _launch(run_dir, data_root, ARGS)
    stderr = _kill_when(process, run_dir / "rlab.log", "checkpoint at step 8:", signal.SIGTERM)
    assert stderr is not None and process.returncode == 143
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("rlab: interrupted: stopped by SIGTERM during training at step ")
    assert f"rlab resume={run_dir}" in last
    record = _record(run_dir)
    assert record["status"] == "interrupted" and record["stages"]["train"]["status"] == "interrupted"
    step = int(last.split("at step ")[1].split(";")[0])
    assert step >= 8 and f"checkpoint at step {step}:" in (run_dir / "rlab.log").read_text()
    assert last in (run_dir / "rlab.log").read_text()  # the error is in the log too
    assert not list((run_dir / "checkpoints").glob(".*"))  # no temp file left beside last.ckpt
    finished = _resume(run_dir, data_root)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert _record(run_dir)["resumed"][0]["after"] == "interrupted"
    _same_results(run_dir, reference)


def test_sigterm_outside_training_ends_the_record_interrupted(tmp_path: Path, data_root: Path):
    run_dir = tmp_path / "terminated_zero_shot"
    process = _launch(run_dir, data_root, [*ARGS, "stages=[index,evaluate]"])
    assert _kill_when(process, run_dir / "rlab.log", "stage index: start", signal.SIGTERM) is not None
    assert process.returncode == 143
    record = _record(run_dir)
    assert record["status"] == "interrupted" and record["finished_at"] is not None


def test_a_finished_run_is_not_run_again_and_another_config_is_refused(tmp_path: Path, data_root: Path,
                                                                       reference: Path):
    run_dir = tmp_path / "copy"
    assert run_rlab(ARGS, run_dir, data_root).returncode == 0
    before = (run_dir / "run.trec").stat().st_mtime_ns
    again = _resume(run_dir, data_root)
    assert again.returncode == 0 and (run_dir / "run.trec").stat().st_mtime_ns == before
    assert "finished: nothing to do" in (run_dir / "rlab.log").read_text()
    other = run_rlab([*ARGS, "seed=3"], run_dir, data_root)
    assert other.returncode == 2 and other.stderr.count("\n") == 1
    assert other.stderr.startswith("rlab: config error: seed: ") and "42 there, 3 now" in other.stderr


def test_a_sweep_launched_again_reruns_only_the_jobs_that_did_not_finish(tmp_path: Path, data_root: Path):
    sweep = tmp_path / "sweep"
    args = [*ARGS, "trainer.max_epochs=1", "seed=1,2"]
    assert run_rlab(args, sweep, data_root, multirun=True).returncode == 0
    # Job 1 "was killed": its record says running, its results are gone.
    record = _record(sweep / "1")
    (sweep / "1" / "run.json").write_text(json.dumps({**record, "status": "running"}))
    (sweep / "1" / "run.trec").unlink()
    kept = (sweep / "0" / "run.trec").stat().st_mtime_ns
    again = run_rlab(args, sweep, data_root, multirun=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (sweep / "0" / "run.trec").stat().st_mtime_ns == kept
    assert (sweep / "1" / "run.trec").is_file() and _record(sweep / "1")["attempts"] == 2
    assert [job["status"] for job in json.loads((sweep / "sweep.json").read_text())["jobs"]] == ["done", "done"]


def test_resume_of_a_directory_that_is_not_a_run_is_one_line(tmp_path: Path):
    result = subprocess.run([sys.executable, "-m", "retrieval_lab", f"resume={tmp_path}"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"rlab: config error: resume: {tmp_path} is not a run directory")


def test_a_checkpoint_that_is_not_the_frameworks_is_refused(tmp_path: Path, data_root: Path):
    run_dir = tmp_path / "foreign"
    process = _launch(run_dir, data_root, ARGS)
    assert _kill_when(process, run_dir / "rlab.log", "checkpoint at step 4:", signal.SIGKILL) is not None
    torch.save({"state_dict": {}, "epoch": 0}, run_dir / "checkpoints" / "last.ckpt")
    result = _resume(run_dir, data_root)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] + "\n" == (f"rlab: checkpoint error: {run_dir / 'checkpoints' / 'last.ckpt'}: not a "
                             "retrieval_lab checkpoint (no 'retrieval_lab' entry); resume only from a run's "
                             "own checkpoints/\n")
    assert _record(run_dir)["status"] == "failed"


def test_a_nan_loss_stops_training_at_once_and_keeps_the_last_good_checkpoint(tmp_path: Path, data_root: Path):
    run_dir = tmp_path / "nan"
    # A learning rate this large overflows the weights within a few steps; a checkpoint every step.
    result = run_rlab([*ARGS, "optimizer.lr=1e30", "callbacks.checkpoint.every_n_steps=1"], run_dir, data_root)
    assert result.returncode == 1, result.stderr[-3000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("rlab: training diverged: the training loss is nan at step "), line
    step = int(line.split("at step ")[1].split(" ")[0])
    assert step >= 2, line  # the test needs a checkpoint before the loss went bad
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] in (step - 1, step)  # the step's own, unless its weights were not finite
    assert line.endswith(f"resume from {run_dir / 'checkpoints' / 'last.ckpt'} (step {checkpoint['global_step']})")
    assert all(torch.isfinite(w).all() for w in checkpoint["state_dict"].values())
    record = _record(run_dir)
    assert record["status"] == "failed" and "TrainingDiverged" in record["error"]
    assert not (run_dir / "model").exists()


def _file_size_limit(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_no_room_for_a_checkpoint_is_one_line_and_leaves_nothing_half_written(tmp_path: Path, data_root: Path):
    run_dir = tmp_path / "full"
    # Files may not grow past 4 MB: everything before the first checkpoint (12 MB) fits.
    process = _launch(run_dir, data_root, ARGS, preexec_fn=_file_size_limit(4 << 20))
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 1, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"rlab: disk full: no space to write {run_dir / 'checkpoints' / 'last.ckpt'}: "), last
    assert "Traceback" not in stderr
    assert list((run_dir / "checkpoints").iterdir()) == []  # no partial checkpoint, no temp file
    record = _record(run_dir)
    assert record["status"] == "failed" and record["stages"]["train"]["status"] == "failed"
    assert (run_dir / "config.yaml").is_file() and (run_dir / "training_set").is_dir()


def test_two_jobs_that_share_a_cache_at_once_both_finish_as_a_lone_run(tmp_path: Path, data_root: Path):
    zero_shot = [*ARGS, "stages=[index,evaluate]"]
    lone = tmp_path / "alone" / "run"
    assert run_rlab(zero_shot, lone, data_root).returncode == 0
    shared = tmp_path / "shared"
    jobs = [_launch(shared / name, data_root, zero_shot) for name in ("first", "second")]
    for job in jobs:
        _, stderr = job.communicate(timeout=600)
        assert job.returncode == 0, stderr[-3000:]
    for name in ("first", "second"):
        _same_results(shared / name, lone)
    entries = [p for p in (shared / "cache" / "embeddings").iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(entries) == 1  # one entry, made once, read by both


def test_a_run_resumed_after_a_negative_refresh_trains_on_the_refreshed_negatives(tmp_path: Path, data_root: Path):
    """ANCE-style refreshes change the negatives mid-run; the checkpoint carries the ones in use."""
    args = [*ARGS, "miner=dense_refresh", "miner.refresh_every_n_steps=5", "miner.num_negatives=2",
            "miner.rank_range=[1,10]"]
    reference = tmp_path / "refresh_reference"
    assert run_rlab(args, reference, data_root).returncode == 0
    run_dir = tmp_path / "refresh_killed"
    process = _launch(run_dir, data_root, args)
    # Refreshes at steps 5 and 10; the checkpoint of step 12 holds the second one's negatives.
    assert _kill_when(process, run_dir / "rlab.log", "checkpoint at step 12:", signal.SIGKILL) is not None
    finished = _resume(run_dir, data_root)
    assert finished.returncode == 0, finished.stderr[-3000:]
    steps = [entry["step"] for entry in _record(run_dir)["mining"]["refreshes"]]
    assert steps == [entry["step"] for entry in _record(reference)["mining"]["refreshes"]] and 10 in steps
    _same_results(run_dir, reference)
