"""The one content-addressed cache: stable keys, complete and checked entries only, data before
sidecar, one builder per key."""

import hashlib
import json
import logging
from pathlib import Path

import pytest

import retrieval_lab.content_cache as content_cache
from retrieval_lab.content_cache import ContentCache, CorruptEntry

RECORD = {"key": "k", "what": "made it"}


def _write(text: str):
    def write(tmp: Path) -> None:
        tmp.write_text(text)
    return write


def _fill(tmp: Path, text: str = "rows\n") -> None:
    (tmp / "data.txt").write_text(text)


def _read(path: Path, record: dict) -> str:
    return (path / "data.txt" if path.is_dir() else path).read_text()


def _entries(directory: Path) -> list[str]:
    """What is in ``directory`` but lock files."""
    return sorted(p.name for p in directory.iterdir() if p.suffix != ".lock")


def test_the_key_is_the_sorted_json_sha256_prefix_and_does_not_change():
    parts = {"b": [1, "x"], "a": {"z": None, "y": 2.5}}
    assert ContentCache.key(parts) == hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]
    assert ContentCache.key(parts) == ContentCache.key(dict(reversed(parts.items())))  # order does not count
    # Pinned: a change here would move every existing cache entry.
    assert ContentCache.key({"dataset": "tiny", "split": "train", "seed": None}) == "ec89c8da551cbc44f40c1bbc"


def test_entry_layouts(tmp_path: Path):
    assert ContentCache(tmp_path, "negatives", ".jsonl").paths("k1") == (
        tmp_path / "negatives" / "k1.jsonl", tmp_path / "negatives" / "k1.json")
    assert ContentCache(tmp_path).paths("k1") == (tmp_path / "k1", tmp_path / "k1" / "meta.json")


def test_store_then_lookup_returns_the_record_with_the_checksums(tmp_path: Path):
    cache = ContentCache(tmp_path, "scores", ".jsonl")
    assert cache.lookup("k", _read) is None
    stored = cache.store("k", RECORD, lambda tmp: (tmp.write_text("1\n"), {"seconds": 0.5})[1])
    data, sidecar = cache.paths("k")
    files = {"k.jsonl": {"bytes": 2, "sha256": hashlib.sha256(b"1\n").hexdigest()}}
    assert stored == {**RECORD, "seconds": 0.5, "files": files} == json.loads(sidecar.read_text())
    entry = cache.lookup("k", _read)
    assert (entry.path, entry.record, entry.value, entry.hit) == (data, stored, "1\n", True)
    assert _entries(tmp_path / "scores") == ["k.json", "k.jsonl"]  # no temp files


def test_a_directory_sidecar_checksums_every_file(tmp_path: Path):
    cache = ContentCache(tmp_path)
    def write(tmp: Path) -> None:
        (tmp / "a").write_text("x")
        (tmp / "b").write_text("yz")

    record = cache.store("k", RECORD, write)
    assert {name: f["bytes"] for name, f in record["files"].items()} == {"a": 1, "b": 2}
    assert cache.lookup("k", lambda path, rec: sorted(p.name for p in path.iterdir())).value == ["a", "b", "meta.json"]


@pytest.mark.parametrize("suffix", [".jsonl", "/"])
@pytest.mark.parametrize("damage", ["no sidecar", "no data", "old sidecar", "sidecar not JSON", "resized",
                                    "same size, other bytes", "loader refuses"])
def test_a_bad_entry_is_reported_removed_and_a_miss(tmp_path: Path, suffix, damage, caplog):
    cache = ContentCache(tmp_path, "c", suffix)
    cache.store("k", RECORD, _fill if suffix == "/" else _write("rows\n"))
    data, sidecar = cache.paths("k")
    file = data / "data.txt" if suffix == "/" else data
    load = _read
    if damage == "no sidecar":
        sidecar.unlink()
    elif damage == "no data":
        file.unlink() if suffix == "/" else data.unlink()
    elif damage == "old sidecar":
        sidecar.write_text(json.dumps(RECORD))
    elif damage == "sidecar not JSON":
        sidecar.write_text("{")
    elif damage == "resized":
        file.write_text("rows\nmore\n")
    elif damage == "same size, other bytes":
        file.write_text("rowz\n")
    else:
        def load(path, record):
            raise CorruptEntry("3 rows, its sidecar says 4")
    with caplog.at_level(logging.WARNING):
        assert cache.lookup("k", load) is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    expected = {"no sidecar": "has no sidecar", "no data": "data.txt is missing" if suffix == "/" else "data is missing",
                "old sidecar": "before checksums were kept: unverifiable", "sidecar not JSON": "is not JSON",
                "resized": "is 10 bytes, its sidecar says 5", "same size, other bytes": "does not match its sidecar's sha256",
                "loader refuses": "3 rows, its sidecar says 4"}[damage]
    assert len(warnings) == 1 and warnings[0].startswith(f"bad cache entry {data}: ") and expected in warnings[0]
    assert _entries(tmp_path / "c") == []  # removed
    cache.store("k", RECORD, _fill if suffix == "/" else _write("rows\n"))
    assert cache.lookup("k", _read).value == "rows\n"


