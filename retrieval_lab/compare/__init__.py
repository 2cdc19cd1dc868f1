"""``rlab-compare``: tables, significance tests, plots and an HTML report over finished runs.

One module per step: ``runs`` (find and load run directories), ``grouping`` (seed groups and
labels), ``significance`` (paired tests against a baseline), ``table`` (Markdown/CSV),
``plots`` (PNG), ``report`` (self-contained HTML), ``cli`` (the command).
"""
