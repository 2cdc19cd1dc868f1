"""The text side of the encoding contract: prefixes and max lengths per side, one tokenizer."""

from typing import Literal

from transformers import BatchEncoding, PreTrainedTokenizerBase

Side = Literal["query", "doc"]


class Tokenization:
    """Turns raw texts of one side into model inputs. Picklable and model-free, so data loader
    workers can tokenize without a copy of the encoder."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        prefixes: dict[Side, str],
        max_lengths: dict[Side, int],
    ) -> None:
        self.tokenizer = tokenizer
        self.prefixes = prefixes
        self.max_lengths = max_lengths

    def __call__(self, texts: list[str], side: Side) -> BatchEncoding:
        return self.tokenizer(
            [self.prefixes[side] + text for text in texts],
            padding=True,
            truncation=True,
            max_length=self.max_lengths[side],
            return_tensors="pt",
        )

    def lengths(self, texts: list[str], side: Side) -> list[int]:
        """Token counts after truncation, without building padded tensors."""
        ids = self.tokenizer(
            [self.prefixes[side] + text for text in texts],
            truncation=True,
            max_length=self.max_lengths[side],
        )["input_ids"]
        return [len(row) for row in ids]
