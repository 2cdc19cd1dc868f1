"""The run: load data and model, then train -> index -> evaluate, each stage timed and recorded."""

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.utilities.rank_zero import rank_zero_only
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from retrieval_lab import PROJECT_DIR
from retrieval_lab.atomic import atomic_write_json, atomic_write_text
from retrieval_lab.config.schema import STAGES
from retrieval_lab.benchmark import summarize
from retrieval_lab.data.beir import load_beir
from retrieval_lab.data.val_split import VAL_SPLIT, file_splits, with_val_split
from retrieval_lab.embedding_cache import corpus_embeddings
from retrieval_lab.index.saved import IndexMismatchError
from retrieval_lab.interruption import RunInterrupted
from retrieval_lab.models.bi_encoder import BiEncoder
from retrieval_lab.models.dataset_lengths import dataset_lengths
from retrieval_lab.provenance import data_checksums, git_state, hardware, package_versions
from retrieval_lab.ranks import start_ranks
from retrieval_lab.record import RunRecord
from retrieval_lab.run_layout import RunLayout
from retrieval_lab.settings import RunSettings
from retrieval_lab.stages.index import build_index, load_index, needs_embeddings
from retrieval_lab.stages.teach import teach
from retrieval_lab.stages.train import build_training_set, train
from retrieval_lab.tracking import Tracker
from retrieval_lab.training.cross_device import world
from retrieval_lab.training.grad_cache import loss_config
from retrieval_lab.training.precision import PrecisionChoice, choose_precision, encoding_precision
from retrieval_lab.training.training_set_file import save_training_set

log = logging.getLogger(__name__)


def run_pipeline(cfg: DictConfig, run_dir: Path, job: dict[str, Any] | None = None,
                 previous: dict[str, Any] | None = None) -> dict[str, float]:
    """Runs the configured stages in their fixed order; returns the evaluation metrics and the
    last validation metrics of training (``val/<metric>``), where those stages ran.

    ``job`` describes how the run was launched (overrides, sweep); it goes into the run record.
    ``previous``: the record of an unfinished run of this config in ``run_dir``, to resume: training
    goes on from its last checkpoint and a finished index is reused; what was cached (negatives,
    teacher scores, embeddings) is found in the caches.
    """
    stages = [s for s in STAGES if s in cfg.stages]
    atomic_write_text(RunLayout(run_dir).config, OmegaConf.to_yaml(cfg, resolve=True))
    record = RunRecord(
        run_dir, previous, task_name=cfg.task_name, seed=cfg.seed, stages_requested=stages, **(job or {}),
        git=git_state(PROJECT_DIR), versions=package_versions(), hardware=hardware(),
    )
    tracker: Tracker | None = None
    try:
        tracker = Tracker([instantiate(c) for c in (cfg.logger or {}).values() if c is not None])
        tracker.log_config(OmegaConf.to_container(cfg, resolve=True))
        results = _run_stages(cfg, stages, run_dir, record, tracker, resuming=previous is not None)
    except BaseException as err:
        status = "interrupted" if isinstance(err, RunInterrupted) else "failed"
        (record.interrupt if status == "interrupted" else record.fail)(err)
        if tracker is not None:
            tracker.close(status)
        raise
    record.finish()
    tracker.log_files(run_dir)
    tracker.close("success")
    return results


