"""Training texts for a query-only objective (query-tower embedding distillation): the split's
queries, optionally with sentences of the corpus as pseudo-queries.

Distilling a query tower needs no labels, only texts the teacher embeds as queries, and a few
hundred training queries are too few to carry a 3-layer student to its teacher (ScalingNote
distils on a large query log). Sentences of the corpus are short, claim-like texts of the target
domain; they are unlabelled, and no evaluation query or judgement is read.
"""

import random
import re

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from retrieval_lab.data.beir import BeirDataset
from retrieval_lab.models.tokenization import Tokenization

# A sentence ends at . ! or ? followed by white space and an upper-case letter or a digit.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")


def corpus_sentences(dataset: BeirDataset, count: int, seed: int, min_words: int = 5,
                     max_words: int = 64) -> list[str]:
    """``count`` sentences (titles included) of ``min_words``..``max_words`` words, drawn without
    replacement with ``seed`` from the whole corpus; all of them if there are fewer."""
    sentences = []
    for doc in dataset.corpus.values():
        for text in (doc.title, *_SENTENCE_END.split(doc.text)):
            words = len(text.split())
            if min_words <= words <= max_words:
                sentences.append(text.strip())
    if count >= len(sentences):
        return sentences
    return random.Random(seed).sample(sentences, count)


class QueryDistillationDataModule(pl.LightningDataModule):
    """Batches of texts to encode as queries, each with its teacher embedding (``teacher_query``,
    [len(texts), dim], which the teach stage sets): ``{"query": tokenized, "teacher_query": [B, dim]}``.

    ``texts`` are the queries of ``split`` that have a judged positive (the pairs a contrastive run
    trains on), then ``pseudo_queries`` corpus sentences."""

    held_out = None  # no retrieval validation: there are no judgements to validate against

    def __init__(self, dataset: BeirDataset, tokenization: Tokenization, split: str, batch_size: int,
                 seed: int = 0, num_workers: int = 0, pseudo_queries: int = 0) -> None:
        super().__init__()
        self.dataset = dataset
        self.tokenization = tokenization
        self.batch_size = batch_size
        self.seed = seed
        self.num_workers = num_workers
        qrels = dataset.qrels[split]
        query_ids = sorted(q for q, docs in qrels.items() if any(g > 0 for g in docs.values()))
        self.texts = [dataset.queries[q] for q in query_ids]
        self.num_queries = len(self.texts)
        self.texts += corpus_sentences(dataset, pseudo_queries, seed) if pseudo_queries else []
        self.teacher_query: np.ndarray | None = None

    def collate(self, rows: list[int]) -> dict[str, object]:
        if self.teacher_query is None:
            raise RuntimeError("the teach stage has not set the teacher's query embeddings")
        return {
            "query": self.tokenization([self.texts[i] for i in rows], "query"),
            "teacher_query": torch.from_numpy(self.teacher_query[rows]),
        }

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            list(range(len(self.texts))),
            batch_size=self.batch_size,
            shuffle=True,
            collate_fn=self.collate,
            num_workers=self.num_workers,
            generator=torch.Generator().manual_seed(self.seed),
        )
