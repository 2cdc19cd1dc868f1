"""A Hydra callback that closes a sweep with ``sweep.json``: every job's overrides, status, error
and optimized metric, read from the jobs' run records. It runs in the launching process after the
last job, whichever launcher ran the jobs (local, joblib, SLURM), and remembers the failed jobs so
that ``rlab -m`` can exit non-zero after the sweep rather than stopping it at the first failure."""

import json
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from retrieval_lab.atomic import atomic_write_json
from retrieval_lab.run_layout import RECORD_FILE, SWEEP_SUMMARY_FILE

log = logging.getLogger(__name__)

_failed: list[str] = []


def failed_jobs() -> list[str]:
    """The job directories (relative to the sweep) that failed in this process's last sweep."""
    return list(_failed)


def summarize(sweep_dir: Path, metric: str) -> dict[str, Any]:
    jobs = []
    for path in sorted(sweep_dir.glob(f"**/{RECORD_FILE}"), key=lambda p: (len(p.parts), str(p))):
        record = json.loads(path.read_text())
        jobs.append({
            "dir": str(path.parent.relative_to(sweep_dir)),
            "overrides": record.get("overrides", []),
            "status": record.get("status"),
            "error": record.get("error"),
            metric: record.get("metrics", {}).get(metric),
        })
    return {"sweep_dir": str(sweep_dir), "metric": metric, "jobs": jobs}


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        summary = summarize(sweep_dir, config.get("optimized_metric") or "ndcg@10")
        atomic_write_json(sweep_dir / SWEEP_SUMMARY_FILE, summary)
        _failed[:] = [job["dir"] for job in summary["jobs"] if job["status"] != "done"]
        log.info("sweep: %d jobs, %d failed; summary in %s", len(summary["jobs"]), len(_failed),
                 sweep_dir / SWEEP_SUMMARY_FILE)
