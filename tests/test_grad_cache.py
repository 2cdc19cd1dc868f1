"""GradCache gives the loss and the parameter gradients of plain full-batch training.

Dropout stays on (a tiny model's 0.1): the plain computation it is compared with encodes the batch
in the same chunks from the same seed, so both draw the same dropout masks, and GradCache must
reproduce them when it encodes each chunk a second time. Without dropout, the plain computation
is one forward of the whole batch. On 2 gloo processes, each rank runs GradCache inside a real
DistributedDataParallel wrapper and is compared with one process on the concatenated batch.
"""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from retrieval_lab.objectives import InfoNCE
from retrieval_lab.objectives.dual_teacher import DualTeacher
from retrieval_lab.objectives.kl_listwise import ListwiseKL
from retrieval_lab.objectives.margin_mse import MarginMSE
from retrieval_lab.objectives.matryoshka import MatryoshkaInfoNCE
from retrieval_lab.objectives.weighted_sum import WeightedSum
from retrieval_lab.training.cross_device import false_negative_mask
from retrieval_lab.training.grad_cache import GradCache
from retrieval_lab.training.module import batch_loss_inputs
from tests.test_cross_device import _free_port
from tests.test_model import tiny

WORDS = "cells genes tumors brains hearts viruses lungs bones".split()
QUERIES = [f"query {i} about {w}" for i, w in enumerate(WORDS)]
DOCS = [f"document {i} on {w} and more text" for i, w in enumerate(WORDS)]
NEGATIVES = [f"a negative passage {i} that mentions {w} in passing" for i, w in enumerate(WORDS * 2)]
TOLERANCE = 1e-5


def _batch(model, rows: range, negatives: int) -> dict:
    """Queries ``rows`` with their positives, then ``negatives`` hard negatives per query (the data
    module's layout: positives in columns 0..B-1, each query's own negatives after them); doc 4 is
    also a positive of query 1 (a false negative to mask)."""
    rows = list(rows)
    docs = [DOCS[i] for i in rows] + [NEGATIVES[2 * i + j] for i in rows for j in range(negatives)]
    keys = rows + [100 + 2 * i + j for i in rows for j in range(negatives)]
    positives = [[i, 4 if i == 1 else -1] for i in rows]
    batch = {"query": model.tokenization([QUERIES[i] for i in rows], "query"),
             "doc": model.tokenization(docs, "doc"),
             "doc_keys": torch.tensor(keys), "query_positives": torch.tensor(positives)}
    if negatives:
        b = len(rows)
        batch["pair_columns"] = torch.tensor([[i] + [b + i * negatives + j for j in range(negatives)]
                                              for i in range(b)])
        generator = torch.Generator().manual_seed(7)
        batch["teacher_pairs"] = torch.randn(b, 1 + negatives, generator=generator) * 3
        batch["in_batch_teacher_query"] = torch.randn(b, 8, generator=generator)
        batch["in_batch_teacher_docs"] = torch.randn(len(docs), 8, generator=generator)
    return batch


def _encode(model, features: dict, side: str, chunk: int | None) -> torch.Tensor:
    rows = len(features["input_ids"])
    size = chunk or rows
    return torch.cat([model({k: v[s:s + size] for k, v in features.items()}, side) for s in range(0, rows, size)])


def _plain(model, objective, batch, chunk: int | None, seed: int = 3) -> tuple[torch.Tensor, dict]:
    """One backward through the whole batch's graph, its embeddings encoded in ``chunk``-row
    pieces (None: at once) from ``seed``."""
    model.zero_grad()
    torch.manual_seed(seed)
    query, docs = _encode(model, batch["query"], "query", chunk), _encode(model, batch["doc"], "doc", chunk)
    loss = objective.compute(batch_loss_inputs(query, docs, batch, gather=False))
    loss.backward()
    return loss.detach(), _grads(model)


def _cached(model, objective, batch, chunk: int, seed: int = 3, **kwargs) -> tuple[torch.Tensor, dict]:
    model.zero_grad()
    torch.manual_seed(seed)
    grad_cache = GradCache(chunk, **kwargs)
    step = grad_cache.forward(model, objective, batch, lambda q, d: batch_loss_inputs(q, d, batch, gather=False))
    grad_cache.backward(model, step)
    return step.loss, _grads(model)


def _grads(model) -> dict:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _assert_equal(got, want):
    """Loss and gradients within 1e-5, absolute and relative (|a - b| <= 1e-5 + 1e-5 |b|: a
    distillation loss's gradients reach 10^2, where fp32 rounding alone is 10^-5)."""
    loss, grads = got
    torch.testing.assert_close(loss, want[0], atol=TOLERANCE, rtol=TOLERANCE)
    assert grads.keys() == want[1].keys() and grads
    for name, grad in grads.items():
        torch.testing.assert_close(grad, want[1][name], atol=TOLERANCE, rtol=TOLERANCE, msg=name)


