"""The training set: everything a training run reads, finished before any trainer exists.

Stage by stage it grows by replacement, never by mutation: the judged pairs of a split and the
held-out validation slice (:func:`judged_pairs`, or :func:`query_texts` for a query-only
objective), the mined negative pools (:meth:`TrainingSet.with_negatives`, after ``mine``), then
what the teachers give (:meth:`TrainingSet.with_teaching`, the ``teach`` stage). The data modules
read a finished one; the only change during training is a refresh handing a data module a whole
new one (:meth:`retrieval_lab.training.datamodule.ContrastiveDataModule.use`).
"""

import dataclasses
import random
import re
from dataclasses import dataclass, field

import numpy as np

from retrieval_lab.data.beir import BeirDataset, document_text
from retrieval_lab.data.val_split import held_out_query_ids
from retrieval_lab.mining.negatives_file import Negatives
from retrieval_lab.teachers.scores_file import Scores

# A sentence ends at . ! or ? followed by white space and an upper-case letter or a digit.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")

PSEUDO_QUERY_PREFIX = "pseudo-"  # the id of a corpus sentence trained on as a query


@dataclass(frozen=True)
class Pair:
    query_id: str
    doc_id: str


@dataclass(frozen=True)
class HeldOut:
    """Validation queries held out of training, searched against their positives plus distractors."""

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    corpus: dict[str, str]


@dataclass(frozen=True)
class InBatchTeacher:
    """An in-batch teacher's embeddings of every training query and every document a batch can
    hold: each batch column gets the teacher's score from them (TAS-B's second teacher)."""

    queries: dict[str, np.ndarray]
    documents: dict[str, np.ndarray]


@dataclass(frozen=True)
class TrainingSet:
    """``queries``: the texts trained on as queries (id -> text, in a fixed order); ``pairs``: the
    judged (query, positive) pairs (none for a query-only objective); ``positives``: each query's
    labelled positives (the false-negative mask reads them); ``held_out``: the validation slice.

    ``negatives``: each training query's pool, labelled positives removed and topped up to
    ``negatives_per_pair`` (``topped_up`` random documents were added); each batch draws
    ``negatives_per_pair`` of them per pair.

    From the teachers: ``teacher_scores`` of every pair a batch can show (:meth:`scored_pairs`),
    ``teacher_query`` embeddings of every query, ``in_batch_teacher`` embeddings.
    """

    dataset: BeirDataset
    split: str
    doc_template: str
    queries: dict[str, str]
    pairs: tuple[Pair, ...] = ()
    positives: dict[str, frozenset[str]] = field(default_factory=dict)
    held_out: HeldOut | None = None
    negatives: Negatives = field(default_factory=dict)
    negatives_per_pair: int = 0
    topped_up: int = 0
    teacher_scores: Scores | None = None
    teacher_query: dict[str, np.ndarray] | None = None
    in_batch_teacher: InBatchTeacher | None = None

    def with_negatives(self, negatives: Negatives, per_pair: int, seed: int) -> "TrainingSet":
        """This set with ``negatives`` as its pools: labelled positives are dropped again (a user's
        file cannot smuggle one in), and each training query's pool is topped up to ``per_pair``
        with random non-positive documents (score None) drawn with ``seed``."""
        if per_pair < 1:
            raise ValueError(f"negatives_per_pair must be >= 1 with negatives, got {per_pair}")
        rng = random.Random(seed)
        doc_ids = list(self.dataset.corpus)
        pools = {q: [(d, s) for d, s in cands if d not in self.positives.get(q, ())]
                 for q, cands in negatives.items()}
        topped_up = 0
        for query_id in sorted({p.query_id for p in self.pairs}):
            pool = pools.setdefault(query_id, [])
            taken = {d for d, _ in pool}
            while len(pool) < per_pair:
                doc_id = rng.choice(doc_ids)
                if doc_id not in self.positives[query_id] and doc_id not in taken:
                    pool.append((doc_id, None))
                    taken.add(doc_id)
                    topped_up += 1
        return dataclasses.replace(self, negatives=pools, negatives_per_pair=per_pair, topped_up=topped_up)

    def with_teaching(self, teacher_scores: Scores | None = None, teacher_query: dict[str, np.ndarray] | None = None,
                      in_batch_teacher: InBatchTeacher | None = None) -> "TrainingSet":
        """This set with what the teachers gave (a field left None keeps its value)."""
        given = {"teacher_scores": teacher_scores, "teacher_query": teacher_query,
                 "in_batch_teacher": in_batch_teacher}
        return dataclasses.replace(self, **{k: v for k, v in given.items() if v is not None})

    def scored_pairs(self) -> list[tuple[str, str]]:
        """Every (query id, doc id) a training batch can show for the query's own list: each
        pair's positive and every document of its query's pool."""
        pairs = {(p.query_id, p.doc_id) for p in self.pairs}
        pairs |= {(p.query_id, d) for p in self.pairs for d, _ in self.negatives.get(p.query_id, [])}
        return sorted(pairs)

    @property
    def pseudo_queries(self) -> int:
        """How many of ``queries`` are corpus sentences (:func:`query_texts`), not the dataset's queries."""
        return sum(q not in self.dataset.queries for q in self.queries)

    def summary(self) -> dict[str, int]:
        """The run record's ``training_set`` entry."""
        return {"queries": len(self.queries), "pairs": len(self.pairs),
                "held_out_queries": len(self.held_out.queries) if self.held_out else 0,
                "negatives_per_pair": self.negatives_per_pair, "topped_up": self.topped_up}


