"""Two processes with gathered in-batch negatives equal one process on the concatenated batch.

Runs real torch.distributed (gloo, 2 CPU processes). Each rank computes the loss of its half of
the batch against all ranks' documents, backpropagates, and averages gradients over ranks exactly
as DDP does; loss and gradients must match the single-process run on the whole batch.
"""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from retrieval_lab.objectives import InfoNCE
from retrieval_lab.training.module import contrastive_loss
from tests.test_model import tiny

QUERIES = [f"query {i} about {w}" for i, w in enumerate("cells genes tumors brains hearts viruses".split())]
DOCS = [f"document {i} on {w} and more" for i, w in enumerate("cells genes tumors brains hearts viruses".split())]
# doc 4 is also a positive of query 1: a false negative that must be masked on every rank
POSITIVES = [[0, -1], [1, 4], [2, -1], [3, -1], [4, -1], [5, -1]]


def _batch(model, rows: slice) -> dict:
    return {
        "query": model.tokenization(QUERIES[rows], "query"),
        "doc": model.tokenization(DOCS[rows], "doc"),
        "doc_keys": torch.arange(6)[rows],
        "query_positives": torch.tensor(POSITIVES)[rows],
    }


def _loss_and_grads(model, batch, gather):
    model.train()  # dropout probabilities are zeroed by _no_dropout, so ranks compute alike
    loss = contrastive_loss(model, InfoNCE(0.05), batch, gather)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _no_dropout(model):
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return model


def _rank(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model = _no_dropout(tiny())
        half = slice(rank * 3, rank * 3 + 3)
        loss, grads = _loss_and_grads(model, _batch(model, half), gather=True)
        for grad in grads.values():  # what DDP does after backward
            dist.all_reduce(grad)
            grad /= world
        losses = [torch.zeros_like(loss) for _ in range(world)]
        dist.all_gather(losses, loss)
        if rank == 0:
            torch.save({"loss": torch.stack(losses).mean(), "grads": grads}, out)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_loss_and_gradients_equal_one_process(tmp_path):
    out = str(tmp_path / "rank0.pt")
    mp.spawn(_rank, args=(2, _free_port(), out), nprocs=2, join=True)
    distributed = torch.load(out)

    model = _no_dropout(tiny())
    loss, grads = _loss_and_grads(model, _batch(model, slice(0, 6)), gather=False)
    assert distributed["loss"].item() == pytest.approx(loss.item(), rel=1e-5)
    assert distributed["grads"].keys() == grads.keys()
    for name, grad in grads.items():
        assert torch.allclose(distributed["grads"][name], grad, atol=1e-6, rtol=1e-4), name


def test_without_gathering_each_rank_sees_fewer_negatives():
    model = _no_dropout(tiny())
    full, _ = _loss_and_grads(model, _batch(model, slice(0, 6)), gather=False)
    model.zero_grad()
    halves = [_loss_and_grads(_no_dropout(tiny()), _batch(model, s), gather=False)[0]
              for s in (slice(0, 3), slice(3, 6))]
    assert torch.stack(halves).mean().item() < full.item()  # fewer negatives, smaller loss
