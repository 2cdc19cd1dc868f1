"""Caches that are checked when read, safe under concurrency, shareable and safe on a full disk:
a damaged entry of each cache is reported in one line naming it and rebuilt to what it was; two
processes that need one entry build it once; entries get the umask's modes; a full disk is a
StorageError that leaves no temp files and the earlier entries intact."""

import hashlib
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from retrieval_lab.content_cache import ContentCache, fingerprint
from retrieval_lab.data.beir import load_beir
from retrieval_lab.embedding_cache import corpus_embeddings
from retrieval_lab.errors import StorageError
from retrieval_lab.mining import BM25Miner, cached_negatives
from retrieval_lab.teachers import BM25Teacher, cached_teacher_scores
from tests.conftest import REPO
from tests.test_model import TINY, tiny

TEMPLATE = "{title} {text}"


@pytest.fixture
def dataset(tiny_beir: Path):
    return load_beir(tiny_beir, "tiny", ["train", "test"], download=False)


def _embed(dataset, cache: Path, template: str = TEMPLATE):
    return corpus_embeddings(tiny(), dataset, template, cache, batch_size=16, progress=False)


def _one_warning(caplog, path: Path, what: str) -> None:
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"bad cache entry {path}: ") and what in warnings[0], warnings[0]


def _resign(entry: Path) -> None:
    """Rewrites the sidecar's checksums to what the files now hold, as if they had been written so."""
    meta = json.loads((entry / "meta.json").read_text())
    meta["files"] = {name: fingerprint(entry / name) for name in meta["files"]}
    (entry / "meta.json").write_text(json.dumps(meta))


def _damage_embeddings(entry: Path, damage: str) -> None:
    file = entry / "embeddings.npy"
    if damage == "random bytes":
        file.write_bytes(np.random.default_rng(0).bytes(4096))
    elif damage.startswith("NaN rows"):
        rows = np.load(file, mmap_mode="r+")
        rows[:50] = np.nan
        rows.flush()
        del rows
        if damage == "NaN rows, sidecar re-signed":
            _resign(entry)
    elif damage == "truncated":
        os.truncate(file, file.stat().st_size // 2)
    elif damage == "empty":
        os.truncate(file, 0)
    elif damage == "no meta.json":
        (entry / "meta.json").unlink()


EMBEDDING_DAMAGE = {
    "random bytes": "embeddings.npy is 4096 bytes, its sidecar says 7808",
    "NaN rows": "embeddings.npy does not match its sidecar's sha256",
    "NaN rows, sidecar re-signed": "embeddings.npy has non-finite values (NaN or inf), first in row 0",
    "truncated": "embeddings.npy is 3904 bytes, its sidecar says 7808",
    "empty": "embeddings.npy is 0 bytes, its sidecar says 7808",
    "no meta.json": "it has no sidecar meta.json",
}


@pytest.mark.parametrize("damage", list(EMBEDDING_DAMAGE))
def test_a_damaged_embeddings_entry_is_reported_and_rebuilt(dataset, tmp_path: Path, caplog, damage):
    first = _embed(dataset, tmp_path)
    original = np.array(first.embeddings)
    _damage_embeddings(first.path, damage)
    with caplog.at_level(logging.INFO):
        again = _embed(dataset, tmp_path)
    _one_warning(caplog, first.path, EMBEDDING_DAMAGE[damage])
    assert "embedding cache miss: encoding 60 documents" in caplog.text
    assert not again.from_cache and again.path == first.path and again.doc_ids == first.doc_ids
    assert np.array_equal(again.embeddings, original)
    caplog.clear()
    assert _embed(dataset, tmp_path).from_cache and not caplog.records  # healed: a quiet hit


def test_an_entry_written_before_checksums_is_rebuilt_once(dataset, tmp_path: Path, caplog):
    first = _embed(dataset, tmp_path)
    meta = json.loads((first.path / "meta.json").read_text())
    del meta["files"]
    (first.path / "meta.json").write_text(json.dumps(meta))
    again = _embed(dataset, tmp_path)
    _one_warning(caplog, first.path, "written before checksums were kept: unverifiable")
    assert not again.from_cache and _embed(dataset, tmp_path).from_cache


def _cut_lines(path: Path, keep) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(keep(lines)))


@pytest.mark.parametrize("damage", ["half the lines deleted", "empty"])
def test_a_damaged_negatives_file_is_reported_and_rebuilt(dataset, tmp_path: Path, caplog, damage):
    miner = BM25Miner(num_negatives=2, rank_range=(1, 10))
    first, path, record = cached_negatives(miner, dataset, "train", TEMPLATE, tmp_path)
    assert record["lines"] == len(first) == 30
    _cut_lines(path, (lambda lines: lines[::2]) if damage != "empty" else (lambda lines: []))
    again, same, record = cached_negatives(miner, dataset, "train", TEMPLATE, tmp_path)
    _one_warning(caplog, path, "its sidecar says")
    assert not record["cache_hit"] and same == path and again == first


