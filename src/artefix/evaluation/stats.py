"""Significance testing of the paper's tables: Friedman test, Nemenyi post-hoc test, bold groups.

Scores are given as a matrix ``M`` of shape ``(slices, methods)``: row ``i`` holds every method's score
on test slice ``i`` (the blocks of the Friedman design), column ``j`` one method (the treatments).

* :func:`friedman`: Friedman's rank test that all methods are equivalent. Within each row the scores
  are ranked 1..k (ties get mean ranks); with rank sums ``R_j`` over the ``n`` rows,
  ``chi2 = 12 / (n k (k + 1)) sum_j R_j^2 - 3 n (k + 1)`` (divided by the tie correction), compared
  with a chi-square distribution with ``k - 1`` degrees of freedom.
* :func:`nemenyi`: Nemenyi's all-pairs post-hoc test: methods ``a`` and ``b`` differ when their mean
  ranks differ by more than the critical difference ``CD = q_alpha sqrt(k (k + 1) / (6 n))``, i.e. the
  p-value is the studentized-range tail ``P(Q_{k, inf} > sqrt(2) |Rbar_a - Rbar_b| / sqrt(k (k + 1) / (6 n)))``.
* :func:`bold_group`: the paper's bold entries: the best method and all methods not significantly
  different from it (threshold 0.05).

Choices (the paper does not spell them out):

* "Best" is the best **mean** score (the number printed in the table), highest for similarity metrics
  and lowest for MSE (``lower_is_better``); an exact tie in the mean goes to the first method listed.
  Friedman/Nemenyi compare mean *ranks*, so in rare cases the best mean is not the best mean rank.
* If the Friedman test is not significant (``p >= alpha``), every method is bold: the omnibus test
  found no difference, so the post-hoc test is not consulted.
* Friedman needs at least three methods. With two methods the Wilcoxon signed-rank test on the paired
  differences replaces Friedman + Nemenyi (both bold unless ``p < alpha``; all differences zero gives
  ``p = 1``). A single method is always bold.
* Non-finite scores raise ``ValueError``: a NaN silently changes ranks.

``scikit-posthocs`` and ``pandas`` are optional (``pip install "artefix[eval]"``) and imported inside
the functions that need them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats as sps

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ALPHA", "bold_group", "friedman", "nemenyi", "summarise", "wilcoxon"]

ALPHA = 0.05
"""The paper's significance threshold."""

_EXTRA_EVAL = 'pip install "artefix[eval]"'


def _scores(M: Any, min_methods: int = 1) -> np.ndarray:
    arr = np.asarray(M, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"scores must be a 2D matrix (slices, methods), got shape {arr.shape}")
    n, k = arr.shape
    if n < 1:
        raise ValueError(f"scores need at least one slice (row), got shape {arr.shape}")
    if k < min_methods:
        raise ValueError(f"this test needs at least {min_methods} methods (columns), got shape {arr.shape}")
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise ValueError(f"scores contain {bad} NaN or infinite value(s); drop or fix those slices first")
    return arr


def _names(methods: Sequence[str], k: int) -> list[str]:
    names = [str(m) for m in methods]
    if len(names) != k:
        raise ValueError(f"got {len(names)} method names for a score matrix with {k} columns")
    if len(set(names)) != len(names):
        raise ValueError(f"method names must be unique, got {names}")
    return names


def _check_alpha(alpha: float) -> float:
    if not (isinstance(alpha, (int, float, np.floating)) and 0.0 < float(alpha) < 1.0):
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    return float(alpha)


def friedman(M: Any) -> tuple[float, float]:
    """Friedman test that all methods (columns of ``M``) perform alike.

    ``scipy.stats.friedmanchisquare(*M.T)``: one argument per method, each the method's scores over the
    slices. (``friedmanchisquare(*M)`` would silently swap slices and methods.)

    Args:
        M: Scores, shape ``(slices, methods)``, finite, at least 3 methods.

    Returns:
        ``(statistic, p_value)``; ``(0.0, 1.0)`` when every slice scores all methods identically (the
        statistic is 0/0 there: no evidence of any difference).
    """
    arr = _scores(M, min_methods=3)
    if np.all(arr == arr[:, :1]):
        return 0.0, 1.0
    result = sps.friedmanchisquare(*arr.T)
    return float(result.statistic), float(result.pvalue)