def _run_stages(
    cfg: DictConfig, stages: list[str], run_dir: Path, record: RunRecord, tracker: Tracker, resuming: bool
) -> dict[str, float]:
    pl.seed_everything(cfg.seed, workers=True)
    layout, settings = RunLayout(run_dir), RunSettings.from_config(cfg)
    benchmark = instantiate(cfg.benchmark) if cfg.get("benchmark") else None
    evaluator = instantiate(cfg.evaluator) if benchmark is None else None
    splits = []
    if "train" in stages:
        splits.append(cfg.data.train_split)
    if evaluator is not None and "evaluate" in stages:
        splits.append(evaluator.split)
    dataset = None
    if splits or benchmark is None:
        dataset = _load_dataset(cfg, splits, evaluator)
        record.update(data=_data_record(dataset, splits, cfg.data.train_split))
    # Each component built once from its config. The model is None where the index reads the
    # texts themselves (index=bm25); the index is a vector index factory, or BM25 itself.
    model = instantiate(cfg.model) if cfg.model is not None else None
    index = instantiate(cfg.index) if "index" in stages or cfg.load_index else None
    if "train" not in stages and "index" in stages and benchmark is None:
        start_ranks(cfg.trainer, model)  # trainer=ddp_sim: the ranks share the corpus encoding
    precision = _choose_precisions(cfg, stages, model, record)
    encoder = model if model is not None else index  # what turns text into what is scored
    if encoder is not None:
        atomic_write_json(layout.encoding, encoder.encoding_contract())

    results: dict[str, float] = {}
    step = 0
    if "train" in stages:
        # The training components, each built once from its config.
        objective = instantiate(loss_config(cfg.objective))
        miner = instantiate(cfg.miner) if cfg.get("miner") is not None else None
        sampler = instantiate(cfg.sampler)
        negatives, mining = None, None
        if miner is not None:
            with record.stage("mine"):
                negatives, mining = miner.negatives(dataset, cfg.data.train_split, settings.doc_template, model)
            record.update(mining=mining)
        training_set = build_training_set(cfg, objective, dataset, miner, negatives)
        feedback = _trained_feedback(cfg, evaluator)
        if feedback is not None:  # ANCE-PRF: train on the queries as the evaluation expands them
            with record.stage("expand_queries"):
                training_set = feedback.expand_training_set(training_set, settings.cache_dir)
        if cfg.get("teacher") or cfg.get("in_batch_teacher"):
            with record.stage("teach"):
                teachers = [instantiate(cfg[key]) if cfg.get(key) else None for key in ("teacher", "in_batch_teacher")]
                training_set, teaching = teach(training_set, objective.needs, teachers[0],
                                               settings.cache_dir, in_batch_teacher=teachers[1])
            record.update(teacher=teaching)
        if rank_zero_only.rank == 0:  # every rank builds the same set; one writes it
            save_training_set(training_set, layout.training_set_dir)
        record.update(training_set=training_set.summary())
        checkpoint = layout.last_checkpoint if resuming and layout.last_checkpoint.is_file() else None
        previous_validation = record.data["validation"]
        with record.stage("train"):
            trained = train(cfg, model, objective, training_set, miner, sampler, layout.model_dir, tracker.loggers,
                            precision, resume_from=checkpoint)
        trainer = trained.trainer
        step = trainer.global_step
        if trained.mining_history:
            record.update(mining={**mining, **trained.mining_history})
        _log_stage(tracker, record, "train", step)
        # A run resumed from its end-of-training checkpoint trains no epoch: its validation is the earlier one's.
        validation = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        validation = validation or previous_validation
        record.update(validation=validation)
        results.update(validation)
        if not trainer.is_global_zero and benchmark is not None:
            log.info("training done on this rank; rank 0 indexes and evaluates")
            return results
    if benchmark is not None:
        results.update(_run_benchmark(cfg, benchmark, stages, model, record, tracker, step, resuming))
        return results
    metrics = _index_and_evaluate(cfg, stages, dataset, model, index, evaluator, settings, layout, record,
                                  tracker, step, resuming)
    if metrics:
        record.update(metrics=metrics)
    return {**results, **metrics}


def _trained_feedback(cfg: DictConfig, evaluator: Any) -> Any:
    """The evaluator's PRF where its query encoder is the one trained (ANCE-PRF), else None; a
    benchmark's is that of the training dataset's evaluator config."""
    if evaluator is not None:
        prf = evaluator.prf
    else:
        prf = instantiate(cfg.evaluator.prf) if cfg.evaluator.get("prf") is not None else None
    return prf if getattr(prf, "trains_query_encoder", False) else None


