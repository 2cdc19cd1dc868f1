"""``rlab``: compose the config with Hydra, validate it, run the pipeline.

A single run that fails exits non-zero at once. A job of a sweep that fails is recorded as failed
in its ``run.json`` and returns no metric, so the sweep goes on; ``rlab -m`` then exits 1 after
the last job, listing the failed ones (see ``sweep_summary``).

Every way out of a run ends its ``run.json`` in a final status and its error in ``rlab.log`` as
well as on stderr: bad input is one line and exit 2 (:data:`INPUT_ERRORS`); a full disk or a
diverged loss is one line and exit 1 (:data:`RUN_ERRORS`); SIGTERM is one line, status
``interrupted`` and exit 143; anything else is a bug, with its traceback.

``resume=<run dir>`` resumes a run (retrieval_lab.resume); a job whose directory holds a finished
run of its config is not run again, an unfinished one is resumed.
"""

import logging
import sys
import traceback
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from retrieval_lab import CONF_DIR, interruption, sweep_summary
from retrieval_lab.config.validation import ConfigError, validate_config
from retrieval_lab.errors import CheckpointError, DataError, StorageError, TrainingDiverged
from retrieval_lab.index.base import IndexMismatchError
from retrieval_lab.interruption import RunInterrupted
from retrieval_lab.record import RunRecord
from retrieval_lab.resume import previous_run, resume_argv
from retrieval_lab.run_layout import RunLayout

# Errors in the user's input: one line naming the key or file, no traceback, exit 2.
INPUT_ERRORS = {ConfigError: "config", DataError: "data", IndexMismatchError: "index", CheckpointError: "checkpoint"}
# A run that cannot go on for a reason it names: one line, exit 1.
RUN_ERRORS = {StorageError: "disk full", TrainingDiverged: "training diverged"}

log = logging.getLogger("retrieval_lab.cli")


def _job_description(hydra_cfg: Any) -> dict[str, Any]:
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    return {
        "command": sys.argv,
        "overrides": list(hydra_cfg.overrides.task),
        "job": {
            "mode": "MULTIRUN" if in_sweep else "RUN",
            "num": hydra_cfg.job.num if in_sweep else None,
            "sweep_dir": hydra_cfg.sweep.dir if in_sweep else None,
        },
    }


def _kind(err: BaseException, kinds: dict[type, str]) -> str | None:
    return next((kind for cls, kind in kinds.items() if isinstance(err, cls)), None)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def run(cfg: DictConfig) -> float | None:
    """One job: returns the optimized metric to Hydra (sweepers such as Optuna maximize it)."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    job = _job_description(hydra_cfg)
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    metric = cfg.get("optimized_metric") or "ndcg@10"
    interruption.install()
    try:
        validate_config(cfg)
        previous = previous_run(run_dir, cfg)
        if previous is not None and previous["status"] == "done":
            log.info("%s holds this run, finished: nothing to do", run_dir)
            return {**previous["validation"], **previous["metrics"]}.get(metric)
        if previous is not None:
            log.info("resuming the %s run in %s", previous["status"], run_dir)
        from retrieval_lab.pipeline import run_pipeline  # heavy imports only once the config is sound

        metrics = run_pipeline(cfg, run_dir, job, previous)
    except BaseException as err:
        return _stopped(err, run_dir, job, in_sweep)
    return metrics.get(metric)


def _stopped(err: BaseException, run_dir: Path, job: dict[str, Any], in_sweep: bool) -> None:
    """Reports how a job stopped (one line, or a traceback for a bug) in rlab.log and on stderr;
    exits with its code unless it is a job of a sweep, which goes on."""
    if (kind := _kind(err, INPUT_ERRORS)) is not None:
        message, code = f"rlab: {kind} error: {err}", 2
    elif (kind := _kind(err, RUN_ERRORS)) is not None:
        message, code = f"rlab: {kind}: {err}", 1
    elif isinstance(err, RunInterrupted):
        message, code = f"rlab: interrupted: {err}; resume with: rlab resume={run_dir}", err.exit_code
    elif isinstance(err, Exception):
        message, code = None, 1
    else:
        raise err  # SystemExit, KeyboardInterrupt: not this run's to report
    if message is None:
        log.error("job failed:\n%s", traceback.format_exc().rstrip())
        if not in_sweep:
            raise err
        return None
    log.error(message)
    if in_sweep and not RunLayout(run_dir).record.exists():  # the sweep's summary reads every job's record
        record = RunRecord(run_dir, **job)
        (record.interrupt if isinstance(err, RunInterrupted) else record.fail)(err)
    if in_sweep and not isinstance(err, RunInterrupted):  # a signal stops the whole sweep
        return None
    print(message, file=sys.stderr)
    sys.exit(code)


def _composition_error(argv: list[str]) -> str | None:
    """Hydra's own error for overrides it cannot compose (a key that does not exist, a misspelt
    group option), in one line: Hydra would print several and exit 1. Checked for a single run
    (a sweep's values are Hydra's to expand) by composing the config once before Hydra does."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    if any(arg.startswith("-") for arg in argv[1:]):  # -m, --cfg, ...: Hydra's own paths
        return None
    overrides = [a for a in argv[1:] if not a.lstrip("+~").startswith(("hydra.", "hydra/"))]
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            compose("train", overrides=overrides)
    except HydraException as err:
        text = str(err).split("Config search path:")[0]  # Hydra's search path: noise here
        first, *rest = [line.strip() for line in text.splitlines() if line.strip()]
        if rest and rest[0].endswith(":"):  # "Available options in 'model':" and the options
            rest = [f"{rest[0]} {', '.join(rest[1:])}"]
        return f"{first} ({'; '.join(rest)})" if rest else first
    except ValueError as err:  # Hydra's own, for a group override it cannot take (model=null)
        return f"{err} (overrides: {' '.join(overrides)})"
    return None


def main() -> None:
    try:
        sys.argv = resume_argv(sys.argv)
    except ConfigError as err:
        print(f"rlab: config error: {err}", file=sys.stderr)
        sys.exit(2)
    problem = _composition_error(sys.argv)
    if problem is not None:
        print(f"rlab: config error: {problem}", file=sys.stderr)
        sys.exit(2)
    run()
    failed = sweep_summary.failed_jobs()
    if failed:
        print(f"rlab: {len(failed)} job(s) of the sweep failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)
