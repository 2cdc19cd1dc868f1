"""Atomic writes: all or nothing, and files readable like any other the user writes."""

import os
import stat
from pathlib import Path

import pytest

from retrieval_lab.atomic import atomic_path, atomic_write_text


def test_written_file_gets_the_umask_mode_not_mkstemps_owner_only(tmp_path: Path):
    path = tmp_path / "metrics.json"
    atomic_write_text(path, "{}")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path: Path):
    path = tmp_path / "metrics.json"
    atomic_write_text(path, "old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["metrics.json"]
