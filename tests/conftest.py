"""Shared fixtures: the real config tree, a tiny BEIR dataset, the real SciFact, the rlab CLI."""

import json
import os
import random
import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from retrieval_lab.cli import CONF_DIR
from tests.cli_process import run_module

REPO = Path(__file__).resolve().parents[1]
SCIFACT_ROOT = Path(os.environ.get("RLAB_DATA_DIR", REPO.parent / "shared" / "data"))


def compose_config(overrides: list[str] | None = None, with_hydra: bool = False) -> DictConfig:
    """The real conf/ tree composed as `rlab <overrides>` would, without running anything;
    ``with_hydra`` keeps Hydra's own node (launcher, sweeper, ...)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=overrides or [], return_hydra_config=with_hydra)


def run_rlab(args: list[str], run_dir: Path, data_root: Path | None = None,
             timeout: int = 1800, multirun: bool = False,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m retrieval_lab <args>` in its own process (forked from a pre-imported server:
    tests/cli_process.py), output in ``run_dir`` (the sweep directory with ``multirun``), with
    ``env`` added to the environment; runs whose directories share a parent share an embedding
    cache (``<parent>/cache``)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    if data_root is not None:
        env["RLAB_DATA_DIR"] = str(data_root)
    where = ["-m", f"hydra.sweep.dir={run_dir}"] if multirun else [f"hydra.run.dir={run_dir}"]
    argv = [*where, f"paths.cache_dir={run_dir.parent / 'cache'}", "progress=false", *args]
    return run_module(argv, env, REPO, timeout)


WORDS = ("protein gene cell tumor brain heart virus immune insulin neuron muscle liver kidney "
         "blood bone skin lung sleep diet drug vaccine enzyme receptor hormone").split()


def write_tiny_beir(root: Path, name: str = "tiny", n_docs: int = 60, n_queries: int = 40) -> Path:
    """A small valid BEIR dataset whose queries share words with their one relevant document."""
    rng = random.Random(0)
    path = root / name
    (path / "qrels").mkdir(parents=True)
    docs = [
        {"_id": f"d{i}", "title": f"Study {i}", "text": " ".join(rng.choices(WORDS, k=30))}
        for i in range(n_docs)
    ]
    queries = []
    qrels = []
    for i in range(n_queries):
        doc = docs[i % n_docs]
        queries.append({"_id": f"q{i}", "text": " ".join(doc["text"].split()[:6])})
        qrels.append((f"q{i}", doc["_id"], 1))
    (path / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (path / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    split = n_queries * 3 // 4
    for name_, rows in (("train", qrels[:split]), ("test", qrels[split:])):
        body = "".join(f"{q}\t{d}\t{g}\n" for q, d, g in rows)
        (path / "qrels" / f"{name_}.tsv").write_text("query-id\tcorpus-id\tscore\n" + body)
    return path


@pytest.fixture
def tiny_beir(tmp_path: Path) -> Path:
    """Root directory holding the dataset ``tiny``."""
    write_tiny_beir(tmp_path / "data")
    return tmp_path / "data"


@pytest.fixture(scope="session")
def scifact_root() -> Path:
    if not (SCIFACT_ROOT / "scifact" / "corpus.jsonl").is_file():
        message = f"SciFact not found under {SCIFACT_ROOT}: set RLAB_DATA_DIR"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI must run these, never skip them silently
        pytest.skip(message)
    return SCIFACT_ROOT


# fp32 whatever the CPU: trainer.precision=auto and encode_precision=auto are tested on their own
# (tests/test_precision.py).
TINY = ["model=tiny", "data.name=tiny", "data.download=false", "trainer.max_epochs=2", "trainer.precision=32-true",
        "encode_precision=32-true",
        "data.batch_size=8", "optimizer.lr=1e-3", "evaluator.k=20", "logger=csv"]


@pytest.fixture
def tiny_args() -> list[str]:
    return list(TINY)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The real-SciFact tests first (stable otherwise): under ``-n 2 --dist loadfile`` their file,
    the longest by far, then starts at once on one worker while the other runs every other file."""
    items.sort(key=lambda item: item.get_closest_marker("scifact") is None)
