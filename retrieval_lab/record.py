"""The run record: per-stage status, wall time and peak memory of a run."""

import logging
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from retrieval_lab.atomic import atomic_write_json

log = logging.getLogger(__name__)


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux: the process's high-water mark so far.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class RunRecord:
    """Collects per-stage wall time and peak memory; rewrites ``stages.json`` after every stage."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.stages: dict[str, dict[str, Any]] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        log.info("stage %s: start", name)
        start = time.perf_counter()
        entry: dict[str, Any] = {"status": "running"}
        self.stages[name] = entry
        try:
            yield
            entry["status"] = "done"
        except BaseException:
            entry["status"] = "failed"
            raise
        finally:
            entry["seconds"] = round(time.perf_counter() - start, 3)
            entry["peak_rss_mb"] = round(_peak_rss_mb(), 1)
            log.info("stage %s: %s in %.1f s", name, entry["status"], entry["seconds"])
            atomic_write_json(self.run_dir / "stages.json", self.stages)