def _train_mode(model):
    model.train()
    assert any(m.p > 0 for m in model.modules() if isinstance(m, torch.nn.Dropout))
    return model


@pytest.mark.parametrize("negatives", [0, 2])
def test_loss_and_every_gradient_equal_plain_training_with_dropout(negatives):
    model = _train_mode(tiny())
    batch = _batch(model, range(8), negatives)
    want = _plain(model, InfoNCE(0.05), batch, chunk=3)
    _assert_equal(_cached(model, InfoNCE(0.05), batch, chunk=3), want)
    assert len(want[1]) == sum(p.requires_grad for p in model.parameters())  # every trained parameter


def test_without_replaying_the_random_state_the_gradients_are_another_forwards():
    model = _train_mode(tiny())
    batch = _batch(model, range(8), 2)
    want = _plain(model, InfoNCE(0.05), batch, chunk=3)
    loss, grads = _cached(model, InfoNCE(0.05), batch, chunk=3, replay_rng=False)
    assert loss.item() == pytest.approx(want[0].item(), abs=TOLERANCE)  # the loss is the first pass's
    assert max((grads[n] - g).abs().max().item() for n, g in want[1].items()) > 100 * TOLERANCE


@pytest.mark.parametrize("chunk", [1, 3, 8, 64])
def test_without_dropout_it_equals_one_forward_of_the_whole_batch(chunk):
    model = tiny().eval()  # eval: no dropout, so chunking alone must not change anything
    batch = _batch(model, range(8), 2)
    _assert_equal(_cached(model, InfoNCE(0.05), batch, chunk=chunk), _plain(model, InfoNCE(0.05), batch, chunk=None))


@pytest.mark.parametrize("objective", [
    MatryoshkaInfoNCE(dims=[32, 16, 8]),
    MarginMSE(student_scale=20),
    ListwiseKL(student_temperature=0.05),
    DualTeacher(in_batch="kl", student_temperature=0.05),
    DualTeacher(in_batch="margin_mse"),
    WeightedSum({"infonce": {"weight": 1.0, "loss": InfoNCE(0.05)},
                 "margin_mse": {"weight": 0.5, "loss": MarginMSE(20)}}),
], ids=["matryoshka", "margin_mse", "kl_listwise", "dual_teacher_kl", "dual_teacher_margin", "weighted_sum"])
def test_matryoshka_and_distillation_objectives_equal_their_plain_computation(objective):
    model = _train_mode(tiny())
    batch = _batch(model, range(8), 2)
    _assert_equal(_cached(model, objective, batch, chunk=3), _plain(model, objective, batch, chunk=3))


def test_under_bf16_autocast_it_equals_plain_training_under_bf16_autocast():
    model = _train_mode(tiny())
    batch = _batch(model, range(8), 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = _plain(model, InfoNCE(0.05), batch, chunk=3)
        got = _cached(model, InfoNCE(0.05), batch, chunk=3)
    # the same bf16 operations on the same rows: equal up to the order of fp32 accumulations
    torch.testing.assert_close(got[0], want[0], atol=1e-3, rtol=1e-3)
    for name, grad in want[1].items():
        torch.testing.assert_close(got[1][name], grad, atol=1e-2, rtol=1e-2, msg=name)


def test_a_frozen_document_tower_is_encoded_once_and_gets_no_gradient():
    model = _train_mode(tiny(shared=False, doc={"frozen": True}))
    batch = _batch(model, range(8), 2)
    calls = []
    model.tower("doc").register_forward_hook(lambda *args: calls.append(1))
    got = _cached(model, InfoNCE(0.05), batch, chunk=3)
    assert len(calls) == 8  # 24 documents in chunks of 3, once: the frozen tower needs no second pass
    assert all(name.startswith("towers.query.") for name in got[1])
    _assert_equal(got, _plain(model, InfoNCE(0.05), batch, chunk=3))


def test_a_query_only_objective_trains_through_grad_cache():
    from retrieval_lab.objectives.embed_distill import EmbeddingDistillation

    model = _train_mode(tiny())
    teacher = torch.randn(8, 32, generator=torch.Generator().manual_seed(1))
    batch = {"query": model.tokenization(QUERIES, "query"), "teacher_query": teacher}
    objective = EmbeddingDistillation()
    model.zero_grad()
    torch.manual_seed(3)
    query = _encode(model, batch["query"], "query", 3)
    want_loss = objective.compute(batch_loss_inputs(query, None, batch, gather=False))
    want_loss.backward()
    want = (want_loss.detach(), _grads(model))
    _assert_equal(_cached(model, objective, batch, chunk=3), want)


def test_bad_chunk_sizes_and_trainable_objectives_are_refused():
    for bad in (0, -2, 1.5, True, "8"):
        with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
            GradCache(bad)
    assert GradCache.from_config({"_target_": "x"}) is None
    assert GradCache.from_config({"grad_cache": None}) is None
    assert GradCache.from_config({"grad_cache": {"chunk_size": None}}) is None
    assert GradCache.from_config({"grad_cache": {"chunk_size": 4}}).chunk_size == 4

    class Learned(InfoNCE):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(()))

    model = tiny()
    batch = _batch(model, range(4), 0)
    with pytest.raises(ValueError, match="without trainable parameters"):
        GradCache(2).forward(model, Learned(), batch, lambda q, d: batch_loss_inputs(q, d, batch, False))


