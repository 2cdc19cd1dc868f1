"""The names of the files in a run directory, and in a sweep directory, in one place.

Every writer and reader of a run directory takes its paths from :class:`RunLayout` (or, where it
needs the bare name, from the constants below), so a name is spelled once. The names are a file
format: run directories written by older versions load because they never change.

A run directory (``hydra.run.dir``, or ``<sweep dir>/<job num>/`` in a sweep)::

    <run dir>/
    ├── .hydra/                 Hydra: the composed config, hydra.yaml, overrides.yaml (the
    │                           command-line overrides, read when run.json is missing)
    ├── rlab.log                Hydra's job log (conf/hydra/default.yaml)
    ├── config.yaml             pipeline: the resolved config, written before any stage
    ├── run.json                record.RunRecord: the run record, rewritten at every change
    ├── encoding.json           pipeline: the model's encoding contract (pooling, prefixes, ...)
    ├── checkpoints/last.ckpt  train: the checkpoint a resume goes on from (training.checkpointing)
    ├── csv/metrics.csv         train (and later stages' figures): the CSV logger (conf/logger/csv.yaml)
    ├── training_set/           train: what it trained on, mined and taught (training.training_set_file)
    ├── model/                  train: the exported model (sentence-transformers or cross-encoder)
    ├── index/                  index: the saved index (load_index= takes such a directory)
    │   ├── index.json          its kind, params and the metadata a load is checked against (index.saved)
    │   ├── index.faiss         the index itself (Index.file_name: index.bin for binary, bm25s/ for BM25)
    │   ├── doc_ids.txt         the doc id of each row, one a line
    │   └── <name>/             a hybrid's: each component's saved index (its index.json: kinds, fusion)
    ├── run_first_stage.trec    evaluate, with re-ranking: the first stage's TREC run
    ├── run_<part>.trec         evaluate, for a run made from others: each of them (a hybrid's
    │                           components, fused; PRF's first_round, <component>.prf)
    ├── run.trec                evaluate: the TREC run, k documents per query
    ├── metrics_per_query.tsv   evaluate: query_id, then one column per metric
    ├── metrics.json            evaluate: dataset, split, k, num_queries, metrics, the index
    │                           profile (index), first_stage and rerank when re-ranked, the
    │                           parts' metrics (parts) and how they were combined (fusion, prf)
    └── mteb/<task>.json        evaluate, where data.mteb names the MTEB task: the results in
                                MTEB's results-file format (evaluation.mteb_results)

A benchmark run (``benchmark=...``: one model, several datasets) holds the run's own files
(run.json, config.yaml, the training ones) and ``benchmark.json`` (the metrics of each dataset,
their mean, what was skipped: benchmark.py); each dataset's index and evaluation files (index/,
run.trec, metrics*.json/tsv, mteb/) are in its own ``<run dir>/<dataset name>/``.

A sweep directory (``hydra.sweep.dir``) holds one run directory per job (``0/``, ``1/``, ...) and
``sweep.json`` (sweep_summary: each job's overrides, status, error and optimized metric).

The embedding cache (``<cache_dir>/embeddings/<key>/``) is not part of a run directory: its
files are embedding_cache's; ``index/index.json`` points at the entry (``embeddings_path``).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# The bare names, relative to the run directory.
RECORD_FILE = "run.json"
CONFIG_FILE = "config.yaml"
ENCODING_FILE = "encoding.json"
METRICS_FILE = "metrics.json"
PER_QUERY_FILE = "metrics_per_query.tsv"
RUN_FILE = "run.trec"
FIRST_STAGE_RUN_FILE = "run_first_stage.trec"
PART_RUN_FILE = "run_{}.trec"  # a part of a composite run (retrievers.hybrid.CompositeRetrieval)
MODEL_DIR = "model"
TRAINING_SET_DIR = "training_set"
INDEX_DIR = "index"
CHECKPOINTS_DIR = "checkpoints"
LAST_CHECKPOINT_FILE = "last.ckpt"  # inside CHECKPOINTS_DIR (training.checkpointing)
LOG_FILE = "rlab.log"
MTEB_DIR = "mteb"
BENCHMARK_FILE = "benchmark.json"
HYDRA_DIR = ".hydra"
OVERRIDES_FILE = f"{HYDRA_DIR}/overrides.yaml"
TRAINING_LOG = "csv/metrics.csv"

# Inside the index directory (the index classes write them: index.saved, lexical.bm25).
INDEX_INFO_FILE = "index.json"
INDEX_DOC_IDS_FILE = "doc_ids.txt"

# In a sweep directory.
SWEEP_SUMMARY_FILE = "sweep.json"

# What the run record lists under ``files`` when the run finishes (those that exist).
RECORDED_FILES = (CONFIG_FILE, ENCODING_FILE, METRICS_FILE, PER_QUERY_FILE, RUN_FILE, FIRST_STAGE_RUN_FILE,
                  TRAINING_SET_DIR, MODEL_DIR, INDEX_DIR, CHECKPOINTS_DIR)
# The result files the tracker attaches to a run where a logger keeps artifacts (wandb).
TRACKED_FILES = (RUN_FILE, METRICS_FILE, PER_QUERY_FILE, RECORD_FILE)


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run directory's files (see the module's docstring for what each holds)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def record(self) -> Path:
        return self.root / RECORD_FILE

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def encoding(self) -> Path:
        return self.root / ENCODING_FILE

    @property
    def metrics(self) -> Path:
        return self.root / METRICS_FILE

    @property
    def metrics_per_query(self) -> Path:
        return self.root / PER_QUERY_FILE

    @property
    def run_file(self) -> Path:
        return self.root / RUN_FILE

    @property
    def first_stage_run_file(self) -> Path:
        return self.root / FIRST_STAGE_RUN_FILE

    def part_run_file(self, name: str) -> Path:
        return self.root / PART_RUN_FILE.format(name)

    @property
    def model_dir(self) -> Path:
        return self.root / MODEL_DIR

    @property
    def training_set_dir(self) -> Path:
        return self.root / TRAINING_SET_DIR

    @property
    def index_dir(self) -> Path:
        return self.root / INDEX_DIR

    @property
    def index_info(self) -> Path:
        return self.index_dir / INDEX_INFO_FILE

    @property
    def index_doc_ids(self) -> Path:
        return self.index_dir / INDEX_DOC_IDS_FILE

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / CHECKPOINTS_DIR

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints_dir / LAST_CHECKPOINT_FILE

    def mteb_results(self, task_name: str) -> Path:
        return self.root / MTEB_DIR / f"{task_name}.json"

    @property
    def benchmark(self) -> Path:
        return self.root / BENCHMARK_FILE

    def dataset(self, name: str) -> "RunLayout":
        """The layout of a benchmark dataset's own sub-directory (``cqadupstack/android`` nests)."""
        return RunLayout(self.root / name)

    @property
    def log(self) -> Path:
        return self.root / LOG_FILE

    @property
    def overrides(self) -> Path:
        return self.root / OVERRIDES_FILE

    @property
    def training_log(self) -> Path:
        return self.root / TRAINING_LOG

    def existing(self, names: Iterable[str]) -> list[str]:
        """Those of ``names`` (relative to the run directory) that exist, in the order given."""
        return [name for name in names if (self.root / name).exists()]
