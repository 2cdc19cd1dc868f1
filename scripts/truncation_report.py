"""Retrieval quality against the searched dimension: nDCG@10 and recall@100 of each run's model
when its embeddings keep only their first m coordinates, re-normalized (``model.truncate_dim=m``).

    python scripts/truncation_report.py <run dir> [<run dir> ...] --dims 384 256 128 64 [--out table.md]

Each run directory must hold a finished dense run (``config.yaml``, ``index/index.json``, the
model export). Its full-dimension corpus embeddings are read back from the embedding cache the
index stage wrote; its test queries are encoded once at full dimension; then, for every m, both
are cut to their first m coordinates and re-normalized, searched exactly (faiss flat) and scored
with the evaluate stage's ranx metrics. Prefix-then-normalize of a normalized embedding is
``model.truncate_dim``'s output, so each m costs a search instead of a corpus encoding
(``rlab model.truncate_dim=m stages=[index,evaluate]`` gives the same figures, in minutes).
"""

import argparse
import json
from pathlib import Path

import numpy as np
import yaml

from retrieval_lab.data.beir import load_beir
from retrieval_lab.embedding_cache import cached_embeddings
from retrieval_lab.encoding import encode_texts
from retrieval_lab.evaluation import evaluate
from retrieval_lab.index import FlatIndex
from retrieval_lab.models.bi_encoder import BiEncoder
from retrieval_lab.run_layout import RunLayout
from retrieval_lab.search import search


def truncate(embeddings: np.ndarray, dim: int) -> np.ndarray:
    prefix = np.ascontiguousarray(embeddings[:, :dim], dtype=np.float32)
    return prefix / np.linalg.norm(prefix, axis=1, keepdims=True)


def run_rows(run_dir: Path, dims: list[int]) -> list[dict]:
    layout = RunLayout(run_dir)
    config = yaml.safe_load(layout.config.read_text())
    model_config = {k: v for k, v in config["model"].items() if k != "_target_"}
    if not model_config.get("normalize", True) or model_config.get("truncate_dim"):
        raise SystemExit(f"{run_dir}: needs a normalized model searched at full dimension")
    model = BiEncoder(**{**model_config, "name_or_path": str(layout.model_dir)})
    model.eval()
    data, evaluator = config["data"], config["evaluator"]
    dataset = load_beir(data["root"], data["name"], [evaluator["split"]], download=False)
    index_info = json.loads(layout.index_info.read_text())
    corpus = cached_embeddings(index_info["embeddings_key"], Path(index_info["embeddings_path"]).parent)
    if corpus is None:
        raise SystemExit(f"{run_dir}: its corpus embeddings ({index_info['embeddings_path']}) are no longer cached")
    docs, doc_ids = corpus.embeddings, corpus.doc_ids
    queries = dataset.split_queries(evaluator["split"])
    query_ids = list(queries)
    encoded = encode_texts(model, list(queries.values()), "query", config.get("encode_batch_size", 64), False)
    rows = []
    for dim in dims:
        index = FlatIndex(dim)
        index.build(truncate(docs, dim))
        run = search(index, truncate(encoded, dim), query_ids, doc_ids, evaluator["k"])
        metrics, _ = evaluate(dataset.qrels[evaluator["split"]], run, ["ndcg@10", "recall@100"],
                              evaluator.get("ignore_identical_ids", False))
        rows.append({"run": str(run_dir), "objective": config["objective"]["_target_"].rsplit(".", 1)[-1],
                     "dim": dim, **metrics})
    return rows


def markdown(rows: list[dict], dims: list[int]) -> str:
    runs = list(dict.fromkeys(r["run"] for r in rows))
    by = {(r["run"], r["dim"]): r for r in rows}
    lines = ["| run | objective | " + " | ".join(f"nDCG@10 @{d}" for d in dims) + " | " +
             " | ".join(f"R@100 @{d}" for d in dims) + " |",
             "|---|---|" + "---:|" * (2 * len(dims))]
    for run in runs:
        cells = [f"{by[(run, d)]['ndcg@10']:.4f}" for d in dims] + [f"{by[(run, d)]['recall@100']:.4f}" for d in dims]
        lines.append(f"| {run} | {by[(run, dims[0])]['objective']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished dense run directories")
    parser.add_argument("--dims", nargs="+", type=int, default=[384, 256, 128, 64])
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args()
    rows = [row for run in args.runs for row in run_rows(run, args.dims)]
    table = markdown(rows, args.dims)
    print(table, end="")
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
