"""Friedman / Nemenyi / bold groups, checked against hand computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from artefix.evaluation.stats import ALPHA, bold_group, friedman, nemenyi, summarise, wilcoxon

pytest.importorskip("scikit_posthocs")
pytest.importorskip("pandas")

# Six slices (rows) x three methods (columns A, B, C), no ties within a row.
#   row ranks:  A B C
#               1 2 3
#               1 2 3
#               1 3 2
#               2 1 3
#               1 2 3
#               1 2 3
#   rank sums:  7 12 17 -> mean ranks 7/6, 2, 17/6
M_HAND = np.array(
    [
        [0.80, 0.85, 0.90],
        [0.70, 0.75, 0.95],
        [0.60, 0.80, 0.70],
        [0.75, 0.70, 0.90],
        [0.65, 0.72, 0.88],
        [0.55, 0.60, 0.85],
    ]
)
NAMES = ["A", "B", "C"]


def test_friedman_matches_hand_computation_from_ranks():
    n, k = M_HAND.shape
    rank_sums = np.array([7.0, 12.0, 17.0])
    np.testing.assert_array_equal(sps.rankdata(M_HAND, axis=1).sum(axis=0), rank_sums)
    chi2 = 12.0 / (n * k * (k + 1)) * np.sum(rank_sums**2) - 3.0 * n * (k + 1)
    assert chi2 == pytest.approx(25.0 / 3.0)  # 12/72 * 482 - 72
    stat, p = friedman(M_HAND)
    assert stat == pytest.approx(chi2, rel=1e-12)
    # chi-square with k - 1 = 2 degrees of freedom: survival function exp(-x / 2)
    assert p == pytest.approx(np.exp(-chi2 / 2.0), rel=1e-10)
    assert p < ALPHA


def test_friedman_orientation_is_pinned():
    # The wrong orientation (rows as groups) gives a different statistic and no error: pin ours.
    wrong = sps.friedmanchisquare(*M_HAND).statistic
    assert friedman(M_HAND)[0] != pytest.approx(wrong)
    # Permuting slices changes nothing; permuting methods permutes nothing in the statistic either.
    rng = np.random.default_rng(0)
    assert friedman(M_HAND[rng.permutation(6)])[0] == pytest.approx(friedman(M_HAND)[0])
    assert friedman(M_HAND[:, [2, 0, 1]])[0] == pytest.approx(friedman(M_HAND)[0])


def test_friedman_edge_cases():
    assert friedman(np.full((5, 3), 0.7)) == (0.0, 1.0)
    with pytest.raises(ValueError, match="at least 3 methods"):
        friedman(M_HAND[:, :2])
    bad = M_HAND.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        friedman(bad)
    with pytest.raises(ValueError, match="2D"):
        friedman(M_HAND.ravel())


def test_nemenyi_p_values_and_critical_difference():
    n, k = M_HAND.shape
    p = nemenyi(M_HAND, NAMES)
    assert list(p.index) == NAMES and list(p.columns) == NAMES
    np.testing.assert_allclose(p.to_numpy(), p.to_numpy().T)
    np.testing.assert_allclose(np.diag(p.to_numpy()), 1.0)

    mean_ranks = {"A": 7 / 6, "B": 2.0, "C": 17 / 6}
    se = np.sqrt(k * (k + 1) / (6.0 * n))
    # critical difference at alpha = 0.05: q_0.05(k, inf) / sqrt(2) * se = 2.343 * 0.577 = 1.353
    cd = sps.studentized_range.ppf(1 - ALPHA, k, np.inf) / np.sqrt(2.0) * se
    assert cd == pytest.approx(1.353, abs=1e-3)
    for a in NAMES:
        for b in NAMES:
            if a == b:
                continue
            diff = abs(mean_ranks[a] - mean_ranks[b])
            expected = sps.studentized_range.sf(diff / se * np.sqrt(2.0), k, np.inf)
            assert p.loc[a, b] == pytest.approx(expected, rel=1e-6)
            # Nemenyi's decision rule: significant exactly when the mean ranks differ by more than CD
            assert (p.loc[a, b] < ALPHA) == (diff > cd)
    # |C - A| = 5/3 > CD: significant; the neighbours (5/6 apart) are not
    assert p.loc["A", "C"] < ALPHA
    assert p.loc["A", "B"] > ALPHA and p.loc["B", "C"] > ALPHA


def test_bold_group_hand_example_both_orientations():
    # Higher is better: best C; B ties with it (5/6 < CD), A is significantly worse.
    assert bold_group(M_HAND, NAMES, lower_is_better=False) == {"B", "C"}
    # Lower is better (as for MSE): best A; B ties with it, C is significantly worse.
    assert bold_group(M_HAND, NAMES, lower_is_better=True) == {"A", "B"}


def test_bold_group_clear_winner():
    rng = np.random.default_rng(1)
    base = rng.normal(0.7, 0.05, size=(20, 1))
    M = np.hstack([base + rng.normal(0, 0.01, (20, 1)) for _ in range(3)] + [base + 0.2])
    names = ["a", "b", "c", "winner"]
    assert friedman(M)[1] < 1e-6
    p = nemenyi(M, names)
    assert (p.loc["winner", ["a", "b", "c"]] < ALPHA).all()
    assert bold_group(M, names, lower_is_better=False) == {"winner"}
    # the same scores as errors: the winner is now the worst, and is never bold
    assert "winner" not in bold_group(M, names, lower_is_better=True)


def test_bold_group_all_tie_when_friedman_not_significant():
    # Cyclic rows: every method gets every rank equally often, so the rank sums are equal: chi2 = 0.
    M = np.array([[1.0, 2.0, 3.0], [2.0, 3.0, 1.0], [3.0, 1.0, 2.0]] * 4)
    stat, p = friedman(M)
    assert stat == pytest.approx(0.0, abs=1e-12) and p == pytest.approx(1.0)
    assert bold_group(M, ["x", "y", "z"], lower_is_better=False) == {"x", "y", "z"}
    assert bold_group(M, ["x", "y", "z"], lower_is_better=True) == {"x", "y", "z"}
    # identical scores everywhere: all bold too
    assert bold_group(np.full((8, 4), 0.3), list("abcd"), lower_is_better=True) == set("abcd")


def test_bold_group_one_and_two_methods():
    assert bold_group(np.array([[0.1], [0.2]]), ["only"], lower_is_better=True) == {"only"}
    # two methods: Wilcoxon signed-rank; B beats A on all 10 slices -> exact p = 2 / 2^10
    a = np.linspace(0.5, 0.9, 10)
    M = np.column_stack([a, a + np.linspace(0.01, 0.1, 10)])
    stat, p = wilcoxon(M)
    assert p == pytest.approx(2.0 / 2**10)
    assert bold_group(M, ["A", "B"], lower_is_better=False) == {"B"}
    assert bold_group(M, ["A", "B"], lower_is_better=True) == {"A"}
    # differences of both signs, symmetric: not significant -> both bold
    d = np.array([0.1, -0.1, 0.2, -0.2, 0.3, -0.3, 0.4, -0.4])
    M2 = np.column_stack([np.full(8, 0.5), 0.5 + d])
    assert wilcoxon(M2)[1] > ALPHA
    assert bold_group(M2, ["A", "B"], lower_is_better=False) == {"A", "B"}
    assert wilcoxon(np.ones((5, 2))) == (0.0, 1.0)


def test_bold_group_validation():
    with pytest.raises(ValueError, match="4 method names for a score matrix with 3 columns"):
        bold_group(M_HAND, ["A", "B", "C", "D"], lower_is_better=False)
    with pytest.raises(ValueError, match="unique"):
        bold_group(M_HAND, ["A", "A", "C"], lower_is_better=False)
    with pytest.raises(ValueError, match="alpha"):
        bold_group(M_HAND, NAMES, lower_is_better=False, alpha=1.5)
    bad = M_HAND.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        bold_group(bad, NAMES, lower_is_better=False)


def test_summarise_rows():
    rows = summarise(M_HAND, NAMES, lower_is_better=False)
    assert [r["method"] for r in rows] == NAMES
    for j, r in enumerate(rows):
        col = M_HAND[:, j]
        assert r["mean"] == pytest.approx(col.mean())
        assert r["sem"] == pytest.approx(np.sqrt(np.sum((col - col.mean()) ** 2) / 5) / np.sqrt(6))
        assert set(r) == {"method", "mean", "sem", "bold"}
    assert [r["bold"] for r in rows] == [False, True, True]
    single = summarise(M_HAND[:1], NAMES, lower_is_better=False)
    assert all(np.isnan(r["sem"]) for r in single)
    assert all(r["bold"] for r in single)  # one slice: chi2 = 14 - 12 = 2, p = exp(-1) > 0.05
    with pytest.raises(ValueError, match="NaN"):
        summarise(np.array([[np.nan, 1.0, 2.0]]), NAMES, lower_is_better=False)


def test_identical_methods_are_tested_once():
    """A method entered twice (subsampling's input and zero-filled) must not change anyone's bold mark."""
    rng = np.random.default_rng(7)
    changed = 0
    for _ in range(40):
        base = rng.normal(0.0, 1.0, size=(12, 1)) + rng.normal(0.0, 0.6, size=(12, 3)) + [0.0, 0.5, 0.9]
        plain = bold_group(base, ["a", "b", "c"], lower_is_better=False)
        twice = bold_group(np.column_stack([base[:, 0], base]), ["a", "a2", "b", "c"], lower_is_better=False)
        assert twice == plain | ({"a2"} if "a" in plain else set())
        counted_twice = _nemenyi_bold(np.column_stack([base[:, 0], base]), ["a", "a2", "b", "c"])
        changed += counted_twice - {"a2"} != plain
    assert changed > 0  # the naive test (a duplicate as a method of its own) does differ on these draws


def _nemenyi_bold(M, names):
    """Bold group with every column counted as a method of its own (what a duplicate used to get)."""
    if friedman(M)[1] >= 0.05:
        return set(names)
    best = names[int(np.argmax(M.mean(axis=0)))]
    row = nemenyi(M, names).loc[best]
    return {best} | {m for m in names if float(row[m]) >= 0.05}
