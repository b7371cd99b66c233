"""Paired significance tests (randomisation, t) and the stage-against-best-branch comparison."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m3retriever.errors import InputError
from m3retriever.evaluation.stats import paired_randomisation, paired_t, versus_best_branch, versus_lines

scipy_stats = pytest.importorskip("scipy.stats")

# per-query nDCG-like values: bounded, many ties, a few distinct levels
LEVELS = st.sampled_from([0.0, 0.0, 0.25, 0.5, 0.6309, 1.0, 1.0])


def test_exact_randomisation_by_hand():
    # two non-zero differences (+1, +1): sign sums 2, 0, 0, -2 -> |sum| >= 2 in 2 of 4
    assert paired_randomisation([1, 0, 1], [0, 0, 0]) == pytest.approx(0.5)
    # differences +1, +1, +1, -0.5: sums >= 2.5 in absolute value: (+,+,+,-) 2.5, (+,+,+,+) 3.5 and mirrors -> 4/16
    assert paired_randomisation([1, 1, 1, 0], [0, 0, 0, 0.5]) == pytest.approx(4 / 16)
    assert paired_randomisation([0.3, 0.2], [0.3, 0.2]) == 1.0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(LEVELS, LEVELS), min_size=2, max_size=10))
def test_exact_randomisation_matches_scipy(pairs):
    a = np.array([x for x, _ in pairs])
    b = np.array([y for _, y in pairs])
    d = a - b
    if not np.any(d):
        assert paired_randomisation(a, b) == 1.0
        return
    ref = scipy_stats.permutation_test(
        (a, b), lambda x, y: np.mean(x - y), permutation_type="samples", n_resamples=math.inf,
        alternative="two-sided", vectorized=False,
    ).pvalue  # fmt: skip
    assert paired_randomisation(a, b) == pytest.approx(min(1.0, ref), abs=1e-9)


def test_monte_carlo_randomisation_agrees_with_scipy_and_t_on_many_queries():
    rng = np.random.default_rng(1)
    a = rng.choice([0.0, 0.5, 1.0], size=300)
    b = np.clip(a + rng.normal(0.03, 0.3, size=300), 0, 1)
    ours = paired_randomisation(a, b, rounds=20_000, seed=3)
    ref = scipy_stats.permutation_test(
        (a, b), lambda x, y, axis: np.mean(x - y, axis=axis), permutation_type="samples", n_resamples=20_000,
        alternative="two-sided", vectorized=True, rng=4,
    ).pvalue  # fmt: skip
    assert ours == pytest.approx(ref, abs=0.02)
    # with 300 queries the t-test and the randomisation test agree closely (Smucker et al. 2007)
    assert ours == pytest.approx(paired_t(a, b), abs=0.02)
    assert paired_randomisation(a, b, seed=3) == paired_randomisation(a, b, seed=3)  # reproducible
    assert 0 < paired_randomisation(a, a + 1.0) < 1e-3  # never 0


def test_paired_t_matches_a_hand_computed_case_and_edges():
    # differences 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt 3) = 3.4641 with 2 df -> p = 0.07418
    assert paired_t([1, 2, 3], [0, 0, 0]) == pytest.approx(0.07418, abs=1e-4)
    assert paired_t([1, 1], [1, 1]) == 1.0
    assert paired_t([2, 2, 2], [1, 1, 1]) == 0.0  # every query gains exactly the same


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [([1, 2], [1], "same length"), ([], [], "no queries"), ([math.nan], [0], "finite")],
)
def test_bad_input_is_an_input_error(a, b, match):
    with pytest.raises(InputError, match=match):
        paired_randomisation(a, b)


def test_versus_best_branch_picks_the_best_branch_per_metric():
    per = {
        "dense": {"q1": 1.0, "q2": 0.0, "q3": 0.5},
        "bm25": {"q1": 0.0, "q2": 0.5, "q3": 0.5},
        "fused": {"q1": 1.0, "q2": 0.5, "q3": 0.0},
        "rerank": {"q1": 1.0, "q2": 0.0, "q3": 0.5},
    }
    rows = {v.stage: v for v in versus_best_branch(per)}
    assert set(rows) == {"fused", "rerank"}
    assert rows["fused"].branch == "dense"  # mean 0.5 against bm25's 0.333
    assert rows["fused"].win_tie_loss == (1, 1, 1)
    assert rows["fused"].delta == pytest.approx(0.0)
    assert rows["rerank"].win_tie_loss == (0, 3, 0)
    assert rows["rerank"].p_randomisation == 1.0
    lines = versus_lines([v.as_dict() for v in rows.values()], "ndcg@10")
    assert lines[0].startswith("fused vs best branch dense (ndcg@10 0.5000): +0.0000 (paired randomisation p=1.000")
    tiny = {**rows["fused"].as_dict(), "p_randomisation": 5e-5, "p_t": 0.0123}
    assert "(paired randomisation p<0.001, t-test p=0.012;" in versus_lines([tiny], "ndcg@10")[0]
    assert versus_best_branch({"dense": per["dense"]}) == []
    with pytest.raises(InputError, match="other queries"):
        versus_best_branch({"dense": per["dense"], "fused": {"q1": 1.0}})
