"""Paired significance tests on per-query scores, and each stage against the best single branch.

Per-query nDCG@10 is bounded in [0, 1], often 0 or 1, and skewed, so the paired test of choice
here is the two-sided paired randomisation (sign-flip) test on the mean difference: under the
null hypothesis the two systems are exchangeable on each query, so each per-query difference is
as likely to have either sign. It makes no assumption on the shape of the differences. Smucker,
Allan and Carterette (CIKM 2007, "A comparison of statistical significance tests for information
retrieval evaluation") found the randomisation test, the bootstrap and the paired t-test to
agree closely on TREC runs, and the Wilcoxon signed-rank and sign tests to disagree with them
(they test something other than the mean), and recommended the randomisation test. The paired
t-test is kept beside it for comparison with published tables.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from m3retriever.errors import InputError

__all__ = [
    "BRANCH_STAGES",
    "RANDOMISATION_ROUNDS",
    "paired_randomisation",
    "paired_t",
    "Versus",
    "versus_best_branch",
    "versus_lines",
]

BRANCH_STAGES: tuple[str, ...] = ("dense", "sparse", "bm25")
"""The single-branch stages."""

RANDOMISATION_ROUNDS = 20_000
"""Random sign flips drawn when the exact test would need more than 2**16 of them."""

_EXACT_MAX_N = 16


def _differences(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise InputError(f"paired scores must be two lists of the same length (got {x.shape} and {y.shape})")
    if x.size == 0:
        raise InputError("paired test of no queries: there must be at least one score per system")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InputError("paired scores must be finite numbers (found NaN or infinity)")
    return x - y


def paired_randomisation(
    a: Sequence[float], b: Sequence[float], *, rounds: int = RANDOMISATION_ROUNDS, seed: int = 0
) -> float:
    """Two-sided paired randomisation (sign-flip) test of ``mean(a) == mean(b)``.

    Exact (every one of the ``2**n`` sign assignments) for at most 16 pairs; otherwise
    ``rounds`` random sign assignments with a fixed ``seed`` (so a report is reproducible), and
    the p-value ``(1 + hits) / (1 + rounds)``, which is never 0.

    Args:
        a: Per-query scores of one system.
        b: The other system's scores on the same queries, in the same order.
        rounds: Random sign assignments drawn (Monte Carlo case).
        seed: Seed of the random signs.

    Returns:
        The p-value (1.0 when every difference is 0).
    """
    d = _differences(a, b)
    nz = d[d != 0.0]  # a zero difference is the same under either sign
    if nz.size == 0:
        return 1.0
    observed = abs(float(nz.sum())) - 1e-12 * max(1.0, float(np.abs(nz).sum()))
    if nz.size <= _EXACT_MAX_N:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=nz.size)))
        return float(np.mean(np.abs(signs @ nz) >= observed))
    if rounds < 1:
        raise InputError(f"rounds must be at least 1 (got {rounds})")
    rng = np.random.default_rng(seed)
    hits = 0
    chunk = max(1, min(rounds, 4_000_000 // nz.size))
    done = 0
    while done < rounds:
        m = min(chunk, rounds - done)
        signs = rng.integers(0, 2, size=(m, nz.size), dtype=np.int8) * 2 - 1
        hits += int(np.count_nonzero(np.abs(signs @ nz) >= observed))
        done += m
    return (1 + hits) / (1 + rounds)


def paired_t(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided paired t-test p-value (``scipy.stats.ttest_rel``).

    Where scipy gives NaN (every difference equal): 1.0 if they are all 0, else 0.0.
    """
    d = _differences(a, b)
    if d.size < 2 or float(np.std(d)) == 0.0:  # scipy gives nan here
        return 0.0 if d.size >= 2 and float(d[0]) != 0.0 else 1.0
    from scipy import stats as sps  # a dependency of ranx, which the evaluation needs anyway

    return float(sps.ttest_rel(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)).pvalue)


@dataclass(frozen=True)
class Versus:
    """One stage against the best single branch on one metric.

    Attributes:
        stage: The stage (``fused``, ``rerank``...).
        branch: The single-branch stage with the highest mean.
        score: The stage's mean.
        branch_score: The branch's mean.
        p_randomisation: Paired randomisation test p-value.
        p_t: Paired t-test p-value.
        win_tie_loss: Queries where the stage is above, level with, below the branch.
    """

    stage: str
    branch: str
    score: float
    branch_score: float
    p_randomisation: float
    p_t: float
    win_tie_loss: tuple[int, int, int]

    @property
    def delta(self) -> float:
        """Stage mean minus branch mean."""
        return self.score - self.branch_score

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage, "branch": self.branch, "score": self.score, "branch_score": self.branch_score,
            "delta": self.delta, "p_randomisation": self.p_randomisation, "p_t": self.p_t,
            "win_tie_loss": list(self.win_tie_loss),
        }  # fmt: skip


def versus_best_branch(per_query: Mapping[str, Mapping[str, float]], *, seed: int = 0) -> list[Versus]:
    """Each stage that is not a single branch against the best single branch.

    Args:
        per_query: ``{stage: {query_id: value}}`` of one metric, every stage on the same queries.
        seed: Seed of the randomisation test.

    Returns:
        One :class:`Versus` per non-branch stage, in the order given (empty when fewer than one
        branch or no other stage is present).
    """
    branches = [s for s in BRANCH_STAGES if s in per_query]
    others = [s for s in per_query if s not in BRANCH_STAGES]
    if not branches or not others:
        return []
    qids = sorted(per_query[branches[0]])
    for s in per_query:
        if set(per_query[s]) != set(qids):
            raise InputError(f"stage {s!r} was scored on other queries than {branches[0]!r}")
    means = {b: float(np.mean([per_query[b][q] for q in qids])) for b in branches}
    best = max(branches, key=lambda b: means[b])
    ref = [per_query[best][q] for q in qids]
    out = []
    for s in others:
        vals = [per_query[s][q] for q in qids]
        d = np.asarray(vals) - np.asarray(ref)
        wtl = (int((d > 0).sum()), int((d == 0).sum()), int((d < 0).sum()))
        out.append(
            Versus(s, best, float(np.mean(vals)), means[best], paired_randomisation(vals, ref, seed=seed), paired_t(vals, ref), wtl)
        )
    return out


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"={p:.3f}"


def versus_lines(rows: Sequence[Mapping[str, Any]], metric: str) -> list[str]:
    """Plain-text lines for a report: each stage against the best single branch.

    Args:
        rows: :meth:`Versus.as_dict` of each stage.
        metric: The metric's name.
    """
    out = []
    for v in rows:
        w, t, lo = v["win_tie_loss"]
        out.append(
            f"{v['stage']} vs best branch {v['branch']} ({metric} {v['branch_score']:.4f}): {v['delta']:+.4f} "
            f"(paired randomisation p{_p(v['p_randomisation'])}, t-test p{_p(v['p_t'])}; "
            f"win/tie/loss {w}/{t}/{lo})"
        )
    return out
