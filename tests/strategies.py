"""Hypothesis strategies for bad and odd input, shared by the fuzz tests and the reliability
report (tests/benchmarks/reliability.py): documents, metadata, filters and search options as a
careless user, an agent or a hostile file would send them."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

__all__ = ["any_text", "keys", "scalars", "json_like", "metadata", "documents", "filters", "options"]

# Any code point, lone surrogates included (what undecodable bytes become in Python).
any_text = st.text(st.characters(codec=None, categories=None), max_size=40)
keys = st.one_of(any_text, st.sampled_from(["a", "b", "a b", "a.b", "$x", "🙂", "", "k-1"]), st.integers())
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    any_text,
    st.binary(max_size=4),
    st.just(object()),
)
json_like = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3), st.tuples(inner)
    ),
    max_leaves=12,
)


def _deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"k": value}
    return value


metadata = st.one_of(
    st.dictionaries(keys, json_like, max_size=4),
    st.integers(0, 300).map(lambda n: {"deep": _deep(n)}),
    json_like,
)
documents = st.fixed_dictionaries(
    {"doc_id": st.one_of(any_text, st.integers(), st.none()), "text": st.one_of(any_text, st.none(), st.integers())},
    optional={"metadata": metadata, "source": st.one_of(any_text, st.integers())},
)
filter_values = st.one_of(
    json_like,
    st.dictionaries(st.sampled_from(["any", "not", "gte", "gt", "lte", "lt", "eq", ""]), json_like, max_size=3),
)
filters = st.one_of(st.none(), json_like, st.dictionaries(keys, filter_values, max_size=3))
option_values = st.one_of(
    scalars, st.sampled_from([0, 1, 5, -5, 2.5, 2**64, math.nan, "5", "rrf", "dbsf", "no", True, False])
)
options = st.dictionaries(
    st.sampled_from(
        [
            "top_k", "prefetch_limit", "rerank_depth", "fusion", "rrf_k", "dense_weight",
            "sparse_weight", "bm25_weight", "rerank", "rerank_weight", "min_score", "hnsw_ef",
            "exact", "stage_scores", "multivector_rescore", "multivector_depth", "no_such_option",
        ]
    ),
    option_values,
    max_size=3,
)
