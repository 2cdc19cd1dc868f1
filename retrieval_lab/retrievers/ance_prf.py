"""ANCE-PRF (Yu et al. 2021, "Improving Query Representations for Dense Retrieval with Pseudo
Relevance Feedback"; reproduced by Li et al. 2021): a query encoder reads the query followed by the
texts of its first search's top ``depth`` documents, ``q [SEP] d1 [SEP] d2 [SEP] d3``, and its
embedding searches the same document index a second time.

The PRF encoder is trained from the first-round encoder against the fixed document index: the
run's model has two towers, the query tower trained, the document tower the first-round model's,
frozen (``model.shared=false model.doc.frozen=true``; ``experiment=scifact_ance_prf``). The
embedding cache then finds the first-round model's corpus embeddings for both the index and the
training. The training queries are expanded the same way, from the first-round model's top
documents over the training corpus (:meth:`AncePRF.expand_training_set`), so the encoder learns on
the input it reads at evaluation.
"""

import dataclasses
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from retrieval_lab.config.model_source import model_source_problem
from retrieval_lab.config.rules import Param, at_least
from retrieval_lab.data.beir import BeirDataset, document_text
from retrieval_lab.embedding_cache import EMBEDDINGS_CACHE, corpus_embeddings, embeddings_key
from retrieval_lab.evaluation.trec import trec_order
from retrieval_lab.index import FlatIndex
from retrieval_lab.index.base import Index
from retrieval_lab.models.bi_encoder import BiEncoder
from retrieval_lab.query_embedding_cache import query_embeddings
from retrieval_lab.retrievers.base import Retrieval, Retriever
from retrieval_lab.retrievers.dense import DenseRetriever
from retrieval_lab.retrievers.hybrid import CompositeRetrieval
from retrieval_lab.search import Run, search

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # (training imports the retrievers)
    from retrieval_lab.training.training_set import TrainingSet


class AncePRF:
    """Args:
        first_round: the encoder of the first search (a model path or a :class:`BiEncoder`
            config): the model the PRF encoder was trained from, whose document tower built the index.
        depth: how many of the first search's top documents the PRF query reads.
        doc_template: the text of a feedback document (the dataset's template).
        batch_size, progress: for encoding the first-round queries.
    """

    method: ClassVar[str] = "ance_prf"
    trains_query_encoder: ClassVar[bool] = True  # the train stage expands its queries with it
    rules: ClassVar[tuple[Param, ...]] = (
        Param("depth", at_least(1)),
        Param("first_round", lambda value, node, run: model_source_problem(value) if isinstance(value, str) else None),
    )

    def __init__(self, first_round: BiEncoder | str, depth: int = 3, doc_template: str = "{title} {text}",
                 batch_size: int = 64, progress: bool = False) -> None:
        self.first_round = BiEncoder(name_or_path=first_round) if isinstance(first_round, str) else first_round
        self.depth = depth
        self.doc_template = doc_template
        self.batch_size = batch_size
        self.progress = progress

    def as_record(self) -> dict[str, Any]:
        return {"method": self.method, "depth": self.depth, "first_round": self.first_round.name_or_path}

    def expanded(self, queries: dict[str, str], feedback: Run, dataset: BeirDataset,
                 ignore_identical_ids: bool = False) -> dict[str, str]:
        """Each query's text followed by its top ``depth`` documents of ``feedback``, joined by the
        tokenizer's separator token (the query's own id skipped with ``ignore_identical_ids``)."""
        separator = f" {self.first_round.tokenization.tokenizer.sep_token} "
        out = {}
        for query_id, text in queries.items():
            top = [d for d, _ in trec_order(feedback.get(query_id, {})) if not (ignore_identical_ids and d == query_id)]
            docs = [document_text(dataset.corpus[d], self.doc_template) for d in top[: self.depth]]
            out[query_id] = separator.join([text, *docs])
        return out

    def first_search(self, queries: dict[str, str], index: Index, doc_ids: list[str], k: int,
                     cache_dir: Path | None = None) -> Retrieval:
        """The first-round encoder's top ``k`` of each query in ``index`` (rows named by ``doc_ids``);
        the query embeddings through the cache under ``cache_dir`` (a zero-shot run's are found)."""
        embeddings = query_embeddings(self.first_round, queries, cache_dir, self.batch_size, self.progress)
        start = time.perf_counter()
        run = search(index, embeddings, list(queries), doc_ids, k)
        return Retrieval(run, time.perf_counter() - start, embeddings)

    def retrieve(self, retriever: Retriever, queries: dict[str, str], k: int, ignore_identical_ids: bool = False,
                 dataset: BeirDataset | None = None) -> CompositeRetrieval:
        """The second search, with the first as a part."""
        if not isinstance(retriever, DenseRetriever):
            raise ValueError(f"evaluator.prf: ANCE-PRF searches a dense index a second time, and the "
                             f"{retriever.kind} index is not one (use a vector index)")
        if dataset is None:
            raise ValueError("ANCE-PRF reads its feedback documents' texts: pass the dataset")
        key, _ = embeddings_key(self.first_round, dataset, self.doc_template)
        if key != retriever.corpus.key:
            raise ValueError(
                f"evaluator.prf.first_round: {self.first_round.name_or_path}'s document embeddings are not the "
                f"index's ({retriever.corpus.key}): the first round must search the index its own document "
                "encoder built (train with model.doc.frozen=true from it, or set first_round to that model)")
        first = self.first_search(queries, retriever.index, retriever.corpus.doc_ids, k, retriever.cache_dir)
        second = retriever.retrieve(self.expanded(queries, first.run, dataset, ignore_identical_ids), k)
        return CompositeRetrieval(second.run, first.seconds + second.seconds, second.query_embeddings,
                                  parts={"first_round": first}, record={"prf": self.as_record()})

    def expand_training_set(self, training_set: "TrainingSet", cache_dir: Path) -> "TrainingSet":
        """``training_set`` with every query (held-out validation ones too) expanded by its first
        search over the whole corpus, as at evaluation; the embeddings through the run's caches
        under ``cache_dir``."""
        corpus = corpus_embeddings(self.first_round, training_set.dataset, training_set.doc_template,
                                   cache_dir / EMBEDDINGS_CACHE, self.batch_size, progress=self.progress)
        index = FlatIndex(corpus.embeddings.shape[1])
        index.build(corpus.embeddings)
        held = training_set.held_out
        queries = {**training_set.queries, **(held.queries if held else {})}
        first = self.first_search(queries, index, corpus.doc_ids, self.depth, cache_dir)
        texts = self.expanded(queries, first.run, training_set.dataset)
        if held is not None:
            held = dataclasses.replace(held, queries={q: texts[q] for q in held.queries})
        log.info("ANCE-PRF: %d training queries expanded with their top %d documents under %s", len(queries),
                 self.depth, self.first_round.name_or_path)
        return dataclasses.replace(training_set, queries={q: texts[q] for q in training_set.queries}, held_out=held)
