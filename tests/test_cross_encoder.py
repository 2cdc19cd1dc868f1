"""The cross-encoder: trained from the config, exported, and re-ranking a first stage's top k."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from sentence_transformers import CrossEncoder as STCrossEncoder

from retrieval_lab.cli import CONF_DIR
from retrieval_lab.data.beir import document_text, load_beir
from retrieval_lab.evaluation import read_run, trec_order
from retrieval_lab.evaluation.rerank import rerank
from retrieval_lab.models.cross_encoder import CrossEncoder
from retrieval_lab.objectives import ListwiseCE, LossInputs, PointwiseBCE, WeightedSum
from retrieval_lab.training.cross_encoder_module import CrossEncoderModule
from retrieval_lab.training.grad_cache import loss_config
from tests.conftest import compose_config, run_rlab
from tests.test_teachers import tiny_cross_encoder

CROSS = ["experiment=scifact_cross_encoder", "model=tiny_cross_encoder", "miner.num_negatives=3",
         "data.batch_size=4"]


def test_rerank_reorders_the_top_and_keeps_the_tail_below(tiny_beir: Path):
    dataset = load_beir(tiny_beir, "tiny", ["test"], download=False)
    queries = dataset.split_queries("test")
    run = {q: {f"d{i}": 100.0 - i for i in range(12)} for q in queries}
    model = tiny_cross_encoder()
    reranked, _ = rerank(run, dataset, queries, model, depth=5, doc_template="{title} {text}")
    for q in queries:
        order = [d for d, _ in trec_order(reranked[q])]
        top = [f"d{i}" for i in range(5)]
        scores = model.predict([queries[q]] * 5, [document_text(dataset.corpus[d], "{title} {text}") for d in top])
        assert order[:5] == [top[i] for i in torch.argsort(scores, descending=True, stable=True).tolist()]
        assert order[5:] == [f"d{i}" for i in range(5, 12)]


def test_cross_encoder_trains_exports_and_reranks(tmp_path: Path, tiny_beir: Path, tiny_args):
    trained = run_rlab([*tiny_args, *CROSS], tmp_path / "ce", tiny_beir)
    assert trained.returncode == 0, trained.stderr[-3000:]
    record = json.loads((tmp_path / "ce" / "run.json").read_text())
    assert list(record["stages"]) == ["mine", "train"] and record["status"] == "done"
    export = tmp_path / "ce" / "model"
    assert (export / "config.json").is_file() and (export / "tokenizer.json").is_file()
    _sentence_transformers_reranks_as_we_do(export, tiny_beir)

    ranked = run_rlab([*tiny_args, "stages=[index,evaluate]", f"evaluator.rerank={export}", "evaluator.rerank_depth=5"],
                      tmp_path / "rr", tiny_beir)
    assert ranked.returncode == 0, ranked.stderr[-3000:]
    metrics = json.loads((tmp_path / "rr" / "metrics.json").read_text())
    assert metrics["rerank"]["depth"] == 5 and set(metrics["first_stage"]["metrics"]) == set(metrics["metrics"])
    first, final = read_run(tmp_path / "rr" / "run_first_stage.trec"), read_run(tmp_path / "rr" / "run.trec")
    for q in first:
        head = [d for d, _ in trec_order(first[q])]
        assert sorted(d for d, _ in trec_order(final[q])[:5]) == sorted(head[:5])
        assert [d for d, _ in trec_order(final[q])[5:]] == head[5:]


def _sentence_transformers_reranks_as_we_do(export: Path, data_root: Path) -> None:
    """sentence-transformers' CrossEncoder loads the export and scores every (test query, document)
    pair as our model does, so it re-ranks as ours does."""
    dataset = load_beir(data_root, "tiny", ["test"], download=False)
    queries, qrels = dataset.split_queries("test"), dataset.qrels["test"]
    doc_ids = list(dataset.corpus)
    texts = [document_text(dataset.corpus[d], "{title} {text}") for d in doc_ids]
    ours = CrossEncoder(str(export), max_length=96)  # model=tiny_cross_encoder's max_length
    logits = STCrossEncoder(str(export), max_length=96, device="cpu", activation_fn=torch.nn.Identity())
    default = STCrossEncoder(str(export), max_length=96, device="cpu")  # a one-label model: sigmoid
    scores = {"ours": [], "st": []}
    for query in queries.values():
        ours_q = ours.predict([query] * len(texts), texts).numpy()
        st_q = np.asarray(logits.predict([(query, t) for t in texts], batch_size=64))
        np.testing.assert_allclose(st_q, ours_q, atol=1e-5, rtol=0)  # the same logits
        probabilities = np.asarray(default.predict([(query, t) for t in texts], batch_size=64))
        np.testing.assert_allclose(probabilities, torch.sigmoid(torch.from_numpy(ours_q)).numpy(), atol=1e-6, rtol=0)
        scores["ours"].append(ours_q)
        scores["st"].append(st_q)
    # the share of (relevant, non-relevant) document pairs each orders right, over the 10 test queries
    share = {}
    for name, per_query in scores.items():
        right = []
        for query_id, values in zip(queries, per_query):
            for relevant in (doc_ids.index(d) for d in qrels[query_id]):
                right.append((values[relevant] > np.delete(values, relevant)).mean())
        share[name] = float(np.mean(right))
    # (measured 0.56 at 3234da0: this test's 2-epoch training of a random tiny model learns little)
    assert share["st"] >= share["ours"] and 0 < share["st"] < 1, share


def test_a_cross_encoder_cannot_index(tmp_path: Path, tiny_beir: Path, tiny_args):
    result = run_rlab([*tiny_args, *CROSS, "stages=[train,index,evaluate]"], tmp_path / "run", tiny_beir)
    assert result.returncode == 2 and "cannot index a corpus" in result.stderr


def _group_logits() -> torch.Tensor:
    """[4, 1 + 5] logits of 4 queries' groups, the positive in column 0."""
    torch.manual_seed(0)
    return 3 * torch.randn(4, 6)


