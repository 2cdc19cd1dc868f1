"""Paired significance tests against a baseline, over per-query scores.

Both tests pair the two systems query by query (on ``query_id``): SciPy's two-sided paired
Student t-test (``ttest_rel``, which ranx's test calls) and Fisher's randomization test (random
swaps of the per-query pairs, as ranx's, computed here: see :func:`fisher_randomization`).
A seed group is tested through its per-query scores averaged over its seeds, so a group is one
system whose score on a query is its mean over the seeds; the seed variance itself is reported
in the table (std), not folded into the test.

With ``bonferroni`` the threshold is ``alpha / m``, m being the number of groups tested against
the baseline (the same m for each of the two tests).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import ttest_rel

from retrieval_lab.compare.errors import CompareError
from retrieval_lab.compare.grouping import Group
from retrieval_lab.compare.runs import load_per_query


@dataclass(frozen=True)
class PairedTest:
    n_queries: int
    p_ttest: float
    p_fisher: float
    significant_ttest: bool
    significant_fisher: bool


@dataclass(frozen=True)
class Comparison:
    """A group against the baseline: the tests, or why there are none (``note``)."""

    test: PairedTest | None = None
    note: str | None = None


def threshold(alpha: float, n_tested: int, bonferroni: bool) -> float:
    """The p-value at or below which a difference is marked significant."""
    return alpha / n_tested if bonferroni and n_tested else alpha


def group_scores(group: Group, metric: str) -> pd.Series:
    """The group's per-query ``metric``, averaged over its seeds (which must share the queries)."""
    scores = [load_per_query(run, metric) for run in group.runs]
    first = set(scores[0].index)
    for run, other in zip(group.runs[1:], scores[1:]):
        if set(other.index) != first:
            raise CompareError(f"{run.path}: its queries differ from those of {group.runs[0].path}")
    return pd.concat([s.reindex(scores[0].index) for s in scores], axis=1).mean(axis=1)


# A permutation's |mean difference| within this (relative) distance of the observed one is a tie.
TIE_TOLERANCE = 1e-9
_CHUNK = 4_000_000  # permutations x queries drawn at once (32 MB of float64)


def fisher_randomization(control: np.ndarray, treatment: np.ndarray, n_permutations: int,
                         random_seed: int) -> float:
    """Two-sided paired randomization test (Fisher; Smucker et al., CIKM 2007): the share of
    ``n_permutations`` random swaps of each query's pair (a sign flip of its difference) whose
    |mean difference| reaches the observed one.

    Ranx's ``fisher_randomization_test`` compares the two with ``>=`` on floats summed in
    different orders (the observed mean by numba's parallel reduction, the permuted ones
    sequentially), so an exact tie, which is every permutation when one query differs, falls on
    either side by the last bit and depending on the thread count: two runs one query apart got
    p = 0. Here a permutation within TIE_TOLERANCE of the observed value counts as reaching it.
    """
    diffs = treatment - control
    n = diffs.size
    observed = abs(diffs.mean())
    reach = observed - TIE_TOLERANCE * max(observed, 1e-12)
    rng = np.random.default_rng(random_seed)
    chunk = max(1, _CHUNK // max(n, 1))
    hits, done = 0, 0
    while done < n_permutations:
        size = min(chunk, n_permutations - done)
        signs = rng.integers(0, 2, size=(size, n)).astype(np.float64) * 2.0 - 1.0
        hits += int(np.count_nonzero(np.abs(signs @ diffs) / n >= reach))
        done += size
    return hits / n_permutations


def paired_tests(control: pd.Series, treatment: pd.Series, max_p: float,
                 n_permutations: int = 10_000, random_seed: int = 42) -> PairedTest:
    """Both paired tests of ``treatment`` against ``control``, paired on the index (query id).

    Raises ValueError when the two query sets differ. A difference is significant when
    ``p <= max_p``.
    """
    if set(control.index) != set(treatment.index):
        only_c, only_t = set(control.index) - set(treatment.index), set(treatment.index) - set(control.index)
        raise ValueError(f"the query sets differ ({len(only_c)} queries only in the baseline, "
                         f"{len(only_t)} only in the other)")
    a = np.ascontiguousarray(control.to_numpy(dtype=np.float64))
    b = np.ascontiguousarray(treatment.reindex(control.index).to_numpy(dtype=np.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # zero variance of the differences
        p_ttest = ttest_rel(a, b, alternative="two-sided").pvalue
    p_ttest = float(p_ttest)
    if math.isnan(p_ttest) and np.array_equal(a, b):
        # Identical per-query scores make the t statistic 0/0: report no evidence of a
        # difference, as the randomization test does (p = 1).
        p_ttest = 1.0
    p_fisher = fisher_randomization(a, b, n_permutations, random_seed)
    return PairedTest(n_queries=len(a), p_ttest=p_ttest, p_fisher=p_fisher,
                      significant_ttest=p_ttest <= max_p, significant_fisher=p_fisher <= max_p)


def compare_to_baseline(groups: list[Group], baseline: Group, metric: str, alpha: float,
                        bonferroni: bool = False, n_permutations: int = 10_000,
                        random_seed: int = 42) -> dict[str, Comparison]:
    """Tests of every other group against ``baseline`` on ``metric``, by group label.

    A group without per-query files, or whose query set differs from the baseline's, gets a
    Comparison with a ``note`` instead of tests; malformed per-query files, and missing ones of
    the baseline, raise CompareError.
    """
    others = [g for g in groups if g is not baseline]
    max_p = threshold(alpha, len(others), bonferroni)
    control = group_scores(baseline, metric)
    comparisons = {}
    for group in others:
        missing = [p for p in (run.layout.metrics_per_query for run in group.runs) if not p.is_file()]
        if missing:
            comparisons[group.label] = Comparison(note=f"not tested: {missing[0]} is missing")
            continue
        try:
            test = paired_tests(control, group_scores(group, metric), max_p, n_permutations, random_seed)
        except ValueError as err:
            comparisons[group.label] = Comparison(note=f"not tested: {err}")
        else:
            comparisons[group.label] = Comparison(test=test)
    return comparisons