def _load_dataset(cfg: DictConfig, splits: list[str], evaluator: Any) -> Any:
    """The run's dataset with the qrels of ``splits``; ``val`` is held out of the train split's."""
    data = cfg.data
    ignored = evaluator.ignore_identical_ids if evaluator is not None else data.ignore_identical_ids
    dataset = load_beir(data.root, data.name, file_splits(splits, data.train_split), download=data.download,
                        strict=data.strict, ignore_identical_ids=ignored)
    if VAL_SPLIT in splits:
        dataset = with_val_split(dataset, data.train_split, data.val_queries, cfg.seed)
    log.info("loaded %s: %d docs, %d queries, splits %s",
             dataset.name, len(dataset.corpus), len(dataset.queries), splits)
    return dataset


def _data_record(dataset: Any, splits: list[str], train_split: str | None) -> dict[str, Any]:
    """run.json's ``data``: what was read, its checksums and its quirks (data/quirks.py)."""
    files = file_splits(splits, train_split)
    return {"name": dataset.name, "path": str(dataset.path), "sha256": data_checksums(dataset.path, files),
            "quirks": {split: dataset.quirks[split].counts() for split in splits}}


def _index_and_evaluate(cfg: DictConfig, stages: list[str], dataset: Any, model: Any, index: Any, evaluator: Any,
                        settings: RunSettings, layout: RunLayout, record: RunRecord, tracker: Tracker, step: int,
                        resuming: bool, suffix: str = "") -> dict[str, float]:
    """The index and evaluate stages over one dataset, into ``layout`` (a benchmark dataset's
    stages are recorded as ``index/<name>``, ``evaluate/<name>``)."""
    index_stage, evaluate_stage = f"index{suffix}", f"evaluate{suffix}"
    rank, size = world()
    every_rank = size > 1 and not suffix  # all the run's processes are here (a benchmark's datasets: rank 0 alone)
    with dataset_lengths(model, cfg.data):
        if every_rank:
            if "index" in stages and model is not None and needs_embeddings(index):
                with record.stage("encode"):  # each rank encodes its shard of the corpus into the cache
                    corpus_embeddings(model, dataset, settings.doc_template, settings.embeddings_dir,
                                      settings.encode_batch_size, progress=settings.progress, sharded=True)
            if rank != 0:
                log.info("rank %d of %d: done; rank 0 indexes and evaluates", rank, size)
                return {}
        if "index" in stages:
            reusable = resuming and record.stage_done(index_stage) and layout.index_info.is_file()
            with record.stage(index_stage):
                retriever = _reused_index(index, model, dataset, settings, layout) if reusable else None
                if retriever is None:
                    retriever = build_index(index, model, dataset, settings, layout.index_dir)
            _log_stage(tracker, record, index_stage, step)
        elif cfg.load_index:
            with record.stage(f"load_index{suffix}"):
                retriever = load_index(index, model, dataset, settings, Path(cfg.load_index))
        if "evaluate" not in stages:
            return {}
        with record.stage(evaluate_stage):
            metrics = evaluator(retriever, dataset, layout.root)
    _log_stage(tracker, record, evaluate_stage, step)
    tracker.log_metrics({f"{evaluator.split}{suffix}/{name}": value for name, value in metrics.items()}, step)
    record.update(timings={**record.data.get("timings", {}), evaluate_stage: evaluator.timings})
    if evaluator.composition:  # which components and weights made the run (a hybrid, PRF)
        record.update(**{f"retrieval{suffix}": evaluator.composition})
    return metrics