def wilcoxon(M: Any) -> tuple[float, float]:
    """Wilcoxon signed-rank test between the two methods (columns) of ``M``, two-sided.

    Args:
        M: Scores, shape ``(slices, 2)``, finite.

    Returns:
        ``(statistic, p_value)``; ``(0.0, 1.0)`` when all paired differences are zero.
    """
    arr = _scores(M, min_methods=2)
    if arr.shape[1] != 2:
        raise ValueError(f"wilcoxon compares exactly 2 methods, got shape {arr.shape}")
    diff = arr[:, 1] - arr[:, 0]
    if not np.any(diff):
        return 0.0, 1.0
    result = sps.wilcoxon(arr[:, 0], arr[:, 1])
    return float(result.statistic), float(result.pvalue)


def nemenyi(M: Any, methods: Sequence[str]) -> pd.DataFrame:
    """Nemenyi post-hoc p-values of all method pairs (``scikit_posthocs.posthoc_nemenyi_friedman``).

    The scores go in as a DataFrame with one **column per method** (rows = slices = blocks).

    Args:
        M: Scores, shape ``(slices, methods)``, finite, at least 2 methods.
        methods: Method names, one per column.

    Returns:
        Symmetric ``methods x methods`` DataFrame of p-values (1 on the diagonal).
    """
    arr = _scores(M, min_methods=2)
    names = _names(methods, arr.shape[1])
    try:
        import pandas as pd
        import scikit_posthocs as sp
    except ImportError as err:
        raise ImportError(f"the Nemenyi test needs scikit-posthocs and pandas: {_EXTRA_EVAL}") from err
    frame = pd.DataFrame(arr, columns=names)
    p = sp.posthoc_nemenyi_friedman(frame)
    return p.loc[names, names].astype(np.float64)


def _best(arr: np.ndarray, lower_is_better: bool) -> int:
    means = arr.mean(axis=0)
    return int(np.argmin(means) if lower_is_better else np.argmax(means))


def bold_group(M: Any, methods: Sequence[str], lower_is_better: bool, alpha: float = ALPHA) -> set[str]:
    """The paper's bold entries: the best method and every method not significantly different from it.

    Args:
        M: Scores, shape ``(slices, methods)``, finite.
        methods: Method names, one per column.
        lower_is_better: True for error metrics such as MSE (best = lowest mean), False for SSIM/VIF/PSNR.
        alpha: Significance threshold (paper: 0.05).

    Returns:
        The set of bold method names (always contains the best one). 1 method: itself. 2 methods:
        Wilcoxon signed-rank test. 3 or more: all methods when Friedman's ``p >= alpha``, else the best
        plus every method whose Nemenyi p-value against it is ``>= alpha``. Methods with identical columns
        (e.g. ``input`` and ``zero-filled`` for subsampling) are tested once and share the result: counting
        one method twice would change Friedman's ranks and Nemenyi's critical difference.
    """
    arr = _scores(M)
    names = _names(methods, arr.shape[1])
    twin = [next(i for i in range(j + 1) if np.array_equal(arr[:, i], arr[:, j])) for j in range(arr.shape[1])]
    if len(set(twin)) < len(twin):
        keep = sorted(set(twin))
        bold = bold_group(arr[:, keep], [names[j] for j in keep], lower_is_better, alpha)
        return {names[j] for j in range(len(names)) if names[twin[j]] in bold}
    a = _check_alpha(alpha)
    best = _best(arr, bool(lower_is_better))
    k = arr.shape[1]
    if k == 1:
        return {names[0]}
    if k == 2:
        _, p = wilcoxon(arr)
        return set(names) if p >= a else {names[best]}
    _, p = friedman(arr)
    if p >= a:
        return set(names)
    pvals = nemenyi(arr, names)
    row = pvals.loc[names[best]]
    return {names[best]} | {m for m in names if float(row[m]) >= a}


def summarise(M: Any, methods: Sequence[str], lower_is_better: bool, alpha: float = ALPHA) -> list[dict[str, Any]]:
    """One table column: mean +- standard error per method, and whether it is bold.

    Args:
        M: Scores, shape ``(slices, methods)``, finite.
        methods: Method names, one per column.
        lower_is_better: Orientation of the metric (see :data:`artefix.evaluation.metrics.METRICS`).
        alpha: Significance threshold of :func:`bold_group`.

    Returns:
        One dict per method, in the order of ``methods``: ``method`` (str), ``mean`` (float), ``sem``
        (standard error of the mean, ``std(ddof=1) / sqrt(n)``; NaN for a single slice) and ``bold``.
    """
    arr = _scores(M)
    names = _names(methods, arr.shape[1])
    bold = bold_group(arr, names, lower_is_better, alpha)
    n = arr.shape[0]
    sem = arr.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.full(arr.shape[1], np.nan)
    means = arr.mean(axis=0)
    return [
        {"method": m, "mean": float(means[j]), "sem": float(sem[j]), "bold": m in bold} for j, m in enumerate(names)
    ]