# --- 2 gloo processes, each its half of the batch, in a real DDP wrapper ---------------------------

SEED = 11


def _rank(rank: int, world: int, port: int, negatives: int, out: str) -> None:
    from pytorch_lightning.overrides.distributed import prepare_for_backward

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model = _train_mode(tiny())
        ddp = DistributedDataParallel(model)
        reductions = []

        def count(state, bucket):  # DDP's all-reduce of one gradient bucket, counted
            reductions.append((bucket.index(), bucket.is_last()))
            work = dist.all_reduce(bucket.buffer(), async_op=True)
            return work.get_future().then(lambda fut: fut.value()[0] / world)

        ddp.register_comm_hook(None, count)
        batch = _batch(model, range(rank * 4, rank * 4 + 4), negatives)
        torch.manual_seed(SEED + rank)
        grad_cache = GradCache(3)
        step = grad_cache.forward(model, InfoNCE(0.05), batch, lambda q, d: batch_loss_inputs(q, d, batch, True))

        def backward(surrogate):  # what Lightning's manual_backward does under DDP
            prepare_for_backward(ddp, surrogate)
            surrogate.backward()

        grad_cache.backward(model, step, backward, ddp.no_sync)
        losses = [torch.zeros_like(step.loss) for _ in range(world)]
        dist.all_gather(losses, step.loss)
        if rank == 0:
            torch.save({"loss": torch.stack(losses).mean(), "grads": _grads(model), "reductions": reductions}, out)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("negatives", [0, 2])
def test_two_processes_equal_one_process_on_the_concatenated_batch(tmp_path, negatives):
    out = str(tmp_path / "rank0.pt")
    mp.spawn(_rank, args=(2, _free_port(), negatives, out), nprocs=2, join=True)
    distributed = torch.load(out)

    # One process, the whole batch: each rank's half encoded in its chunks from its rank's seed,
    # so that dropout draws the masks it drew there; then one InfoNCE over all 8 queries against
    # all documents (in rank order: each rank's positives, then its negatives).
    model = _train_mode(tiny())
    halves = [_batch(model, range(r * 4, r * 4 + 4), negatives) for r in range(2)]
    embeddings = {"query": [], "doc": []}
    for r, half in enumerate(halves):
        torch.manual_seed(SEED + r)
        for side in ("query", "doc"):
            embeddings[side].append(_encode(model, half[side], side, 3))
    per_rank = len(halves[0]["doc_keys"])
    targets = torch.cat([r * per_rank + torch.arange(4) for r in range(2)])
    mask = false_negative_mask(torch.cat([h["query_positives"] for h in halves]),
                               torch.cat([h["doc_keys"] for h in halves]), targets)
    loss = InfoNCE(0.05)(torch.cat(embeddings["query"]), torch.cat(embeddings["doc"]), targets, mask)
    loss.backward()

    _assert_equal((distributed["loss"], distributed["grads"]), (loss.detach(), _grads(model)))
    # one synchronized backward: each gradient bucket all-reduced once in the step, not per chunk
    indices = [index for index, _ in distributed["reductions"]]
    assert indices and len(indices) == len(set(indices))
    assert [last for _, last in distributed["reductions"]] == [False] * (len(indices) - 1) + [True]


# --- through the CLI: Lightning's manual optimization, one process and trainer=ddp_sim -------------

# Dropout off, so that a run with GradCache must train exactly the weights of one without.
NO_DROPOUT = ["+model.config_overrides.hidden_dropout_prob=0.0", "+model.config_overrides.attention_probs_dropout_prob=0.0"]


def _trained(run_dir):
    from safetensors.torch import load_file

    return load_file(str(run_dir / "model" / "model.safetensors"))


