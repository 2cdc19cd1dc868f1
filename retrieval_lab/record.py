"""The run record, ``run.json``: what ran, how each stage went, and what it measured.

It holds the overrides, seed, git commit and dirty flag, package versions, hardware, data file
checksums, status, wall time and peak memory per stage, and the overall metrics (the per-query
metrics and the TREC run file lie beside it, named under ``files``). It is rewritten atomically at
every change, so a run that crashes or is killed leaves a complete record saying where it stopped.

``status`` ends as ``done``, ``failed`` (an error) or ``interrupted`` (a signal: the run can be
resumed); a SIGKILL leaves ``running``, which a resume takes for an interruption. A resumed run
keeps its record: the stages done before stay, ``attempts`` counts the processes that worked on
it, and ``resumed`` lists when each later one started and from what status.
"""

import json
import logging
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from retrieval_lab.atomic import atomic_write_json
from retrieval_lab.interruption import RunInterrupted
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

    def __init__(self, run_dir: str | Path, previous: dict[str, Any] | None = None, **fields: Any) -> None:
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
            "attempts": 1, "resumed": [],
        }
        if previous is not None:  # the earlier attempts' record, stages and figures kept
            self.data.update({**previous, **fields, "status": "running", "error": None, "finished_at": None,
                              "attempts": previous.get("attempts", 1) + 1,
                              "resumed": [*previous.get("resumed", []),
                                          {"at": _now(), "after": previous.get("status")}]})
        self._write()

    def stage_done(self, name: str) -> bool:
        """Whether stage ``name`` finished, in this process or an earlier one of the run."""
        return self.data["stages"].get(name, {}).get("status") == "done"

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
        except BaseException as err:
            entry["status"] = "interrupted" if isinstance(err, RunInterrupted) else "failed"
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

    def interrupt(self, error: BaseException) -> None:
        self._close("interrupted", error=str(error))

    def _close(self, status: str, **fields: Any) -> None:
        self.data.update(status=status, finished_at=_now(),
                         wall_seconds=round(time.perf_counter() - self._start, 3), **fields)
        if status == "done":
            self._write()
            return
        try:  # the run is already stopping: its own error, not this write's, is the one to report
            self._write()
        except OSError as err:
            log.error("could not record the run's end in %s: %s", self.path, err)

    def _write(self) -> None:
        if self._writes:
            atomic_write_json(self.path, self.data)

    @staticmethod
    def read(run_dir: str | Path) -> dict[str, Any] | None:
        """The run record in ``run_dir``, or None if there is none."""
        path = RunLayout(Path(run_dir)).record
        return json.loads(path.read_text()) if path.is_file() else None