def test_truncated_teacher_scores_are_reported_and_rebuilt(dataset, tmp_path: Path, caplog):
    pairs = [(q, f"d{d}") for q in dataset.split_queries("train") for d in range(3)]
    teacher = BM25Teacher()
    first, path, record = cached_teacher_scores(teacher, dataset, "train", pairs, TEMPLATE, tmp_path)
    assert record["lines"] == 30 and record["pairs"] == 90
    os.truncate(path, path.stat().st_size * 2 // 3)
    again, same, record = cached_teacher_scores(teacher, dataset, "train", pairs, TEMPLATE, tmp_path)
    _one_warning(caplog, path, "its sidecar says")
    assert not record["cache_hit"] and same == path and again == first


# One job of a parallel sweep: builds the tiny model, waits for the other job, then needs the
# same embeddings; prints whether they were a cache hit, their sha256 and the cache's log lines.
# It imports no more than it needs (not this module): each import of torch and transformers costs.
JOB = """
import hashlib, json, logging, os, sys, time
from pathlib import Path
import numpy as np
import torch
from retrieval_lab.content_cache import ContentCache, fingerprint
from retrieval_lab.data.beir import load_beir
from retrieval_lab.embedding_cache import corpus_embeddings
from retrieval_lab.errors import StorageError
from retrieval_lab.models.bi_encoder import BiEncoder

root, cache, ready, template, tiny = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4], json.loads(sys.argv[5])
messages = []
handler = logging.Handler()
handler.emit = lambda record: messages.append(record.getMessage())
logging.getLogger("retrieval_lab").addHandler(handler)
logging.getLogger("retrieval_lab").setLevel(logging.INFO)
torch.set_num_threads(1)
dataset = load_beir(root, "tiny", ["test"], download=False)
torch.manual_seed(0)
model = BiEncoder(**tiny)
(ready / str(os.getpid())).touch()
while len(list(ready.iterdir())) < 2:
    time.sleep(0.01)
out = corpus_embeddings(model, dataset, template, cache, batch_size=16, progress=False)
print(json.dumps({"hit": out.from_cache, "sha256": hashlib.sha256(np.array(out.embeddings).tobytes()).hexdigest(),
                  "messages": messages}))
"""


def test_two_processes_needing_one_entry_encode_it_once(dataset, tiny_beir: Path, tmp_path: Path, caplog):
    """This process is one job, a fresh one the other: both ask at once, once both are ready."""
    ready, cache = tmp_path / "ready", tmp_path / "cache"
    ready.mkdir()
    job = subprocess.Popen([sys.executable, "-c", JOB, str(tiny_beir), str(cache), str(ready), TEMPLATE, json.dumps(TINY)],
                           cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    model = tiny()
    deadline = time.monotonic() + 120
    while not any(ready.iterdir()) and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    (ready / "parent").touch()
    with caplog.at_level(logging.INFO):
        ours = corpus_embeddings(model, dataset, TEMPLATE, cache, batch_size=16, progress=False)
    out, err = job.communicate(timeout=120)
    assert job.returncode == 0, err
    theirs = json.loads(out.splitlines()[-1])
    assert sorted([ours.from_cache, theirs["hit"]]) == [False, True]  # one encoded, the other reused it
    messages = [r.getMessage() for r in caplog.records] + theirs["messages"]
    assert sum(m.startswith("embedding cache miss: encoding 60 documents") for m in messages) == 1
    assert not [m for m in messages if m.startswith("bad cache entry")]
    lone = _embed(dataset, tmp_path / "lone")
    assert np.array_equal(ours.embeddings, lone.embeddings)
    assert theirs["sha256"] == hashlib.sha256(np.array(lone.embeddings).tobytes()).hexdigest()


def test_entries_get_the_umasks_modes(dataset, tmp_path: Path):
    old = os.umask(0o002)
    try:
        _embed(dataset, tmp_path / "cache")
        miner = BM25Miner(num_negatives=2, rank_range=(1, 10))
        cached_negatives(miner, dataset, "train", TEMPLATE, tmp_path / "cache")
    finally:
        os.umask(old)
    made = list((tmp_path / "cache").rglob("*"))
    assert {p.name for p in made} >= {"embeddings.npy", "doc_ids.txt", "meta.json", "negatives"}
    assert len([p for p in made if p.suffix == ".lock"]) == 2
    for path in made:
        assert path.stat().st_mode & 0o777 == (0o775 if path.is_dir() else 0o664), path


@contextmanager
def file_size_limit(size: int):
    """Lets this process write files up to `size` bytes (RLIMIT_FSIZE), with SIGXFSZ ignored so
    that a write beyond fails with EFBIG, as one on a full disk fails with ENOSPC. Only inside the
    block: the limit applies to every file the process writes, pytest's own report too (CI sends
    it to a file far larger than the limit), so it must be lifted before the test ends."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def _write_text(text: str):
    def write(tmp: Path) -> None:
        tmp.write_text(text)
    return write


def test_a_full_disk_is_a_storage_error_naming_the_path(dataset, tmp_path: Path):
    cache = tmp_path / "cache"
    earlier = _embed(dataset, cache, "{text}")
    earlier_rows = np.array(earlier.embeddings)
    lines = ContentCache(cache, "negatives", ".jsonl")
    lines.store("old", {}, _write_text("x" * 100))
    new = cache / "negatives" / "new.jsonl"
    with file_size_limit(4096):  # the embeddings file is 7808 bytes
        with pytest.raises(StorageError, match=rf"^no space to write {cache}/\w+: File too large$"):
            _embed(dataset, cache)
        with pytest.raises(StorageError, match=rf"^no space to write {new}: File too large$"):
            lines.fetch("new", lambda path, record: None, lambda: ({}, _write_text("x" * 5000)))
    left = sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.suffix != ".lock")
    key = earlier.key
    assert left == [key, f"{key}/doc_ids.txt", f"{key}/embeddings.npy", f"{key}/meta.json",
                    "negatives", "negatives/old.json", "negatives/old.jsonl"]  # no temp files
    again = _embed(dataset, cache, "{text}")
    assert again.from_cache and np.array_equal(again.embeddings, earlier_rows)
    with ContentCache(cache, "negatives", ".jsonl").locked("old"):
        assert lines.lookup("old", lambda path, record: path.read_text()).value == "x" * 100
