"""Quality against cost over an index sweep: a Markdown table and a plot, one point per index.

    python scripts/index_report.py outputs/multirun/<date>/<time>_rlab [--out report_dir]

Reads every run directory below the sweep (``metrics.json`` with its ``index`` profile, and
``.hydra/overrides.yaml`` for the label) and writes ``index_report.md`` and ``index_report.png``:
nDCG@10 and recall against exact search, versus p50 search latency and bytes per document.
Compression is flat's bytes per added document over the index's (codes, ids, graph links), the
size at scale; the total bytes per document also count trained codebooks and rotations.
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402

from retrieval_lab.run_layout import METRICS_FILE, RunLayout  # noqa: E402


def load_runs(sweep: Path) -> list[dict]:
    rows = []
    for metrics_file in sorted(sweep.rglob(METRICS_FILE)):
        layout = RunLayout(metrics_file.parent)
        record = json.loads(metrics_file.read_text())
        if "index" not in record:
            continue
        overrides = yaml.safe_load(layout.overrides.read_text()) if layout.overrides.is_file() else []
        label = " ".join(o for o in overrides if o.startswith("index")) or record["index"]["kind"]
        # The timings (latency, QPS, build seconds) are in run.json, the rest in metrics.json.
        timings = json.loads(layout.record.read_text()).get("timings", {}).get("evaluate", {}).get("index", {})
        rows.append({"label": label, "run": str(layout.root), **record["index"], **timings,
                     "ndcg@10": record["metrics"].get("ndcg@10")})
    if not rows:
        raise SystemExit(f"no {METRICS_FILE} with an index profile under {sweep}")
    return rows


def markdown(rows: list[dict]) -> str:
    flat = next((r for r in rows if r["kind"] == "flat"), None)
    head = ("| index | nDCG@10 | of flat | recall vs exact @10 | @100 | p50 ms | p95 ms | QPS "
            "| bytes/doc | code bytes/doc | compression | build s |")
    lines = [head, "|---|" + "---:|" * 11]
    for r in sorted(rows, key=lambda r: -r["code_bytes_per_doc"]):
        of_flat = f"{r['ndcg@10'] / flat['ndcg@10']:.1%}" if flat else "n/a"
        compression = f"{flat['code_bytes_per_doc'] / r['code_bytes_per_doc']:.1f}x" if flat else "n/a"
        lines.append(
            f"| {r['label']} | {r['ndcg@10']:.4f} | {of_flat} | {r['recall_vs_exact@10']:.4f} "
            f"| {r['recall_vs_exact@100']:.4f} | {r['latency_ms_p50']:.3f} | {r['latency_ms_p95']:.3f} "
            f"| {r['qps']:.0f} | {r['bytes_per_doc']:.1f} | {r['code_bytes_per_doc']:.1f} "
            f"| {compression} | {r['build_seconds']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, x_key, x_label in ((axes[0], "latency_ms_p50", "p50 search latency per query (ms)"),
                               (axes[1], "code_bytes_per_doc", "index bytes per added document")):
        for metric, marker in (("ndcg@10", "o"), ("recall_vs_exact@10", "s")):
            ax.scatter([r[x_key] for r in rows], [r[metric] for r in rows], marker=marker, label=metric)
        for r in rows:
            ax.annotate(r["label"].replace("index=", "").replace("index.", ""), (r[x_key], r["ndcg@10"]),
                        textcoords="offset points",
                        xytext=(4, 4), fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel(x_label)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("score")
    axes[0].legend()
    fig.suptitle("Index trade-off: quality vs latency and memory")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="default: the sweep directory")
    args = parser.parse_args()
    out = args.out or args.sweep
    out.mkdir(parents=True, exist_ok=True)
    rows = load_runs(args.sweep)
    table = markdown(rows)
    (out / "index_report.md").write_text(table)
    plot(rows, out / "index_report.png")
    print(table)
    print(f"wrote {out / 'index_report.md'} and {out / 'index_report.png'}")


if __name__ == "__main__":
    main()
