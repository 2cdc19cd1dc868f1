"""The self-contained HTML report: inline CSS, plots as base64 PNG, no external resource."""

from __future__ import annotations

import base64
from html import escape

from retrieval_lab.compare.runs import Run

STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; }
.num { text-align: right; }
th { background: #f0f0f0; }
.text { text-align: left; }
tr.baseline td { background: #fff3e0; }
tr.failed td { background: #fde0e0; }
.legend { font-size: 13px; color: #444; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
code { font-size: 12px; }
"""


def _table(header: list[str], rows: list[list[str]], row_classes: list[str] | None = None,
           text_columns: int = 1) -> str:
    classes = row_classes or [""] * len(rows)
    head = "".join(f'<th class="{"text" if i < text_columns else "num"}">{escape(h)}</th>'
                   for i, h in enumerate(header))
    body = "\n".join(
        f'<tr class="{cls}">'
        + "".join(f'<td class="{"text" if i < text_columns else "num"}">{escape(cell)}</td>'
                  for i, cell in enumerate(row))
        + "</tr>"
        for row, cls in zip(rows, classes)
    )
    return f"<table>\n<tr>{head}</tr>\n{body}\n</table>"


def _runs_section(runs: list[tuple[str, str, Run]], metric: str) -> str:
    rows, classes = [], []
    for label, group, run in runs:
        overrides = " ".join(f"{k}={v}" for k, v in run.overrides.items())
        value = run.metrics.get(metric)
        rows.append([label, group, run.status, "" if run.seed is None else str(run.seed),
                     "" if value is None else f"{value:.4f}", overrides, run.error or "", str(run.path)])
        classes.append("failed" if not run.ok else "")
    header = ["run", "group", "status", "seed", metric, "overrides", "error", "directory"]
    return _table(header, rows, classes, text_columns=len(header))


def render(title: str, header: list[str], cells: list[list[str]], baseline_row: int | None,
           legend: list[str], notes: list[str], plots: dict[str, bytes],
           runs: list[tuple[str, str, Run]], metric: str, heading: str | None = None) -> str:
    """The report's HTML text.

    ``runs`` is (run label, group label, run) for every run, failed ones included;
    ``plots`` maps a caption to PNG bytes; ``heading`` is the table's (default: the metric, best first).
    """
    classes = ["baseline" if i == baseline_row else "" for i in range(len(cells))]
    failed = [(label, run) for label, _, run in runs if not run.ok]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<h2>{escape(heading or f'Results ({metric}, best first)')}</h2>",
        _table(header, cells, classes) if cells else "<p>No completed run.</p>",
        '<div class="legend">' + "".join(f"<p>{escape(line)}</p>" for line in legend) + "</div>",
    ]
    if notes:
        parts.append("<ul>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>")
    if failed:
        parts.append(f"<h2>Failed or unfinished runs ({len(failed)})</h2><ul>")
        for label, run in failed:
            error = f" ({run.error})" if run.error else ""
            parts.append(f'<li class="failed"><b>{escape(label)}</b>: {escape(run.status + error)}'
                         f" — <code>{escape(str(run.path))}</code></li>")
        parts.append("</ul>")
    parts.append("<h2>Plots</h2>")
    for caption, png in plots.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(f"<figure><img alt=\"{escape(caption)}\" src=\"data:image/png;base64,{data}\">"
                     f"<figcaption>{escape(caption)}</figcaption></figure>")
    parts += [f"<h2>Runs ({len(runs)})</h2>", _runs_section(runs, metric), "</body></html>"]
    return "\n".join(parts) + "\n"
