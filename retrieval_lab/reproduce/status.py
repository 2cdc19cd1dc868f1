"""OK / OKish / FAIL: how far a reproduced metric may be from its pinned value (Pyserini's scale)."""

import math
from collections.abc import Iterable

OK, OKISH, FAIL = "OK", "OKish", "FAIL"
OK_TOLERANCE = 0.00005  # equal at 4 decimal places
OKISH_TOLERANCE = 0.0005


def classify(expected: float, actual: float | None) -> str:
    """OK if ``|actual - expected| < 0.00005``, OKish if ``<= 0.0005``, else FAIL (also for a
    missing or non-finite ``actual``).

    The difference is rounded to 10 decimals first, so binary float noise never decides a
    boundary case (``0.6456 - 0.6451`` is ``0.000500000000000056`` in floats, and is OKish).
    """
    if actual is None or not math.isfinite(actual):
        return FAIL
    diff = round(abs(actual - expected), 10)
    if diff < OK_TOLERANCE:
        return OK
    if diff <= OKISH_TOLERANCE:
        return OKISH
    return FAIL


def worst(statuses: Iterable[str]) -> str:
    """The worst of ``statuses`` (OK when there are none)."""
    order = [OK, OKISH, FAIL]
    return max(statuses, key=order.index, default=OK)


def exit_status(statuses: Iterable[str]) -> int:
    """1 if any status is FAIL, else 0."""
    return 1 if FAIL in set(statuses) else 0
