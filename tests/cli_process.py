"""``python -m retrieval_lab <args>`` in its own process, forked from a server that has already
imported the framework and its libraries.

Every end-to-end test is a real run in a real process: its own exit status, stdout and stderr,
signals, files and caches. What a fresh interpreter adds is the import of torch, transformers,
Lightning and the rest, about half of a tiny run's time and most of a run stopped by bad input;
the suite launches well over a hundred of them. multiprocessing's ``forkserver`` imports them
once (``set_forkserver_preload``) and forks each run from there: the child sets the run's
environment and working directory, points its stdout and stderr at files, and runs the
``retrieval_lab`` module as ``python -m`` does. The server never runs a torch op, so no thread
pool exists to be inherited.

A run whose environment differs from this process's (the server's) in anything but the variables
the framework reads when it runs (``RUN_TIME_ENV``) gets a fresh interpreter: a library may have
read it at import (``HF_HUB_OFFLINE`` is read by huggingface_hub then). So does a sweep launched by
a process pool (``POOL_LAUNCHERS``).
"""

import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
from pathlib import Path

PRELOAD = ["tests.forkserver_logging", "retrieval_lab.cli", "retrieval_lab.pipeline", "retrieval_lab.retrievers",
           "retrieval_lab.mining", "retrieval_lab.teachers", "retrieval_lab.objectives", "ranx", "sentence_transformers"]
# Read by the framework (or by Python on output) while a run runs, never at import; pytest's own.
RUN_TIME_ENV = {"RLAB_DATA_DIR", "PYTHONUNBUFFERED", "RLAB_NATIVE_BF16", "PYTEST_CURRENT_TEST"}

# A sweep whose launcher starts a process pool (joblib's loky, submitit) hangs when forked from
# the server; it gets a fresh interpreter.
POOL_LAUNCHERS = ("hydra/launcher=joblib", "hydra/launcher=submitit")

_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(PRELOAD)


def _child(argv: list[str], env: dict[str, str], cwd: str, out: str, err: str) -> None:
    """The forked run: ``python -m retrieval_lab`` with ``argv``, as a fresh process would see it."""
    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY | os.O_TRUNC)
        os.dup2(target, fd)
        os.close(target)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.argv = ["-m", *argv]
    code = 0
    try:
        runpy.run_module("retrieval_lab", run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if not isinstance(exit_.code, int | None):
            print(exit_.code, file=sys.stderr)
    except BaseException:  # as the interpreter does: the traceback on stderr, status 1
        import traceback

        traceback.print_exc()
        code = 1
    import atexit

    atexit._run_exitfuncs()  # what the interpreter runs at exit (logging's flush, the libraries')
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class ForkedRun:
    """A run started by :func:`start_module`, with the part of ``subprocess.Popen``'s interface
    the tests use (``pid``, ``poll``, ``send_signal``, ``communicate``, ``returncode``)."""

    def __init__(self, command: list[str], argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.args = command
        self._tmp = tempfile.TemporaryDirectory(prefix="rlab-run-")
        self._out, self._err = Path(self._tmp.name) / "stdout", Path(self._tmp.name) / "stderr"
        self._out.touch()
        self._err.touch()
        self._process = _context.Process(target=_child, args=(argv, env, str(cwd), str(self._out), str(self._err)))
        self._process.start()
        self.pid = self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def send_signal(self, signum: int) -> None:
        if self._process.exitcode is None:
            os.kill(self.pid, signum)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Waits for the run's end (TimeoutExpired after ``timeout``; the run goes on), then its
        stdout and stderr."""
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        output = self._out.read_text(), self._err.read_text()
        self._tmp.cleanup()
        return output

    def kill(self) -> None:
        self._process.kill()
        self._process.join()


def start_module(argv: list[str], env: dict[str, str], cwd: Path) -> "ForkedRun | subprocess.Popen":
    """``python -m retrieval_lab *argv`` started with ``env`` in ``cwd``: forked from the server,
    or a fresh interpreter where ``env`` changes what a library reads at import."""
    command = [sys.executable, "-m", "retrieval_lab", *argv]
    changed = {k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k)}
    if changed - RUN_TIME_ENV or any(arg.startswith(POOL_LAUNCHERS) for arg in argv):
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return ForkedRun(command, argv, env, cwd)


def run_module(argv: list[str], env: dict[str, str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    """``python -m retrieval_lab *argv`` with ``env`` in ``cwd`` to its end: its exit status and
    output, as ``subprocess.run(..., capture_output=True, text=True, timeout=timeout)`` gives them."""
    run = start_module(argv, env, cwd)
    try:
        out, err = run.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        run.kill()
        raise
    return subprocess.CompletedProcess(run.args, run.returncode, out, err)
