"""Adaptive fusion: each branch's weight for a query follows how far the other branches agree
with its first hits; the weights used are on the result, and the engine fuses with them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import QUERIES
from m3retriever.search.adaptive import FLOOR, TOP, adapted_weights, agreement

_ids = st.lists(st.integers(0, 30), max_size=15, unique=True)
_rankings = st.dictionaries(st.sampled_from(["dense", "sparse", "bm25"]), _ids, min_size=1)


@settings(max_examples=200, deadline=None)
@given(rankings=_rankings, base=st.floats(0.05, 3.0))
def test_a_branch_keeps_between_the_floor_and_all_of_its_weight(rankings, base) -> None:
    weights = {name: base for name in rankings}
    adapted = adapted_weights(weights, rankings)
    assert set(adapted) == set(rankings)
    for w in adapted.values():
        assert FLOOR * base - 1e-12 <= w <= base + 1e-12
    if len(rankings) == 1:
        assert adapted == weights  # alone: nothing to judge it by


def test_agreement_counts_the_first_hits_another_branch_also_found() -> None:
    rankings = {"dense": [1, 2, 3, 4], "sparse": [2, 9, 8, 7], "bm25": [3, 2, 10, 11]}
    share = agreement(rankings)
    assert share == {"dense": 0.5, "sparse": 0.25, "bm25": 0.5}
    # only the first TOP ids count
    late = {"dense": list(range(TOP)) + [99], "bm25": [99] + list(range(100, 100 + TOP))}
    assert agreement(late) == {"dense": 0.0, "bm25": 0.0}  # 99 is 11th for dense: not counted
    assert adapted_weights({"dense": 1.0, "bm25": 0.5}, {"dense": [1], "bm25": [2]}) == {"dense": FLOOR, "bm25": 0.5 * FLOOR}
    assert adapted_weights({"dense": 1.0, "bm25": 0.5}, {"dense": [1, 2], "bm25": [2, 1]}) == {"dense": 1.0, "bm25": 0.5}


@pytest.fixture(scope="module")
def hybrid(tmp_path_factory, tiny_settings, corpus_docs):
    from m3retriever import Retriever, load_config

    cfg = load_config(env={}, location=str(tmp_path_factory.mktemp("adaptive") / "s"), bm25=True, **tiny_settings)
    with Retriever(cfg) as r:
        r.ingest(corpus_docs)
        yield r


def test_the_result_names_the_weights_the_engine_fused_with(hybrid) -> None:
    configured = hybrid.search_settings()
    for q in QUERIES:
        fixed = hybrid.search(q, adaptive=False, rerank=False)
        assert fixed.branch_weights == {
            "dense": configured.dense_weight, "sparse": configured.sparse_weight, "bm25": configured.bm25_weight
        }
        adaptive = hybrid.search(q, rerank=False, adaptive=True)
        assert set(adaptive.branch_weights) == set(fixed.branch_weights)
        for name, w in adaptive.branch_weights.items():
            assert FLOOR * fixed.branch_weights[name] - 1e-9 <= w <= fixed.branch_weights[name] + 1e-9
        # the engine fused with exactly those weights: the same search with them, fixed
        again = hybrid.search(q, adaptive=False, rerank=False, **{f"{n}_weight": w for n, w in adaptive.branch_weights.items()})
        assert [(h.id, round(h.scores.fused, 9)) for h in again] == [(h.id, round(h.scores.fused, 9)) for h in adaptive]
        # each branch's own ranking (its stage scores) does not move with the adaptation
        for hf, ha in zip(sorted(fixed, key=lambda h: h.id), sorted(adaptive, key=lambda h: h.id)):
            if hf.id == ha.id:
                assert (hf.scores.dense_rank, hf.scores.sparse_rank, hf.scores.bm25_rank) == (
                    ha.scores.dense_rank, ha.scores.sparse_rank, ha.scores.bm25_rank
                )


def test_a_single_branch_search_is_not_adapted(hybrid) -> None:
    result = hybrid.search(QUERIES[0], sparse_weight=0, bm25_weight=0, rerank=False, adaptive=True)
    assert result.branch_weights == {"dense": hybrid.search_settings().dense_weight}


def test_adaptive_is_off_by_default_and_a_setting_a_collection_can_keep(hybrid) -> None:
    assert hybrid.search_settings().adaptive is False
    fixed = hybrid.search(QUERIES[1], rerank=False)
    assert fixed.branch_weights["sparse"] == hybrid.search_settings().sparse_weight
    hybrid.save_search_defaults({"adaptive": True})
    try:
        assert hybrid.search_settings().adaptive is True
        assert hybrid.search(QUERIES[1], rerank=False).branch_weights == hybrid.search(
            QUERIES[1], rerank=False, adaptive=True
        ).branch_weights
    finally:
        hybrid.clear_search_defaults()
    assert hybrid.search_settings().adaptive is False
