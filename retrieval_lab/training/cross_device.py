"""In-batch negatives across devices: gather every rank's documents, keep the labels right.

Each rank scores its own queries against the documents of all ranks. The gather's backward sums
the gradients that every rank's loss sends to each rank's documents, and DDP then
averages parameter gradients over ranks; the mean of the per-rank losses (each a mean over its own
queries) is therefore the single-process loss over the concatenated batch, with the same gradients.
(The pitfall this avoids: gathering without gradients and splicing the local slice back in, which
loses the other ranks' gradient contributions; see Tevatron issues #30 and #143.)
"""

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world size), (0, 1) when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _GatherWithGradients(torch.autograd.Function):
    """all_gather whose backward returns this rank's slice of the gradient summed over ranks."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        ctx.rank, ctx.size = dist.get_rank(), dist.get_world_size()
        parts = [torch.empty_like(tensor) for _ in range(ctx.size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad.chunk(ctx.size)[ctx.rank]


def gather_documents(docs: torch.Tensor, doc_keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """All ranks' document embeddings (with gradients) and keys, in rank order, and this rank's
    column offset. Every rank must pass the same number of documents (DistributedSampler does)."""
    rank, size = world()
    if size == 1:
        return docs, doc_keys, 0
    all_docs = _GatherWithGradients.apply(docs)
    keys = [torch.empty_like(doc_keys) for _ in range(size)]
    dist.all_gather(keys, doc_keys)
    return all_docs, torch.cat(keys), rank * docs.shape[0]


def false_negative_mask(
    query_positives: torch.Tensor, doc_keys: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """[B, N] True where column j holds a labelled positive of query i other than its target.

    Args:
        query_positives: [B, P] keys of each query's positives, padded with -1.
        doc_keys: [N] key of the document in each column.
        targets: [B] each query's target column.
    """
    hits = (doc_keys[None, :, None] == query_positives[:, None, :]).any(dim=-1)
    hits[torch.arange(len(targets), device=targets.device), targets] = False
    return hits
