"""``rlab``: compose the config with Hydra, validate it, run the pipeline."""

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from retrieval_lab.config.validation import ConfigError, validate_config
from retrieval_lab.errors import DataError
from retrieval_lab.index.base import IndexMismatchError

# The config tree is the repository's top-level conf/ (the package is installed editable).
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        validate_config(cfg)
        from retrieval_lab.pipeline import run_pipeline  # heavy imports only once the config is sound

        metrics = run_pipeline(cfg, Path(HydraConfig.get().runtime.output_dir))
    except ConfigError as err:
        print(f"rlab: config error: {err}", file=sys.stderr)
        sys.exit(2)
    except DataError as err:
        print(f"rlab: data error: {err}", file=sys.stderr)
        sys.exit(2)
    except IndexMismatchError as err:
        print(f"rlab: index error: {err}", file=sys.stderr)
        sys.exit(2)
    return metrics.get(cfg.get("optimized_metric") or "ndcg@10")
