"""Diverse hits: ``max_per_doc`` (at most N chunks of a document, the best first, the freed
places filled from deeper candidates) and ``mmr`` (maximal marginal relevance over the
candidates' dense vectors), as properties of the functions and through the retriever on Qdrant
Edge and qdrant-client's ``:memory:`` mode."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m3retriever import ConfigError, SearchConfig
from m3retriever.search.diversity import best_rank_by_doc, cap_per_doc, mmr_order

docs_and_cap = st.tuples(
    st.lists(st.sampled_from("abcdef"), min_size=0, max_size=40), st.integers(min_value=1, max_value=5)
)


@given(docs_and_cap, st.randoms(use_true_random=False))
def test_cap_keeps_the_best_chunks_of_each_document_in_order(case, rnd):
    doc_ids, cap = case
    order = list(range(len(doc_ids)))
    rnd.shuffle(order)
    kept = cap_per_doc(order, doc_ids, cap)
    # never more than `cap` per document ...
    for d in set(doc_ids):
        assert sum(doc_ids[i] == d for i in kept) == min(cap, doc_ids.count(d))
    # ... each document's first `cap` chunks of `order`, in `order`'s order
    assert kept == [i for n, i in enumerate(order) if sum(doc_ids[j] == doc_ids[i] for j in order[:n]) < cap]
    best = best_rank_by_doc(order, doc_ids)
    assert best_rank_by_doc(kept, doc_ids).keys() == best.keys()
    # documents keep their relative order: by their best chunk's rank
    firsts = [doc_ids[i] for n, i in enumerate(kept) if doc_ids[i] not in {doc_ids[j] for j in kept[:n]}]
    assert firsts == sorted(best, key=best.__getitem__)


@given(
    st.integers(min_value=1, max_value=12).flatmap(
        lambda n: st.tuples(
            st.lists(st.floats(-5, 5), min_size=n, max_size=n),
            st.lists(st.lists(st.floats(-1, 1), min_size=3, max_size=3), min_size=n, max_size=n),
        )
    ),
    st.floats(0.0, 1.0),
)
@settings(max_examples=60)
def test_mmr_is_a_permutation_led_by_the_most_relevant(case, diversity):
    relevance, vectors = np.array(case[0]), np.array(case[1])
    order = sorted(range(len(relevance)), key=lambda i: (-relevance[i], i))
    out = mmr_order(order, relevance, vectors, diversity)
    assert sorted(out) == sorted(order) and len(out) == len(order)
    if diversity < 1.0:
        assert relevance[out[0]] == relevance[order[0]]
    assert mmr_order(order, relevance, vectors, 0.0) == order


def test_mmr_prefers_a_novel_chunk_over_a_near_copy():
    relevance = np.array([1.0, 0.95, 0.5])
    vectors = np.array([[1.0, 0.0], [0.99, 0.01], [0.0, 1.0]])
    assert mmr_order([0, 1, 2], relevance, vectors, 0.0) == [0, 1, 2]
    assert mmr_order([0, 1, 2], relevance, vectors, 0.5) == [0, 2, 1]


def test_diversity_settings_are_checked():
    for bad in ({"max_per_doc": 0}, {"mmr": 1.5}, {"mmr": -0.1}, {"diversity_depth": 0}, {"max_per_doc": True}):
        with pytest.raises(ConfigError):
            SearchConfig(**bad)


# Three long documents (several chunks each with the tiny models' 48-token chunks) and short ones.
WORDS = "river stone cloud lamp garden mirror violin engine harbor window meadow candle".split()
LONG = {
    "alpha": " ".join(f"Qdrant stores vectors near the {w} and filters payload {k}." for k, w in enumerate(WORDS)),
    "beta": " ".join(f"Rank fusion merges {w} lists from retriever {k}." for k, w in enumerate(WORDS)),
    "gamma": " ".join(f"Vector databases index the {w} embeddings of search {k}." for k, w in enumerate(WORDS)),
}
SHORT = {f"s{i}": f"Short note {i} about vector search and databases, item {i}." for i in range(8)}


@pytest.fixture(scope="module")
def pair(tmp_path_factory, tiny_settings):
    """The same collection on Edge and in qdrant-client's ``:memory:`` mode."""
    from m3retriever import Retriever, load_config

    docs = [{"doc_id": d, "text": t} for d, t in {**LONG, **SHORT}.items()]
    out = []
    for location in (str(tmp_path_factory.mktemp("edge") / "store"), ":memory:"):
        r = Retriever(load_config(env={}, location=location, **tiny_settings))
        r.ingest(docs)
        out.append(r)
    assert out[0].count() > len(docs)  # the long documents have several chunks
    yield out
    for r in out:
        r.close()


@pytest.mark.parametrize("options", [{}, {"rerank": False}], ids=["rerank", "fused"])
def test_max_per_doc_on_both_backends(pair, options):
    query = "vector databases qdrant fusion"
    results = []
    for r in pair:
        deep = r.search(query, top_k=30, **options)
        capped = r.search(query, top_k=6, max_per_doc=1, diversity_depth=30, **options)
        two = r.search(query, top_k=6, max_per_doc=2, diversity_depth=30, **options)
        for res, cap in ((capped, 1), (two, 2)):
            ids = [h.doc_id for h in res]
            assert len(ids) == 6 and all(ids.count(d) <= cap for d in ids)
            # what the uncapped ranking gives, keeping each document's first `cap` chunks
            expected = [h.id for n, h in enumerate(deep) if [x.doc_id for x in deep[:n]].count(h.doc_id) < cap]
            assert [h.id for h in res] == expected[:6]
            for h in res:
                assert h.scores.relevance_rank == next(x.scores.final_rank for x in deep if x.id == h.id)
                assert h.scores.doc_best_rank == next(x.scores.final_rank for x in deep if x.doc_id == h.doc_id)
        assert len(set(h.doc_id for h in deep[:6])) < 6  # the cap changed something
        results.append(([h.id for h in capped], [h.id for h in two]))
    assert results[0] == results[1]


def test_mmr_on_both_backends(pair):
    query = "vector search"
    rankings = []
    for r in pair:
        plain = r.search(query, top_k=8, diversity_depth=20)
        assert plain.hits[0].scores.relevance_rank is None
        same = r.search(query, top_k=8, mmr=0.0, diversity_depth=20)
        deep = r.search(query, top_k=50)  # every candidate (the rerank depth is 50)
        assert [h.id for h in same] == [h.id for h in deep][:8]
        diverse = r.search(query, top_k=8, mmr=0.7, diversity_depth=20)
        assert diverse.hits[0].id == deep.hits[0].id
        assert {h.id for h in diverse} <= {h.id for h in deep}
        assert all(h.scores.relevance_rank is not None for h in diverse)
        rankings.append([h.id for h in diverse])
    assert rankings[0] == rankings[1]


def test_mmr_needs_the_dense_branch(make_retriever, tiny_bge_m3_path):
    r = make_retriever(
        location=":memory:", dense_encoder="none", sparse_encoder="bge-m3", sparse_model=str(tiny_bge_m3_path), reranker="none"
    )
    r.add_texts(["a text about vectors"], ids=["a"])
    with pytest.raises(ConfigError, match="dense"):
        r.search("vectors", mmr=0.5)
