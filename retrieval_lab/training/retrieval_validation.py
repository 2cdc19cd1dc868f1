"""Per-epoch retrieval quality on the held-out training queries (never on the test split)."""

from typing import Any, ClassVar

import pytorch_lightning as pl

from retrieval_lab.config.rules import Param
from retrieval_lab.encoding import encode_texts
from retrieval_lab.evaluation import evaluate
from retrieval_lab.evaluation.metrics import metrics_problem
from retrieval_lab.index.flat import FlatIndex
from retrieval_lab.search import search


class RetrievalValidation(pl.Callback):
    """Encodes the data module's held-out corpus and queries after each training epoch, searches
    them exactly, and logs ``val/<metric>``. Does nothing when no queries are held out."""

    rules: ClassVar[tuple[Param, ...]] = (Param("metrics", lambda v, n, r: None if v is None else metrics_problem(v)),)

    def __init__(self, metrics: list[str] | None = None, k: int = 100, batch_size: int = 64) -> None:
        self.metrics = tuple(metrics or ("ndcg@10", "recall@100"))
        self.k = k
        self.batch_size = batch_size

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        held_out = getattr(trainer.datamodule, "held_out", None)
        if held_out is None:
            return
        model = pl_module.model
        doc_ids = list(held_out.corpus)
        docs = encode_texts(model, list(held_out.corpus.values()), "doc", self.batch_size, progress=False)
        query_ids = list(held_out.queries)
        queries = encode_texts(model, list(held_out.queries.values()), "query", self.batch_size, progress=False)
        index = FlatIndex(docs.shape[1])
        index.build(docs)
        run = search(index, queries, query_ids, doc_ids, self.k)
        overall, _ = evaluate(held_out.qrels, run, self.metrics)
        for name, value in overall.items():
            pl_module.log(f"val/{name}", value, prog_bar=name == self.metrics[0])