@pytest.mark.parametrize("suffix", [".jsonl", "/"])
def test_data_is_in_place_before_the_sidecar_is_written(tmp_path: Path, suffix, monkeypatch):
    cache = ContentCache(tmp_path, "c", suffix)
    data, sidecar = cache.paths("k")
    seen = []

    def write(tmp: Path) -> None:
        seen.append(sidecar.exists())
        (_fill if suffix == "/" else _write("x"))(tmp)

    real = content_cache.atomic_write_json

    def sidecar_write(path, obj):
        # A file is in place before its sidecar; a directory's sidecar goes in with its data.
        seen.append(data.is_file() if suffix != "/" else (path.parent / "data.txt").is_file())
        real(path, obj)

    monkeypatch.setattr(content_cache, "atomic_write_json", sidecar_write)
    cache.store("k", RECORD, write)
    assert seen == [False, True] and cache.lookup("k", _read).record["what"] == "made it"


@pytest.mark.parametrize("suffix", [".jsonl", "/"])
def test_an_interrupted_data_write_leaves_no_entry(tmp_path: Path, suffix):
    cache = ContentCache(tmp_path, "c", suffix)

    def crash(tmp: Path) -> None:
        (tmp / "data.txt" if suffix == "/" else tmp).write_text("half of it")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.fetch("k", _read, lambda: (RECORD, crash))
    assert cache.lookup("k", _read) is None
    assert _entries(tmp_path / "c") == []  # neither the entry nor a temp file


def test_an_interrupted_sidecar_write_leaves_no_entry(tmp_path: Path, monkeypatch, caplog):
    cache = ContentCache(tmp_path, "c", ".jsonl")

    def crash(path, obj):
        raise OSError("disk full")

    monkeypatch.setattr(content_cache, "atomic_write_json", crash)
    with pytest.raises(OSError, match="disk full"):
        cache.fetch("k", _read, lambda: (RECORD, _write("x")))
    assert cache.paths("k")[0].is_file()
    monkeypatch.undo()
    entry = cache.fetch("k", _read, lambda: (RECORD, _write("x")))  # the next run completes it
    assert not entry.hit and entry.value == "x" and "has no sidecar" in caplog.text


def test_fetch_builds_once_then_hits(tmp_path: Path):
    cache = ContentCache(tmp_path, "c", ".jsonl")
    builds = []

    def build():
        builds.append(1)
        return RECORD, _write("x")

    first, second = (cache.fetch("k", _read, build) for _ in range(2))
    assert (first.hit, second.hit, first.value, second.value, len(builds)) == (False, True, "x", "x", 1)
    assert first.record == second.record


def test_temp_files_a_killed_writer_left_are_removed_by_the_next_build(tmp_path: Path):
    cache = ContentCache(tmp_path)
    stale = tmp_path / ".k.dead1234"
    stale.mkdir()
    (stale / "data.txt").write_text("half")
    (tmp_path / ".other.dead1234").mkdir()  # another key's: not ours to touch
    cache.fetch("k", _read, lambda: (RECORD, _fill))
    assert _entries(tmp_path) == [".other.dead1234", "k"]


def test_a_directory_without_its_sidecar_heals(tmp_path: Path):
    cache = ContentCache(tmp_path)
    cache.paths("k")[0].mkdir()
    (cache.paths("k")[0] / "stray").write_text("?")
    entry = cache.fetch("k", _read, lambda: (RECORD, _fill))
    assert not entry.hit and entry.value == "rows\n" and not (entry.path / "stray").exists()