def _objective(name: str) -> torch.nn.Module:
    return instantiate(OmegaConf.load(CONF_DIR / "objective" / f"{name}.yaml"))


def test_the_cross_encoder_losses_compute_from_loss_inputs_bit_for_bit_as_before():
    logits = _group_logits()
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1
    # the losses as they were computed from the logits before LossInputs
    bce = F.binary_cross_entropy_with_logits(logits, labels)
    listwise = F.cross_entropy(logits, torch.zeros(4, dtype=torch.long))
    inputs = LossInputs(pair_logits=logits)
    assert torch.equal(_objective("ce_bce").compute(inputs), bce)
    assert torch.equal(_objective("ce_listwise").compute(inputs), listwise)
    # and both are their formulas
    rows = logits.double().tolist()
    log_sigmoid = lambda x: -math.log1p(math.exp(-x))  # noqa: E731
    by_hand = -sum(log_sigmoid(r[0]) + sum(log_sigmoid(-x) for x in r[1:]) for r in rows) / 24
    assert bce.item() == pytest.approx(by_hand, rel=1e-6)
    by_hand = -sum(r[0] - math.log(sum(math.exp(x) for x in r)) for r in rows) / 4
    assert listwise.item() == pytest.approx(by_hand, rel=1e-6)


def test_a_weighted_sum_combines_ce_bce_and_ce_listwise_with_their_weights():
    bce, listwise = _objective("ce_bce"), _objective("ce_listwise")
    combined = WeightedSum({"bce": {"loss": bce, "weight": 0.3}, "listwise": {"loss": listwise, "weight": 2.0}})
    logits = _group_logits().requires_grad_(True)
    inputs = LossInputs(pair_logits=logits)
    total = combined.compute(inputs)
    terms = {"bce": bce.compute(inputs), "listwise": listwise.compute(inputs)}
    assert torch.equal(total, 0.3 * terms["bce"] + 2.0 * terms["listwise"])
    assert combined.last_terms == {name: value.item() for name, value in terms.items()}
    assert total.item() != pytest.approx((terms["bce"] + terms["listwise"]).item())  # the weights count
    (gradient,) = torch.autograd.grad(total, logits)
    separately = [torch.autograd.grad(term, logits)[0] for term in (terms["bce"], terms["listwise"])]
    torch.testing.assert_close(gradient, 0.3 * separately[0] + 2.0 * separately[1])
    # the shipped combination, reweighted from the command line
    cfg = compose_config(["objective=ce_listwise_bce", "objective.terms.bce.weight=0.5"])
    shipped = instantiate(loss_config(cfg.objective))
    assert shipped.weights == {"listwise": 1.0, "bce": 0.5} and shipped.needs == frozenset()
    assert torch.equal(shipped.compute(inputs), 1.0 * terms["listwise"] + 0.5 * terms["bce"])


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_the_training_step_gives_the_objective_each_groups_logits():
    model = tiny_cross_encoder().eval()  # no dropout: the step's forward and this test's agree
    queries = ["what is a cell", "dna repair"]
    docs = ["a cell is a unit", "stars", "rocks", "dna repair mends", "music", "rain"]
    batch = {"pairs": model.tokenize([q for q in queries for _ in range(3)], docs), "group": torch.tensor(3)}
    objective = WeightedSum({"bce": {"loss": PointwiseBCE(), "weight": 0.3},
                             "listwise": {"loss": ListwiseCE(), "weight": 2.0}})
    module = CrossEncoderModule(model, objective, optimizer=lambda groups: torch.optim.AdamW(groups))
    loss = module.training_step(batch, 0)
    with torch.no_grad():
        logits = model(batch["pairs"]).view(2, 3)
    assert torch.equal(loss.detach(), 0.3 * PointwiseBCE()(logits) + 2.0 * ListwiseCE()(logits))


def test_a_cross_encoder_trains_with_a_weighted_sum_and_logs_each_term(tmp_path: Path, tiny_beir: Path, tiny_args):
    run_dir = tmp_path / "ce_sum"
    result = run_rlab([*tiny_args, *CROSS, "objective=ce_listwise_bce", "objective.terms.bce.weight=0.5",
                       "trainer.log_every_n_steps=1"], run_dir, tiny_beir)
    assert result.returncode == 0, result.stderr[-3000:]
    header = (run_dir / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/loss", "train/listwise", "train/bce"} <= set(header)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "done"
