"""The forked runs the end-to-end tests launch (tests/cli_process.py) behave as a fresh
``python -m retrieval_lab`` does: the same exit status, the same stderr, the same files."""

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.cli_process import ForkedRun, run_module, start_module
from tests.conftest import REPO, write_tiny_beir

LEXICAL = ["data.name=tiny", "data.download=false", "index=bm25", "stages=[index,evaluate]", "evaluator.k=10",
           "progress=false"]


def _fresh(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "retrieval_lab", *argv], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


def test_a_forked_run_is_the_fresh_interpreters_run(tmp_path: Path):
    write_tiny_beir(tmp_path / "data")
    env = dict(os.environ, RLAB_DATA_DIR=str(tmp_path / "data"))
    launchers = {"forked": lambda argv: run_module(argv, env, REPO, 600), "fresh": lambda argv: _fresh(argv, env)}
    runs = {}
    for how, launch in launchers.items():
        good = launch([*LEXICAL, f"hydra.run.dir={tmp_path / how}", f"paths.cache_dir={tmp_path / how / 'cache'}"])
        bad = launch([*LEXICAL, "+nonsense=1", f"hydra.run.dir={tmp_path / how / 'bad'}"])
        runs[how] = (good, bad)
    (forked, forked_bad), (fresh, fresh_bad) = runs["forked"], runs["fresh"]
    assert forked.returncode == fresh.returncode == 0, forked.stderr[-2000:]
    assert forked.stderr == fresh.stderr == ""
    for name in ("run.trec", "metrics.json", "metrics_per_query.tsv"):
        assert (tmp_path / "forked" / name).read_bytes() == (tmp_path / "fresh" / name).read_bytes(), name
    assert forked_bad.returncode == fresh_bad.returncode == 2
    assert forked_bad.stderr == fresh_bad.stderr and forked_bad.stderr.startswith("rlab: config error: nonsense")


def test_a_forked_run_can_be_signalled_and_an_import_time_variable_gets_a_fresh_interpreter(tmp_path: Path):
    env = dict(os.environ)
    run = start_module(["--help"], env, REPO)
    assert isinstance(run, ForkedRun)
    out, _ = run.communicate(timeout=120)
    assert run.returncode == 0 and "rlab" in out
    sleeper = start_module(["+nonsense=1"], env, REPO)
    sleeper.send_signal(signal.SIGKILL)
    sleeper.communicate(timeout=120)
    assert sleeper.returncode in (-signal.SIGKILL, 2)  # killed, unless it had already exited
    offline = start_module(["--help"], dict(env, HF_HUB_OFFLINE="1"), REPO)
    assert isinstance(offline, subprocess.Popen)
    offline.communicate(timeout=120)
