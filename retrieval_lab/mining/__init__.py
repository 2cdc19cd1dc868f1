"""Hard-negative mining: miners rank the corpus per training query; the shared selection picks
the negatives; the cache keeps them for every later run."""

from retrieval_lab.mining.bm25_miner import BM25Miner
from retrieval_lab.mining.cache import cached_negatives, negatives_key
from retrieval_lab.mining.dense_miner import DenseMiner
from retrieval_lab.mining.dense_refresh_miner import DenseRefreshMiner
from retrieval_lab.mining.file_miner import FileMiner
from retrieval_lab.mining.miner import Miner, MiningResult, RankingMiner
from retrieval_lab.mining.negatives_file import read_negatives, write_negatives
from retrieval_lab.mining.selection import NegativeSelection
from retrieval_lab.mining.star_miner import StarMiner

__all__ = ["BM25Miner", "DenseMiner", "DenseRefreshMiner", "FileMiner", "Miner", "MiningResult", "NegativeSelection",
           "RankingMiner", "StarMiner", "cached_negatives", "negatives_key", "read_negatives", "write_negatives"]
