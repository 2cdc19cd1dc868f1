"""Hard negatives in training: the batch columns, STAR's mix, the ANCE-style refresh during a
run, and the miners as config choices end to end (run record, cache reuse, bad settings)."""

import json
import os
from collections.abc import Mapping
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from retrieval_lab import CONF_DIR
from retrieval_lab.config import validate_config
from retrieval_lab.data.beir import load_beir
from retrieval_lab.embedding_cache import model_fingerprint
from retrieval_lab.encoding import encode_texts
from retrieval_lab.errors import DataError
from retrieval_lab.mining import DenseMiner, DenseRefreshMiner, FileMiner, StarMiner
from retrieval_lab.models.export import export_model
from retrieval_lab.objectives import InfoNCE, MarginMSE
from retrieval_lab.sampling import NegativePicker, cluster_queries, topic_batches
from retrieval_lab.training.datamodule import ContrastiveDataModule
from retrieval_lab.training.module import RetrieverModule, contrastive_loss
from retrieval_lab.training.training_set import judged_pairs
from tests.conftest import compose_config, run_rlab
from tests.test_cross_device import _free_port, _no_dropout
from tests.test_model import tiny

TEMPLATE = "{title} {text}"


def _datamodule(dataset, model, negatives, per_pair, **kwargs) -> ContrastiveDataModule:
    training_set = judged_pairs(dataset, "train", TEMPLATE)
    if negatives is not None:
        training_set = training_set.with_negatives(negatives, per_pair, seed=0)
    return ContrastiveDataModule(training_set, model.tokenization, 4, seed=0, **kwargs)


def test_pairs_carry_their_negatives_as_extra_columns_never_a_positive(tiny_beir: Path):
    dataset = load_beir(tiny_beir, "tiny", ["train"], download=False)
    model = tiny()
    positive = {q: next(iter(docs)) for q, docs in dataset.qrels["train"].items()}
    # q0 gets one candidate that is its own positive (dropped) and one real one; q1 none at all.
    negatives = {"q0": [(positive["q0"], 9.0), ("d50", 1.0)], "q2": [("d51", 2.0), ("d52", 1.0)]}
    dm = _datamodule(dataset, model, negatives, 2, picker=NegativePicker("top"))
    keys = {d: i for i, d in enumerate(dataset.corpus)}
    pairs = [p for p in dm.training_set.pairs if p.query_id in ("q0", "q1", "q2")]
    batch = dm.collate(pairs)
    assert batch["doc"]["input_ids"].shape[0] == batch["doc_keys"].shape[0] == 3 + 3 * 2
    columns = batch["doc_keys"].tolist()
    assert columns[:3] == [keys[positive[p.query_id]] for p in pairs]
    by_query = dict(zip([p.query_id for p in pairs], [columns[3 + 2 * i:5 + 2 * i] for i in range(3)]))
    assert by_query["q2"] == [keys["d51"], keys["d52"]]
    assert by_query["q0"][0] == keys["d50"]  # the positive was dropped; a random doc tops it up
    for query_id, cols in by_query.items():
        assert keys[positive[query_id]] not in cols and len(set(cols)) == 2
    assert dm.training_set.topped_up == 1 + 2 * 28  # q0 lacks one, the 28 queries without negatives two each
    assert batch["pair_columns"].tolist() == [[0, 3, 4], [1, 5, 6], [2, 7, 8]]
    assert dm.collate(pairs)["doc_keys"][3:].tolist() == columns[3:]  # the filled pools are fixed


def test_batches_carry_the_teachers_score_of_each_pair(tiny_beir: Path):
    dataset = load_beir(tiny_beir, "tiny", ["train"], download=False)
    model = tiny()
    dm = _datamodule(dataset, model, {"q0": [("d50", 1.0), ("d51", 0.5)]}, 2, picker=NegativePicker("top"))
    pairs = dm.training_set.scored_pairs()
    assert len(pairs) == 30 * 3 and ("q0", "d50") in pairs and ("q0", "d0") in pairs
    scores = {pair: float(i) for i, pair in enumerate(pairs)}
    dm.use(dm.training_set.with_teaching(teacher_scores=scores))
    batch_pairs = [p for p in dm.training_set.pairs if p.query_id in ("q0", "q1")]
    batch = dm.collate(batch_pairs)
    ids = list(dataset.corpus)
    for row, pair in enumerate(batch_pairs):
        docs = [ids[k] for k in batch["doc_keys"][batch["pair_columns"][row]].tolist()]
        assert docs[0] == pair.doc_id
        assert batch["teacher_pairs"][row].tolist() == [scores[(pair.query_id, d)] for d in docs]
    del scores[("q0", "d50")]
    with pytest.raises(DataError, match="no score for .*'q0', 'd50'"):
        dm.collate(batch_pairs)


