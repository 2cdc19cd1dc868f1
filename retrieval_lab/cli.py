"""``rlab``: compose the config with Hydra, validate it, run the pipeline.

A single run that fails exits non-zero at once. A job of a sweep that fails is recorded as failed
in its ``run.json`` and returns no metric, so the sweep goes on; ``rlab -m`` then exits 1 after
the last job, listing the failed ones (see ``sweep_summary``).
"""

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from retrieval_lab import CONF_DIR, sweep_summary
from retrieval_lab.config.validation import ConfigError, validate_config
from retrieval_lab.errors import DataError
from retrieval_lab.index.base import IndexMismatchError
from retrieval_lab.record import RunRecord
from retrieval_lab.run_layout import RunLayout

# Errors in the user's input: one line naming the key or file, no traceback.
INPUT_ERRORS = {ConfigError: "config", DataError: "data", IndexMismatchError: "index"}

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


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def run(cfg: DictConfig) -> float | None:
    """One job: returns the optimized metric to Hydra (sweepers such as Optuna maximize it)."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    job = _job_description(hydra_cfg)
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        validate_config(cfg)
        from retrieval_lab.pipeline import run_pipeline  # heavy imports only once the config is sound

        metrics = run_pipeline(cfg, run_dir, job)
    except tuple(INPUT_ERRORS) as err:
        kind = next(kind for cls, kind in INPUT_ERRORS.items() if isinstance(err, cls))
        message = f"rlab: {kind} error: {err}"
        if not in_sweep:
            print(message, file=sys.stderr)
            sys.exit(2)
        log.error(message)
        if not RunLayout(run_dir).record.exists():  # failed before the run record was started
            RunRecord(run_dir, **job).fail(err)
        return None
    except Exception:
        if not in_sweep:
            raise
        log.exception("job %s failed; the sweep goes on", job["job"]["num"])
        return None
    return metrics.get(cfg.get("optimized_metric") or "ndcg@10")


def main() -> None:
    run()
    failed = sweep_summary.failed_jobs()
    if failed:
        print(f"rlab: {len(failed)} job(s) of the sweep failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)
