"""The run record, ``run.json``: what ran, how each stage went, and what it measured.

It holds the overrides, seed, git commit and dirty flag, package versions, hardware, data file
checksums, status, wall time and peak memory per stage, and the overall metrics (the per-query
metrics and the TREC run file lie beside it, named under ``files``). It is rewritten atomically at
every change, so a run that crashes or is killed leaves a complete record saying where it stopped.
"""

import logging
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from retrieval_lab.atomic import atomic_write_json
from retrieval_lab.run_layout import RECORDED_FILES, RunLayout

log = logging.getLogger(__name__)


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux: the process's high-water mark so far.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunRecord:
    """Builds ``<run_dir>/run.json``; ``fields`` are the run's description (overrides, seed, ...).
    Only the global rank 0 writes it: the other ranks of a distributed run share its directory."""

    def __init__(self, run_dir: str | Path, **fields: Any) -> None:
        # Imported here: the CLI imports this module before it knows the config is sound, and
        # Lightning (torch) costs seconds to import.
        from pytorch_lightning.utilities.rank_zero import rank_zero_only

        self.layout = RunLayout(Path(run_dir))
        self.path = self.layout.record
        self._writes = rank_zero_only.rank == 0
        self._start = time.perf_counter()
        self.data: dict[str, Any] = {
            "status": "running", "error": None, "started_at": _now(), "finished_at": None,
            "wall_seconds": None, **fields, "stages": {}, "validation": {}, "metrics": {}, "files": [],
        }
        self._write()

    def update(self, **fields: Any) -> None:
        self.data.update(fields)
        self._write()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        log.info("stage %s: start", name)
        start = time.perf_counter()
        entry: dict[str, Any] = {"status": "running"}
        self.data["stages"][name] = entry
        self._write()
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
            self._write()

    def finish(self) -> None:
        self._close("done", files=self.layout.existing(RECORDED_FILES))

    def fail(self, error: BaseException) -> None:
        self._close("failed", error=f"{type(error).__name__}: {error}")

    def _close(self, status: str, **fields: Any) -> None:
        self.data.update(status=status, finished_at=_now(),
                         wall_seconds=round(time.perf_counter() - self._start, 3), **fields)
        self._write()

    def _write(self) -> None:
        if self._writes:
            atomic_write_json(self.path, self.data)
