"""scripts/bench.py end to end on its in-process sections (search, metrics) on the real SciFact:
the JSON and the table it writes, not its timings (those belong to the benchmark itself)."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.scifact


def test_search_and_metric_sections_write_json_and_a_table(scifact_root, tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "scripts/bench.py", "--sections", "search", "metric", "--repeats", "1", "--out", str(out)],
        cwd=REPO, env=dict(os.environ, RLAB_DATA_DIR=str(scifact_root)), capture_output=True, text=True,
        timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    bench = json.loads(out.read_text())
    names = [row["name"] for row in bench["rows"]]
    assert names[:2] == ["search, 300 queries x 5183 docs, k=1000", "search, 300 queries x 5183 docs, k=100"]
    assert names[2].startswith("metrics") and names[3].startswith("our metrics: k=1000")
    for row in bench["rows"]:
        assert 0 < row["ours"]["min"] <= row["ours"]["median"] <= row["ours"]["max"]
        assert row["ratio"] == pytest.approx(row["ours"]["median"] / row["peer"]["median"])
        assert f"| {row['name']} |" in result.stdout
    assert bench["rows"][3]["same_metrics"]  # metrics need only the top 100
    assert bench["machine"]["cpu_capability"] and bench["machine"]["torch_threads"] >= 1
