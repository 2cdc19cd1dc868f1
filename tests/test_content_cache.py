"""The one content-addressed cache: stable keys, complete entries only, data before sidecar."""

import hashlib
import json
from pathlib import Path

import pytest

import retrieval_lab.content_cache as content_cache
from retrieval_lab.content_cache import ContentCache

RECORD = {"key": "k", "what": "made it"}


def _write(text: str):
    def write(tmp: Path) -> None:
        tmp.write_text(text)
    return write


def _fill(tmp: Path, text: str = "rows\n") -> None:
    (tmp / "data.txt").write_text(text)


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


def test_store_then_lookup_returns_the_record(tmp_path: Path):
    cache = ContentCache(tmp_path, "scores", ".jsonl")
    assert cache.lookup("k") is None
    assert cache.store("k", RECORD, lambda tmp: (tmp.write_text("1\n"), {"seconds": 0.5})[1])
    data, sidecar = cache.paths("k")
    assert data.read_text() == "1\n"
    assert cache.lookup("k") == {**RECORD, "seconds": 0.5} == json.loads(sidecar.read_text())
    assert sorted(p.name for p in (tmp_path / "scores").iterdir()) == ["k.json", "k.jsonl"]  # no temp files


@pytest.mark.parametrize("suffix", [".jsonl", "/"])
def test_a_hit_needs_both_data_and_sidecar(tmp_path: Path, suffix):
    cache = ContentCache(tmp_path, "c", suffix)
    cache.store("k", RECORD, _fill if suffix == "/" else _write("x"))
    data, sidecar = cache.paths("k")
    sidecar.unlink()
    assert data.exists() and cache.lookup("k") is None
    if suffix != "/":
        cache.store("k", RECORD, _write("x"))
        data.unlink()
        assert sidecar.is_file() and cache.lookup("k") is None


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
    assert seen == [False, True] and cache.lookup("k") == RECORD


@pytest.mark.parametrize("suffix", [".jsonl", "/"])
def test_an_interrupted_data_write_leaves_no_entry(tmp_path: Path, suffix):
    cache = ContentCache(tmp_path, "c", suffix)

    def crash(tmp: Path) -> None:
        (tmp / "data.txt" if suffix == "/" else tmp).write_text("half of it")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.store("k", RECORD, crash)
    assert cache.lookup("k") is None
    assert list((tmp_path / "c").iterdir()) == []  # neither the entry nor a temp file


def test_an_interrupted_sidecar_write_leaves_no_entry(tmp_path: Path, monkeypatch):
    cache = ContentCache(tmp_path, "c", ".jsonl")

    def crash(path, obj):
        raise OSError("disk full")

    monkeypatch.setattr(content_cache, "atomic_write_json", crash)
    with pytest.raises(OSError, match="disk full"):
        cache.store("k", RECORD, _write("x"))
    assert cache.paths("k")[0].is_file() and cache.lookup("k") is None
    monkeypatch.undo()
    assert cache.store("k", RECORD, _write("x")) and cache.lookup("k") == RECORD  # the next run completes it


def test_a_directory_a_parallel_writer_completed_first_is_kept(tmp_path: Path):
    cache = ContentCache(tmp_path)

    def write(tmp: Path) -> None:
        (tmp / "data.txt").write_text("ours\n")
        assert cache.store("k", {"by": "them"}, lambda other: _fill(other, "theirs\n"))

    assert not cache.store("k", {"by": "us"}, write)
    data, _ = cache.paths("k")
    assert cache.lookup("k") == {"by": "them"} and (data / "data.txt").read_text() == "theirs\n"
    assert [p.name for p in tmp_path.iterdir()] == ["k"]


def test_a_directory_without_its_sidecar_is_not_replaced(tmp_path: Path):
    cache = ContentCache(tmp_path)
    cache.paths("k")[0].mkdir()
    (cache.paths("k")[0] / "stray").write_text("?")
    with pytest.raises(OSError):
        cache.store("k", RECORD, _fill)
    assert cache.lookup("k") is None and [p.name for p in tmp_path.iterdir()] == ["k"]