def _run_benchmark(cfg: DictConfig, benchmark: Any, stages: list[str], model: Any, record: RunRecord,
                   tracker: Tracker, step: int, resuming: bool) -> dict[str, float]:
    """Index and evaluate each dataset of the benchmark with its own config, into its own
    sub-directory of the run; ``benchmark.json`` after each, so a run cut short keeps what it did."""
    layout = record.layout
    results: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    datasets_record: dict[str, Any] = {}
    for name in benchmark.datasets:
        ds_cfg = benchmark.dataset_config(name, cfg)
        reason = benchmark.available(ds_cfg.data)
        if reason is not None:
            log.warning("benchmark: skipping %s: %s", name, reason)
            skipped[name] = reason
        else:
            evaluator = instantiate(ds_cfg.evaluator)
            dataset = _load_dataset(ds_cfg, [evaluator.split], evaluator)
            datasets_record[name] = _data_record(dataset, [evaluator.split], ds_cfg.data.train_split)
            record.update(benchmark_data=datasets_record)
            index = instantiate(ds_cfg.index) if "index" in stages or cfg.load_index else None
            ds_layout = layout.dataset(name)
            metrics = _index_and_evaluate(ds_cfg, stages, dataset, model, index, evaluator,
                                          RunSettings.from_config(ds_cfg), ds_layout, record, tracker, step,
                                          resuming, suffix=f"/{name}")
            if metrics:
                results[name] = {"dir": name, "split": evaluator.split, "num_queries": len(dataset.qrels[evaluator.split]),
                                 "metrics": metrics}
        if "evaluate" in stages:
            summary = summarize(results, skipped)
            atomic_write_json(layout.benchmark, summary)
    if "evaluate" not in stages:
        return {}
    log.info("benchmark mean over %s: %s", ", ".join(summary["mean_over"]) or "no dataset",
             "  ".join(f"{m} {v:.4f}" for m, v in summary["mean"].items()))
    tracker.log_metrics({f"benchmark/{m}": v for m, v in summary["mean"].items()}, step)
    record.update(metrics=summary["mean"], benchmark={"mean_over": summary["mean_over"], "skipped": skipped})
    return dict(summary["mean"])


def _reused_index(index: Any, model: Any, dataset: Any, settings: RunSettings, layout: RunLayout) -> Any:
    """The index a resumed run built before, if it was built from this model's embeddings of this
    corpus (a run resumed mid-training rebuilds it from the new weights)."""
    try:
        retriever = load_index(index, model, dataset, settings, layout.index_dir)
    except IndexMismatchError as err:
        log.info("the run's index is not this model's (%s): building it again", err)
        return None
    log.info("reusing the run's index: %s", layout.index_dir)
    return retriever


def _choose_precisions(cfg: DictConfig, stages: list[str], model: Any, record: RunRecord) -> PrecisionChoice | None:
    """The training precision (``trainer.precision``) and the encoding one (``encode_precision``,
    set on a bi-encoder ``model``), ``auto`` decided by the hardware, logged and recorded in
    run.json (``precision``) before any work; returns the training one (None without a train
    stage)."""
    accelerator = cfg.trainer.get("accelerator")
    chosen = {}
    if "train" in stages:
        chosen["train"] = choose_precision(cfg.trainer.get("precision"), accelerator)
    if isinstance(model, BiEncoder):  # what encodes: BM25 has no model, a cross-encoder embeds nothing
        chosen["encode"] = encoding_precision(cfg.get("encode_precision"), accelerator)
        model.encode_in(chosen["encode"].precision)
    for stage, choice in chosen.items():
        log.info("%s precision: %s on %s (%s)", stage, choice.precision, choice.device, choice.reason)
    record.update(precision={stage: choice.as_record() for stage, choice in chosen.items()})
    return chosen.get("train")


def _log_stage(tracker: Tracker, record: RunRecord, name: str, step: int) -> None:
    entry = record.data["stages"][name]
    tracker.log_metrics({f"stage/{name}/seconds": entry["seconds"],
                         f"stage/{name}/peak_rss_mb": entry["peak_rss_mb"]}, step)
