"""Export a trained bi-encoder in the sentence-transformers format.

The directory is both a sentence-transformers model (modules.json, pooling, normalization, the
prefixes as the ``query``/``document`` prompts) and a plain Hugging Face model at its root, so
``SentenceTransformer(path)`` and ``AutoModel.from_pretrained(path)`` both load it. Separate
towers are exported as two such models, ``query/`` and ``doc/``.
"""

from pathlib import Path

from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

from retrieval_lab.atomic import atomic_directory
from retrieval_lab.models.bi_encoder import BiEncoder
from retrieval_lab.models.tokenization import Side

ST_POOLING = {"mean": "mean", "cls": "cls", "last": "lasttoken"}


def export_model(model: BiEncoder, out_dir: str | Path) -> Path:
    """Write the export to a temp directory beside ``out_dir`` and move it into place."""
    with atomic_directory(out_dir) as tmp:
        if model.shared:
            _export_tower(model, "query", tmp)
        else:
            for side in ("query", "doc"):
                _export_tower(model, side, tmp / side)
    return Path(out_dir)


def _export_tower(model: BiEncoder, side: Side, path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    model.tower(side).save_pretrained(path)
    tokenization = model.tokenization
    tokenization.tokenizer.save_pretrained(path)
    max_length = tokenization.max_lengths["doc" if side == "doc" or model.shared else "query"]
    modules = [
        Transformer(str(path), max_seq_length=max_length),
        Pooling(model.hidden_size, pooling_mode=ST_POOLING[model.pooling]),
    ]
    if model.normalize:
        modules.append(Normalize())
    prompts = {}
    if model.shared or side == "query":
        prompts["query"] = tokenization.prefixes["query"]
    if model.shared or side == "doc":
        prompts["document"] = tokenization.prefixes["doc"]
    SentenceTransformer(
        modules=modules,
        prompts=prompts,
        similarity_fn_name="cosine" if model.normalize else "dot",
        truncate_dim=model.truncate_dim,
        device="cpu",
    ).save(str(path))