def judged_pairs(dataset: BeirDataset, split: str, doc_template: str, val_queries: int = 0,
                 val_distractors: int = 1000, seed: int = 0) -> TrainingSet:
    """Every (query, doc) judgement with grade > 0 in ``split`` is one training pair.

    ``val_queries`` query ids (seeded) are held out of training entirely; their validation corpus
    is their judged documents plus ``val_distractors`` random documents, so a per-epoch retrieval
    check costs seconds rather than a full corpus encode. The same queries are the evaluator's
    ``val`` split (data/val_split.py), searched against the whole corpus.
    """
    qrels = dataset.qrels[split]
    positives = {q: frozenset(d for d, g in docs.items() if g > 0) for q, docs in qrels.items()}
    rng = random.Random(seed)
    held = set(held_out_query_ids(qrels, split, val_queries, rng))
    pairs = tuple(Pair(q, d) for q, docs in qrels.items() if q not in held for d, g in docs.items() if g > 0)
    trained = sorted({p.query_id for p in pairs})
    held_out = _held_out(dataset, sorted(held), qrels, doc_template, val_distractors, rng) if held else None
    return TrainingSet(dataset, split, doc_template, {q: dataset.queries[q] for q in trained}, pairs,
                       positives, held_out)


def _held_out(dataset: BeirDataset, held: list[str], qrels: dict[str, dict[str, int]], doc_template: str,
              n_distractors: int, rng: random.Random) -> HeldOut:
    judged = {d for q in held for d in qrels[q]}
    others = [d for d in dataset.corpus if d not in judged]
    docs = sorted(judged) + rng.sample(others, min(n_distractors, len(others)))
    return held_out_slice(dataset, held, qrels, doc_template, docs)


def held_out_slice(dataset: BeirDataset, query_ids: list[str], qrels: dict[str, dict[str, int]],
                   doc_template: str, doc_ids: list[str]) -> HeldOut:
    """The validation slice of ``query_ids`` searched against ``doc_ids``, texts from ``dataset``."""
    return HeldOut(
        queries={q: dataset.queries[q] for q in query_ids},
        qrels={q: dict(qrels[q]) for q in query_ids},
        corpus={d: document_text(dataset.corpus[d], doc_template) for d in doc_ids},
    )


def query_texts(dataset: BeirDataset, split: str, doc_template: str, pseudo_queries: int = 0,
                seed: int = 0) -> TrainingSet:
    """The texts a query-only objective (query-tower embedding distillation) trains on: the queries
    of ``split`` that have a judged positive, then ``pseudo_queries`` corpus sentences
    (ids ``pseudo-<n>``).

    Distilling a query tower needs no labels, only texts the teacher embeds as queries, and a few
    hundred training queries are too few to carry a 3-layer student to its teacher (ScalingNote
    distils on a large query log). Sentences of the corpus are short, claim-like texts of the
    target domain; they are unlabelled, and no evaluation query or judgement is read.
    """
    qrels = dataset.qrels[split]
    query_ids = sorted(q for q, docs in qrels.items() if any(g > 0 for g in docs.values()))
    queries = {q: dataset.queries[q] for q in query_ids}
    sentences = corpus_sentences(dataset, pseudo_queries, seed) if pseudo_queries else []
    queries |= {f"{PSEUDO_QUERY_PREFIX}{i}": text for i, text in enumerate(sentences)}
    return TrainingSet(dataset, split, doc_template, queries)


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
