"""Fusion by standardised scores (search.fusion = "zscore"): the function's properties, and the
search fusing each branch's own ranking with it (real embedded store, tiny models)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import math  # noqa: E402

import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from m3retriever.errors import ConfigError  # noqa: E402
from m3retriever.search.fusion import zscore_fuse  # noqa: E402

ranked = st.lists(st.floats(-50, 50, allow_nan=False, allow_subnormal=False), min_size=1, max_size=30, unique=True).map(
    lambda xs: [(f"p{i:03d}", s) for i, s in enumerate(sorted(xs, reverse=True))]
)


@settings(max_examples=200, deadline=None)
@given(ranked)
def test_one_branch_keeps_its_order(lst) -> None:
    fused = zscore_fuse({"dense": lst}, {"dense": 1.0})
    assert [k for k, _ in fused] == [k for k, _ in lst]
    assert fused[-1][1] == pytest.approx(0.0) or len(lst) == 1


@settings(max_examples=200, deadline=None)
@given(ranked, ranked, st.floats(0.1, 5), st.floats(0.1, 5), st.floats(0.1, 100), st.floats(-20, 20))
def test_fusion_ignores_each_branch_scale_and_shift(a, b, wa, wb, scale, shift) -> None:
    b = [(k.replace("p", "q"), s) for k, s in b]
    got = zscore_fuse({"x": a, "y": b}, {"x": wa, "y": wb})
    moved = zscore_fuse({"x": [(k, s * scale + shift) for k, s in a], "y": b}, {"x": wa, "y": wb})
    assert [k for k, _ in got] == [k for k, _ in moved] or any(
        math.isclose(s1, s2, rel_tol=1e-9) for (_, s1), (_, s2) in zip(got, got[1:])
    )


def test_a_confident_branch_outweighs_a_flat_one() -> None:
    # Dense: its first hit far above the rest. BM25: flat scores, a different first hit, and
    # two lexical votes for it. RRF lets the lexical pair win; the margins decide here.
    dense = [("right", 0.9), *((f"d{i}", 0.5 - i * 0.001) for i in range(20))]
    bm25 = [("wrong", 10.2), ("right", 10.0), *((f"b{i}", 9.9 - i * 0.01) for i in range(20))]
    sparse = [("wrong", 3.05), *((f"s{i}", 3.0 - i * 0.01) for i in range(20))]
    fused = zscore_fuse({"dense": dense, "bm25": bm25, "sparse": sparse}, {"dense": 1, "bm25": 0.5, "sparse": 0.5})
    assert fused[0][0] == "right"


def test_distances_and_zero_weights() -> None:
    dense = [("near", 0.1), ("far", 2.0), ("farther", 3.0)]
    fused = zscore_fuse({"dense": dense, "bm25": [("far", 5.0)]}, {"dense": 1.0, "bm25": 0.0}, ("dense",))
    assert [k for k, _ in fused] == ["near", "far", "farther"]


def test_zscore_with_multivector_rescoring_is_refused() -> None:
    from m3retriever import Config
    from m3retriever.config import SearchConfig
    from m3retriever.config.resolution import resolve

    with pytest.raises(ConfigError, match="zscore.*multivector_rescore = 'rrf'|set search.fusion = 'rrf'"):
        resolve(Config(profile="small", multivector=True, search=SearchConfig(multivector_rescore=True)))


BRANCHES = ("dense", "sparse", "bm25")


def test_the_search_fuses_each_branch_own_ranking(make_retriever, corpus_docs) -> None:
    r = make_retriever(multivector=False)
    r.ingest(corpus_docs)
    weights = {"dense": 1.0, "sparse": 0.5, "bm25": 0.5}
    opts = {"prefetch_limit": 20, "rerank": False, "rrf_k": 10, **{f"{b}_weight": w for b, w in weights.items()}}
    for query in ("What is the capital of France?", "machine learning models", "Berlin"):
        res = r.search(query, top_k=8, fusion="zscore", **opts)
        own = {}
        for b in BRANCHES:
            alone = {f"{x}_weight": (1.0 if x == b else 0.0) for x in BRANCHES}
            hits = r.search(query, top_k=20, **{**opts, **alone}).hits
            own[b] = [(h.id, h.scores.final) for h in hits]
        expected = zscore_fuse(own, weights)
        assert [h.id for h in res.hits] == [k for k, _ in expected[:8]]
        for h, (_, score) in zip(res.hits, expected):
            assert h.scores.fused == pytest.approx(score, rel=1e-6)
        assert res.branch_weights == {b: weights[b] for b in BRANCHES if own[b]}, "a branch with no query terms is left out"
        rrf = r.search(query, top_k=8, fusion="rrf", **opts)
        assert {h.id for h in rrf.hits} <= {k for lst in own.values() for k, _ in lst}
