"""The cross-encoder-vetted dense miner: a candidate the cross-encoder scores within the margin of
the weakest positive is dropped and counted; end to end, the drops reach the run record."""

import json
from pathlib import Path

import pytest

from retrieval_lab.data.beir import load_beir
from retrieval_lab.mining import DenseMiner
from retrieval_lab.mining.cross_encoder_filter import CrossEncoderFilterMiner
from retrieval_lab.teachers import CrossEncoderTeacher
from tests.conftest import run_rlab
from tests.test_model import tiny
from tests.test_teachers import tiny_cross_encoder

TEMPLATE = "{title} {text}"
WINDOW = {"num_negatives": 3, "rank_range": (2, 12)}


@pytest.mark.parametrize("margin", [0.0, 0.01])
def test_candidates_the_cross_encoder_ranks_near_the_positive_are_dropped(tiny_beir: Path, margin: float):
    dataset = load_beir(tiny_beir, "tiny", ["train"], download=False)
    model, teacher = tiny(), CrossEncoderTeacher(tiny_cross_encoder(), batch_size=16)
    vetted = CrossEncoderFilterMiner(teacher, margin=margin, model=model, **WINDOW).mine(dataset, "train", TEMPLATE)
    plain = DenseMiner(model, **WINDOW)
    rankings, _ = plain.rank(dataset, dataset.split_queries("train"),
                             {q: list(d) for q, d in dataset.qrels["train"].items()}, TEMPLATE, 12)
    expected_drops = 0
    for query_id, ranking in rankings.items():
        positives = list(dataset.qrels["train"][query_id])
        window = [d for d, _ in ranking[1:12] if d not in positives]
        pairs = [(query_id, d) for d in positives + window]
        scores = dict(zip(pairs, teacher.score(dataset, pairs, TEMPLATE).tolist()))
        floor = min(scores[(query_id, p)] for p in positives)
        kept = [d for d in window if scores[(query_id, d)] <= floor - margin]
        expected_drops += len(window) - len(kept)
        assert [d for d, _ in vetted.negatives.get(query_id, [])] == kept[:3]
    assert vetted.drops["cross_encoder"] == expected_drops > 0
    assert "cross_encoder" not in plain.mine(dataset, "train", TEMPLATE).drops


def test_the_drops_reach_the_run_record(tmp_path: Path, tiny_beir: Path, tiny_args):
    cross_encoder = tiny_cross_encoder().export(tmp_path / "cross_encoder")
    run_dir = tmp_path / "run"
    result = run_rlab([*tiny_args, "miner=dense_cross_encoder", f"miner.cross_encoder.path={cross_encoder}",
                       "miner.cross_encoder.max_length=64", "miner.num_negatives=2", "miner.rank_range=[2,10]",
                       "stages=[train]", "trainer.max_epochs=1"], run_dir, tiny_beir)
    assert result.returncode == 0, result.stderr[-3000:]
    mining = json.loads((run_dir / "run.json").read_text())["mining"]
    assert mining["miner"] == "dense_cross_encoder" and mining["drops"]["cross_encoder"] > 0
    assert mining["model"]["cross_encoder"]["kind"] == "cross_encoder"
    missing = run_rlab([*tiny_args, "miner=dense_cross_encoder"], tmp_path / "missing", tiny_beir)
    assert missing.returncode == 2 and "miner.cross_encoder.path" in missing.stderr
