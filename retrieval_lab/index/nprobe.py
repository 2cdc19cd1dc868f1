"""An IVF index's ``nprobe`` chosen where it is built, for a recall target rather than fixed.

How many lists a query must visit depends on the corpus (its size, how it clusters), so a fixed
default is too small for one corpus and wasteful for another. After the lists are trained and
filled, ``tuned_nprobe`` samples ``queries`` corpus vectors as queries, finds their exact top
``k`` (``faiss.knn``), and doubles nprobe from 1 until the index's recall@k reaches ``target``
times what it reaches searching every list (a PQ index's codes lose recall that no nprobe gives
back; the lists' part is what nprobe controls). Corpus vectors lie closer to the corpus than real
queries do, so real queries need about twice the lists for the same recall: the target is high
(the SciFact figures are in the README).
"""

import faiss
import numpy as np

from retrieval_lab.index.base import recall_vs_exact


def tuned_nprobe(index: faiss.Index, x: np.ndarray, target: float, queries: int, k: int = 10,
                 seed: int = 0) -> tuple[int, float, float]:
    """The smallest power-of-two nprobe (capped at nlist) whose recall@k reaches ``target`` times
    the recall@k of searching every list; that recall, and the every-list one."""
    rows = np.sort(np.random.default_rng(seed).choice(len(x), min(queries, len(x)), replace=False))
    sample = np.ascontiguousarray(x[rows])
    k = min(k, len(x))
    _, exact = faiss.knn(sample, x, k, metric=faiss.METRIC_INNER_PRODUCT)
    nlist, space = faiss.extract_index_ivf(index).nlist, faiss.ParameterSpace()

    def recall(nprobe: int) -> float:
        space.set_index_parameter(index, "nprobe", nprobe)
        return recall_vs_exact(exact, index.search(sample, k)[1], k)

    ceiling, nprobe = recall(nlist), 1
    while nprobe < nlist and recall(nprobe) < target * ceiling:
        nprobe = min(2 * nprobe, nlist)
    return nprobe, recall(nprobe), ceiling