@pytest.mark.parametrize("trainer", ["default", "ddp_sim"])
def test_a_run_with_grad_cache_trains_the_weights_of_one_without(tiny_beir, tmp_path, tiny_args, trainer):
    import csv

    from tests.conftest import run_rlab

    args = [*tiny_args, *NO_DROPOUT, f"trainer={trainer}", "trainer.gradient_clip_val=1.0", "miner=bm25",
            "miner.num_negatives=1", "stages=[train]", "trainer.log_every_n_steps=1"]
    plain, cached = tmp_path / "plain", tmp_path / "cached"
    for run_dir, extra in ((plain, []), (cached, ["objective.grad_cache.chunk_size=3"])):
        result = run_rlab([*args, *extra], run_dir, tiny_beir, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
    assert "GradCache: chunks of 3 queries and documents, of batches of 8" in (cached / "rlab.log").read_text()
    want, got = _trained(plain), _trained(cached)
    assert want.keys() == got.keys()
    for name, weight in want.items():
        torch.testing.assert_close(got[name], weight, atol=1e-5, rtol=1e-4, msg=name)
    # the same steps, learning rates and logged losses (csv/metrics.csv, row by row; a stage's
    # time and memory aside)
    rows = [list(csv.DictReader((d / "csv" / "metrics.csv").open())) for d in (plain, cached)]
    assert len(rows[0]) == len(rows[1]) and rows[0][0].keys() == rows[1][0].keys()
    assert sum(bool(row.get("train/loss")) for row in rows[0]) >= 4  # every step's (log_every_n_steps=1)
    for want_row, got_row in zip(*rows):
        for column, value in want_row.items():
            if column == "train/loss" and value:
                assert float(got_row[column]) == pytest.approx(float(value), abs=1e-5)
            elif not column.startswith("stage/"):
                assert got_row[column] == value, column


@pytest.mark.parametrize("override, key, says", [
    ("objective.grad_cache.chunk_size=0", "objective.grad_cache.chunk_size", "positive integer"),
    ("objective.grad_cache.chunk_size=abc", "objective.grad_cache.chunk_size", "positive integer"),
    ("+objective.grad_cache.size=4", "objective.grad_cache", "expected {chunk_size"),
    ("+trainer.accumulate_grad_batches=4", "trainer.accumulate_grad_batches", "would split its negatives"),
])
def test_bad_grad_cache_settings_are_config_errors_naming_the_key(override, key, says):
    from retrieval_lab.config.validation import ConfigError
    from tests.test_config import _validated

    extra = ["objective.grad_cache.chunk_size=8"] if "accumulate" in override else []
    with pytest.raises(ConfigError) as err:
        _validated([*extra, override])
    assert err.value.key == key and says in str(err.value)


def test_grad_cache_with_a_cross_encoder_is_a_config_error():
    from retrieval_lab.config.validation import ConfigError
    from tests.test_config import _validated

    with pytest.raises(ConfigError, match="a cross-encoder") as err:
        _validated(["experiment=scifact_cross_encoder", "objective.grad_cache.chunk_size=8"])
    assert err.value.key == "objective.grad_cache.chunk_size"


def test_every_objective_config_takes_grad_cache_and_its_loss_never_sees_it():
    from hydra.utils import instantiate

    from retrieval_lab.training.grad_cache import loss_config
    from tests.conftest import REPO, compose_config

    for path in sorted((REPO / "conf" / "objective").glob("*.yaml")):
        cfg = compose_config([f"objective={path.stem}", "objective.grad_cache.chunk_size=16"])
        assert GradCache.from_config(cfg.objective).chunk_size == 16
        assert "grad_cache" not in loss_config(cfg.objective)
        assert instantiate(loss_config(cfg.objective)) is not None, path.stem


def test_a_grad_cache_run_killed_in_training_and_resumed_ends_as_an_uninterrupted_one(tmp_path):
    import signal

    from tests.conftest import run_rlab, write_tiny_beir
    from tests.test_resume import ARGS, _kill_when, _launch, _resume, _same_results

    root = tmp_path / "data"
    write_tiny_beir(root, n_docs=200, n_queries=160)
    args = [*ARGS, "objective.grad_cache.chunk_size=3"]  # dropout on: the replayed states must survive a resume
    reference = tmp_path / "reference"
    assert run_rlab(args, reference, root).returncode == 0
    run_dir = tmp_path / "killed"
    process = _launch(run_dir, root, args)
    assert _kill_when(process, run_dir / "rlab.log", "checkpoint at step 8:", signal.SIGKILL, delay=0.01) is not None
    finished = _resume(run_dir, root)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "resuming at step " in (run_dir / "rlab.log").read_text()
    _same_results(run_dir, reference)

