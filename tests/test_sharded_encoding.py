"""Corpus encoding sharded over ranks: each of 2 gloo processes encodes a contiguous shard, rank 0
merges them into the embedding cache; the embeddings equal one process's, the corpus is encoded
once in all, and `trainer=ddp_sim stages=[index,evaluate]` writes one run, the single process's."""

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from retrieval_lab.data.beir import load_beir
from retrieval_lab.embedding_cache import corpus_embeddings, shard_bounds
from retrieval_lab.evaluation import read_run
from tests.conftest import TINY, run_rlab, write_tiny_beir
from tests.test_cross_device import _free_port
from tests.test_model import tiny


@pytest.mark.parametrize(("n", "size"), [(60, 2), (61, 2), (10, 3), (2, 4), (0, 2)])
def test_shards_are_contiguous_cover_the_corpus_and_differ_by_at_most_one(n, size):
    bounds = [shard_bounds(n, rank, size) for rank in range(size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    lengths = [end - begin for begin, end in bounds]
    assert max(lengths) - min(lengths) <= 1


def _rank(rank: int, world: int, port: int, root: str, cache: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    logging.basicConfig(level=logging.INFO, filename=f"{out}.{rank}.log", format="%(message)s")
    try:
        dataset = load_beir(root, "tiny", ["test"], download=False)
        calls = [corpus_embeddings(tiny(), dataset, "{title} {text}", cache, batch_size=7, chunk_size=11,
                                   progress=False, sharded=True) for _ in range(2)]
        np.save(f"{out}.{rank}.npy", np.asarray(calls[0].embeddings))
        Path(f"{out}.{rank}.json").write_text(json.dumps([c.from_cache for c in calls]))
    finally:
        dist.destroy_process_group()


def test_two_ranks_encode_one_shard_each_and_rank_0_merges_what_one_process_encodes(tmp_path):
    root = tmp_path / "data"
    write_tiny_beir(root, n_docs=61)  # shards of 30 and 31 documents, chunks of 11 inside each
    cache = tmp_path / "sharded"
    out = str(tmp_path / "rank")
    mp.spawn(_rank, args=(2, _free_port(), str(root), str(cache), out), nprocs=2, join=True)

    dataset = load_beir(root, "tiny", ["test"], download=False)
    alone = corpus_embeddings(tiny(), dataset, "{title} {text}", tmp_path / "alone", progress=False)
    for rank in range(2):
        merged = np.load(f"{out}.{rank}.npy")
        assert merged.shape == alone.embeddings.shape == (61, 32)
        assert np.abs(merged - alone.embeddings).max() <= 1e-6
        assert json.loads(Path(f"{out}.{rank}.json").read_text()) == [False, True]  # encoded, then read back
    logs = [Path(f"{out}.{rank}.log").read_text() for rank in range(2)]
    assert "encoded shard 0 of 2: documents 0-30 of 61" in logs[0]
    assert "encoded shard 1 of 2: documents 30-61 of 61" in logs[1]
    assert sum(log.count("encoded shard") for log in logs) == 2  # the second call encoded nothing
    assert "merging 2 shards of 61 documents" in logs[0] and "merging" not in logs[1]
    assert [p.name for p in cache.iterdir() if p.name.endswith(".shards")] == []  # shards removed


def test_ddp_sim_index_and_evaluate_writes_the_single_process_run(tmp_path):
    root = tmp_path / "data"
    write_tiny_beir(root)
    args = [*TINY, "stages=[index,evaluate]"]
    single = run_rlab(args, tmp_path / "single" / "run", root, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    sharded = run_rlab([*args, "trainer=ddp_sim"], tmp_path / "sharded" / "run", root, timeout=600)
    assert sharded.returncode == 0, sharded.stderr[-3000:]
    output = sharded.stdout + sharded.stderr
    assert "encoded shard 0 of 2: documents 0-30 of 60" in output
    assert "encoded shard 1 of 2: documents 30-60 of 60" in output
    assert output.count("encoded shard") == 2 and "rank 1 of 2: done; rank 0 indexes and evaluates" in output
    run_dir = tmp_path / "sharded" / "run"
    assert (run_dir / "rlab.log").read_text().count("stage evaluate: done") == 1
    assert list(json.loads((run_dir / "run.json").read_text())["stages"]) == ["encode", "index", "evaluate"]
    assert read_run(run_dir / "run.trec") == read_run(tmp_path / "single" / "run" / "run.trec")
    metrics = [json.loads((d / "metrics.json").read_text())["metrics"] for d in (run_dir, tmp_path / "single" / "run")]
    assert metrics[0] == metrics[1]
