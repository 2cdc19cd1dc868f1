"""A cross-encoder: query and document read together by one transformer, a relevance logit out.

It is the re-ranker of the evaluate stage and the strongest teacher for distillation. Exported as
a Hugging Face sequence-classification model plus tokenizer, the layout sentence-transformers'
``CrossEncoder(path)`` loads.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, BatchEncoding

from retrieval_lab.atomic import atomic_directory
from retrieval_lab.config.model_source import model_source_problem
from retrieval_lab.config.rules import Param, at_least
from retrieval_lab.models.base import Model
from retrieval_lab.models.loading import resolve_model_path


class CrossEncoder(Model):
    """Args: ``name_or_path`` (a pretrained body, e.g. MiniLM, gets a new one-logit head; an
    exported cross-encoder keeps its own), ``max_length`` of the joint input, ``random_init`` and
    ``config_overrides`` as for the bi-encoder (tiny test models)."""

    rules = (Param("name_or_path", model_source_problem), Param("max_length", at_least(1)))

    def __init__(self, name_or_path: str, max_length: int = 512, random_init: bool = False,
                 config_overrides: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.name_or_path = name_or_path
        self.max_length = max_length
        path = resolve_model_path(name_or_path)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        overrides = {**(config_overrides or {}), "num_labels": 1}
        if random_init:
            self.model = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(path, **overrides))
        else:
            self.model = AutoModelForSequenceClassification.from_pretrained(path, **overrides)

    indexable = False  # it scores (query, document) pairs: nothing to put in an index

    def encoding_contract(self) -> dict[str, Any]:
        return {"kind": "cross_encoder", "name_or_path": self.name_or_path, "max_length": self.max_length}

    def tokenize(self, queries: Sequence[str], docs: Sequence[str]) -> BatchEncoding:
        return self.tokenizer(list(queries), list(docs), padding=True, truncation="longest_first",
                              max_length=self.max_length, return_tensors="pt")

    def forward(self, batch: BatchEncoding) -> torch.Tensor:
        """[N] relevance logits."""
        return self.model(**batch).logits[:, 0]

    @torch.inference_mode()
    def predict(self, queries: Sequence[str], docs: Sequence[str], batch_size: int = 32) -> torch.Tensor:
        training = self.training
        self.eval()
        device = next(self.parameters()).device
        scores = []
        for start in range(0, len(queries), batch_size):
            batch = self.tokenize(queries[start:start + batch_size], docs[start:start + batch_size]).to(device)
            scores.append(self(batch).float().cpu())
        self.train(training)
        return torch.cat(scores) if scores else torch.zeros(0)

    def export(self, out_dir: str | Path) -> Path:
        """Writes model and tokenizer to a temp directory beside ``out_dir``, then moves it in."""
        with atomic_directory(out_dir) as tmp:
            self.model.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
        return Path(out_dir)