def test_star_mixes_hard_and_random_negatives(tiny_beir: Path, tmp_path: Path):
    dataset = load_beir(tiny_beir, "tiny", ["train"], download=False)
    miner = StarMiner(model=tiny(), num_negatives=2, rank_range=(1, 10), cache_dir=tmp_path,
                      random_negatives=3, seed=5)
    assert miner.per_pair == 5
    result = miner.mine(dataset, "train", TEMPLATE)
    for query_id, negatives in result.negatives.items():
        scored = [d for d, s in negatives if s is not None]
        unscored = [d for d, s in negatives if s is None]
        assert len(scored) == 2 and len(unscored) == 3 and len(set(scored + unscored)) == 5
        assert not set(scored + unscored) & set(dataset.qrels["train"][query_id])


def _refresh_rank(rank: int, world: int, port: int, root: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        dataset = load_beir(root, "tiny", ["train"], download=False)
        miner = DenseRefreshMiner(refresh_every_n_steps=3, num_negatives=2, rank_range=(1, 20))
        [refresh] = miner.callbacks(dataset, "train", TEMPLATE)
        if rank > 0:  # a rank other than 0 must not mine
            refresh.miner.mine = lambda *args, **kwargs: pytest.fail("rank 1 mined")
        result = refresh.mined(tiny(), step=3)
        Path(f"{out}.{rank}.json").write_text(json.dumps(result.negatives))
    finally:
        dist.destroy_process_group()


def test_under_ddp_a_refresh_is_mined_on_rank_0_and_broadcast(tiny_beir: Path, tmp_path: Path):
    out = str(tmp_path / "negatives")
    mp.spawn(_refresh_rank, args=(2, _free_port(), str(tiny_beir), out), nprocs=2, join=True)
    dataset = load_beir(tiny_beir, "tiny", ["train"], download=False)
    miner = DenseRefreshMiner(refresh_every_n_steps=3, num_negatives=2, rank_range=(1, 20))
    [refresh] = miner.callbacks(dataset, "train", TEMPLATE)
    alone = json.loads(json.dumps(refresh.mined(tiny(), step=3).negatives))
    assert json.loads(Path(f"{out}.0.json").read_text()) == json.loads(Path(f"{out}.1.json").read_text()) == alone


def test_dense_refresh_swaps_in_new_negatives_during_training(tiny_beir: Path):
    dataset = load_beir(tiny_beir, "tiny", ["train"], download=False)
    model = tiny()
    miner = DenseRefreshMiner(refresh_every_n_steps=3, num_negatives=2, rank_range=(1, 20))
    start = miner.mine(dataset, "train", TEMPLATE, model)
    dm = _datamodule(dataset, model, start.negatives, 2, picker=NegativePicker("top"))
    [refresh] = miner.callbacks(dataset, "train", TEMPLATE)
    served = []

    class Probe(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            served.append((trainer.global_step, dict(dm.training_set.negatives)))

    module = RetrieverModule(model, InfoNCE(0.05), optimizer=lambda g: torch.optim.AdamW(g, lr=3e-3))
    trainer = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, callbacks=[refresh, Probe()],
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, datamodule=dm)
    assert [entry["step"] for entry in refresh.history] == [3, 6, 9, 12, 15]  # 8 steps per epoch
    assert miner.history() == {"refreshes": refresh.history}
    assert any(entry["changed"] > 0 for entry in refresh.history)
    assert dm.training_set.negatives != start.negatives  # the module serves the refreshed negatives
    before = [n for step, n in served if step < 3]
    after = [n for step, n in served if 3 <= step < 6]
    assert before and after and all(n == start.negatives for n in before) and after[0] != start.negatives
    for negatives in dm.training_set.negatives.values():
        assert len(negatives) == 2


def _record(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def test_bm25_negatives_end_to_end_are_recorded_and_reused(tmp_path: Path, tiny_beir: Path, tiny_args):
    args = [*tiny_args, "miner=bm25", "miner.num_negatives=2", "miner.rank_range=[2,10]",
            "sampler=tas_balanced", "sampler.n_clusters=3"]
    first = run_rlab(args, tmp_path / "first", tiny_beir)
    assert first.returncode == 0, first.stderr[-3000:]
    mining = _record(tmp_path / "first")["mining"]
    assert mining["miner"] == "bm25" and mining["cache_hit"] is False and mining["queries"] == 30
    assert mining["drops"]["positive"] > 0 and set(mining["drops"]) == {
        "positive", "absolute_margin", "relative_margin", "max_score"}
    assert Path(mining["file"]).is_file() and "dropped per filter" in (tmp_path / "first" / "rlab.log").read_text()
    assert _record(tmp_path / "first")["stages"]["mine"]["status"] == "done"
    second = run_rlab(args + ["seed=7"], tmp_path / "second", tiny_beir)  # top sampling: seed-free
    assert second.returncode == 0, second.stderr[-3000:]
    reused = _record(tmp_path / "second")["mining"]
    assert reused["cache_hit"] is True and reused["file"] == mining["file"]
    log = (tmp_path / "second" / "rlab.log").read_text()
    assert reused["drops"] == mining["drops"] and "negatives cache hit" in log and "mined tiny/train" not in log


def test_bad_miner_settings_fail_before_any_work(tmp_path: Path, tiny_beir: Path, tiny_args):
    wrong = run_rlab([*tiny_args, "miner=bm25", "+miner.refresh_every_n_steps=5"], tmp_path / "a", tiny_beir)
    assert wrong.returncode == 2
    assert "miner.refresh_every_n_steps: not a parameter of retrieval_lab.mining.BM25Miner" in wrong.stderr
    typo = run_rlab([*tiny_args, "miner=bm25", "+miner.bm25.k_1=1.2"], tmp_path / "b", tiny_beir)
    assert typo.returncode == 2 and "miner.bm25.k_1: not a parameter" in typo.stderr
    bad = tmp_path / "negatives.jsonl"
    bad.write_text('{"query_id": "q0", "negatives": ["d1"]}\n{"query_id": "q1", "negatives": ["nope"]}\n')
    own = run_rlab([*tiny_args, "miner=file", f"miner.path={bad}"], tmp_path / "c", tiny_beir)
    assert own.returncode == 2 and f"{bad}:2: negative 'nope' is not in the corpus" in own.stderr


@pytest.mark.parametrize("option", [*(f"miner={p.stem}" for p in sorted((CONF_DIR / "miner").glob("[!_]*.yaml"))),
                                    *(f"sampler={p.stem}" for p in sorted((CONF_DIR / "sampler").glob("*.yaml")))])
def test_every_miner_and_sampler_composes_and_validates(option):
    cfg = compose_config([option])
    with open_dict(cfg):
        cfg.paths.output_dir = "/tmp/unused"  # ${hydra:...} only resolves inside a Hydra run
    missing = OmegaConf.missing_keys(cfg)  # the values a user must give (a file's path), here made up
    with open_dict(cfg):
        for key in missing:
            OmegaConf.update(cfg, key, f"/tmp/{key}")
    validate_config(cfg)
    assert all(key.startswith(option.split("=")[0] + ".") for key in missing), missing


def test_a_users_negatives_file_is_read_as_is(tiny_beir: Path, tmp_path: Path):
    dataset = load_beir(tiny_beir, "tiny", ["train"], download=False)
    path = tmp_path / "mine.jsonl"
    path.write_text('{"query_id": "q0", "negatives": ["d7", "d9"], "scores": [2.5, null]}\n')
    negatives, record = FileMiner(str(path)).negatives(dataset, "train", TEMPLATE, tiny())
    assert negatives == {"q0": [("d7", 2.5), ("d9", None)]}
    assert record == {"miner": "file", "file": str(path), "queries": 1}


def test_tas_balanced_loader_batches_hold_one_query_cluster(tiny_beir: Path):
    dataset = load_beir(tiny_beir, "tiny", ["train"], download=False)
    model = tiny()
    factory = topic_batches(model, dataset, n_clusters=4, batch_size=4, seed=0, iterations=10, encode_batch_size=16)
    dm = _datamodule(dataset, model, None, 0, batch_sampler=factory)
    query_ids = sorted({p.query_id for p in dm.training_set.pairs})
    embeddings = encode_texts(model, [dataset.queries[q] for q in query_ids], "query", 16, progress=False)
    cluster = dict(zip(query_ids, cluster_queries(embeddings, 4, seed=0, iterations=10).tolist()))
    texts = {dataset.queries[q].lower(): q for q in query_ids}
    assert len(texts) == len(query_ids)  # a decoded query names its query
    sizes = {c: list(cluster.values()).count(c) for c in set(cluster.values())}
    assert len(sizes) == 4 and all(sizes.values()), sizes  # 4 non-empty clusters of the 30 queries
    batches = list(dm.train_dataloader())
    assert sum(len(b["doc_keys"]) for b in batches) == len(dm.training_set.pairs)
    seen, batch_clusters = [], []
    for batch in batches:
        decoded = model.tokenization.tokenizer.batch_decode(batch["query"]["input_ids"], skip_special_tokens=True)
        ids = [texts[d] for d in decoded]
        clusters = {cluster[q] for q in ids}
        assert len(clusters) == 1, (ids, clusters)  # TAS-B: every batch from one cluster
        batch_clusters.append(clusters.pop())
        seen += ids
    assert sorted(seen) == query_ids  # one epoch: every pair (one per query here) once
    assert set(batch_clusters) == set(sizes)  # the batches come from every cluster, not one
    # each cluster is cut into batches of 4 (its last one smaller): ceil(size / 4) batches each
    assert {c: batch_clusters.count(c) for c in sizes} == {c: -(-n // 4) for c, n in sizes.items()}


def test_hard_negatives_and_topic_batches_under_ddp(tiny_beir: Path, tmp_path: Path, tiny_args):
    run_dir = tmp_path / "ddp"
    result = run_rlab([*tiny_args, "trainer=ddp_sim", "miner=bm25", "miner.num_negatives=3", "miner.per_pair=2",
                       "sampler=tas_balanced", "sampler.n_clusters=2"], run_dir, tiny_beir, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    record = _record(run_dir)
    assert record["status"] == "done" and record["mining"]["queries"] == 30
    assert "TAS-Balanced: 30 queries in 2 clusters" in (run_dir / "rlab.log").read_text()


def test_the_mining_model_is_the_run_model_an_export_or_a_model_config(tmp_path: Path):
    run_model = tiny()
    assert DenseMiner().mining_model(run_model) is run_model
    exported = export_model(tiny(), tmp_path / "model")
    assert model_fingerprint(DenseMiner(str(exported)).mining_model(run_model)) == model_fingerprint(run_model)
    miner = instantiate({"_target_": "retrieval_lab.mining.DenseMiner",
                         "model": {"_target_": "retrieval_lab.models.BiEncoder", "name_or_path": str(exported)}})
    built = miner.mining_model(run_model)
    assert built is not run_model and model_fingerprint(built) == model_fingerprint(run_model)


def test_no_miner_is_a_null_miner():
    assert compose_config(["miner=none"]).miner is None and compose_config([]).miner is None
    assert compose_config(["miner=star"]).miner._target_ == "retrieval_lab.mining.StarMiner"


# Hard-negative columns across 2 processes: InfoNCE reads every column (in-batch and hard
# negatives of all ranks), Margin-MSE reads each query's own columns (pair_columns, shifted by the
# rank's offset into the gathered documents).
HARD_OBJECTIVES = {"infonce": lambda: InfoNCE(0.05), "margin_mse": lambda: MarginMSE(student_scale=20.0)}


def _plain(batch: dict) -> dict:
    """The batch with its tokenizer outputs as plain dicts (torch.load reads them back)."""
    return {k: dict(v) if isinstance(v, Mapping) else v for k, v in batch.items()}


def _hard_negative_losses(batch: dict, gather: bool) -> dict[str, tuple[torch.Tensor, dict]]:
    """Each objective's loss and parameter gradients on ``batch`` (the tiny model, no dropout)."""
    out = {}
    for name, make in HARD_OBJECTIVES.items():
        model = _no_dropout(tiny())
        model.train()
        loss = contrastive_loss(model, make(), batch, gather)
        loss.backward()
        out[name] = loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out


def _hard_negative_rank(rank: int, world: int, port: int, batches: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        batch = torch.load(batches)["halves"][rank]
        results = {}
        for name, (loss, grads) in _hard_negative_losses(batch, gather=True).items():
            for grad in grads.values():  # what DDP does after backward
                dist.all_reduce(grad)
                grad /= world
            losses = [torch.zeros_like(loss) for _ in range(world)]
            dist.all_gather(losses, loss)
            results[name] = {"loss": torch.stack(losses).mean(), "grads": grads}
        if rank == 0:
            torch.save(results, out)
    finally:
        dist.destroy_process_group()


def test_hard_negative_columns_across_two_processes_equal_one_process(tiny_beir: Path, tmp_path: Path):
    dataset = load_beir(tiny_beir, "tiny", ["train"], download=False)
    model = tiny()
    positive = {q: next(iter(docs)) for q, docs in dataset.qrels["train"].items()}
    chosen = [f"q{i}" for i in range(6)]  # ranks 0 and 1 get q0-q2 and q3-q5
    # two hard negatives each, from outside the batch, except that q0's first is q4's positive: on
    # rank 0 it is a negative of q0 and, gathered, a false negative of q4 (rank 1) to be masked
    negatives = {q: [(f"d{40 + 2 * i}", 2.0), (f"d{41 + 2 * i}", 1.0)] for i, q in enumerate(chosen)}
    negatives["q0"][0] = (positive["q4"], 3.0)
    dm = _datamodule(dataset, model, negatives, 2, picker=NegativePicker("top"))
    scores = {pair: float(i % 7) - 3.0 for i, pair in enumerate(dm.training_set.scored_pairs())}
    dm.use(dm.training_set.with_teaching(teacher_scores=scores))
    pairs = {p.query_id: p for p in dm.training_set.pairs}
    halves = [_plain(dm.collate([pairs[q] for q in chosen[:3]])), _plain(dm.collate([pairs[q] for q in chosen[3:]]))]
    whole = _plain(dm.collate([pairs[q] for q in chosen]))
    assert [h["doc_keys"].shape[0] for h in halves] == [3 + 3 * 2] * 2 and whole["doc_keys"].shape[0] == 6 + 6 * 2
    assert sorted(torch.cat([h["doc_keys"] for h in halves]).tolist()) == sorted(whole["doc_keys"].tolist())
    assert halves[1]["pair_columns"].tolist() == [[0, 3, 4], [1, 5, 6], [2, 7, 8]]  # before the rank offset
    batches, out = str(tmp_path / "batches.pt"), str(tmp_path / "rank0.pt")
    torch.save({"halves": halves}, batches)
    mp.spawn(_hard_negative_rank, args=(2, _free_port(), batches, out), nprocs=2, join=True)
    distributed = torch.load(out)

    single = _hard_negative_losses(whole, gather=False)
    for name, (loss, grads) in single.items():
        assert distributed[name]["loss"].item() == pytest.approx(loss.item(), rel=1e-5), name
        assert distributed[name]["grads"].keys() == grads.keys() and grads, name
        for param, grad in grads.items():  # float rounding only: off by < 1e-4 of the tensor's largest entry
            error = (distributed[name]["grads"][param] - grad).abs().max().item()
            assert error <= 1e-4 * grad.abs().max().item() + 1e-6, (name, param, error)
    # the hard negatives count: without them (in-batch negatives only) the InfoNCE loss differs
    in_batch_only = {k: v for k, v in whole.items() if k != "pair_columns"}
    in_batch_only["doc"] = {k: v[:6] for k, v in whole["doc"].items()}
    in_batch_only["doc_keys"] = whole["doc_keys"][:6]
    model = _no_dropout(tiny())
    fewer = contrastive_loss(model, InfoNCE(0.05), in_batch_only, False).item()
    assert fewer < single["infonce"][0].item() - 1e-3
