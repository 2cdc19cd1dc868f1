"""Text analysis for lexical retrieval: the same lowercasing, token pattern, stopwords and stemmer
for documents and queries (a mismatch between the two silently costs recall)."""

from collections.abc import Sequence
from typing import Any, Literal

import bm25s
import Stemmer

# Stemmers of PyStemmer (Snowball), and the stopword lists bm25s ships, by the names they take.
StemmerName = Literal[tuple(Stemmer.algorithms())]  # type: ignore[valid-type]
StopwordsName = Literal[
    "english", "en", "english_plus", "en_plus", "german", "de", "dutch", "nl", "french", "fr",
    "spanish", "es", "portuguese", "pt", "italian", "it", "russian", "ru", "swedish", "sv",
    "norwegian", "no", "chinese", "zh", "turkish", "tr", "korean", "ko", "danish", "da",
]
TOKEN_PATTERN = r"(?u)\b\w\w+\b"  # bm25s's (and scikit-learn's) default: words of 2+ characters


class Analyzer:
    """Lowercase, split on ``token_pattern``, drop ``stopwords``, stem with ``stemmer`` (None: no
    stemming). Tokenization is bm25s's own, so an index built here matches bm25s's benchmarks."""

    def __init__(
        self,
        lower: bool = True,
        token_pattern: str = TOKEN_PATTERN,
        stopwords: StopwordsName | list[str] | None = "en",
        stemmer: StemmerName | None = "english",
    ) -> None:
        if stemmer is not None and stemmer not in Stemmer.algorithms():
            raise ValueError(f"unknown stemmer {stemmer!r}; PyStemmer has: {', '.join(Stemmer.algorithms())}")
        self.lower = lower
        self.token_pattern = token_pattern
        self.stopwords = list(stopwords) if isinstance(stopwords, (list, tuple)) else stopwords
        self.stemmer = stemmer
        self._stem = Stemmer.Stemmer(stemmer) if stemmer is not None else None

    def params(self) -> dict[str, Any]:
        return {"lower": self.lower, "token_pattern": self.token_pattern,
                "stopwords": self.stopwords, "stemmer": self.stemmer}

    def _tokenize(self, texts: Sequence[str], return_ids: bool, progress: bool) -> Any:
        return bm25s.tokenize(
            list(texts), lower=self.lower, token_pattern=self.token_pattern,
            stopwords=self.stopwords, stemmer=self._stem, return_ids=return_ids,
            show_progress=progress,
        )

    def corpus_tokens(self, texts: Sequence[str], progress: bool = False) -> bm25s.tokenization.Tokenized:
        """Token ids per text and their vocabulary: the compact form bm25s indexes."""
        return self._tokenize(texts, return_ids=True, progress=progress)

    def tokens(self, texts: Sequence[str], progress: bool = False) -> list[list[str]]:
        """Tokens per text (for queries: matched against the index's vocabulary by string)."""
        return self._tokenize(texts, return_ids=False, progress=progress)
