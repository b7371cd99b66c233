"""Backend congruence as a property: documents with mixed-type metadata and random filters give
the same ids on Qdrant Edge and on qdrant-client, and both agree with a Python reference of the
documented filter rules (docs/configuration.md, "Filters")."""

from __future__ import annotations

import math
import tempfile
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from m3retriever.filters import And, AnyOf, Eq, Filter, Not, Range
from m3retriever.ingest import point_id
from m3retriever.store import open_store
from m3retriever.store.schema import CollectionSpec, StoredPoint
from m3retriever.validation import check_metadata

SPEC = CollectionSpec(name="c", dense_dim=2, distance="cosine", sparse=False, bm25=False, fingerprint={"m": "t"})
FIELDS = ("a", "b", "n.x", "ключ", "tag-1")

# Small value domains, so that random filters hit stored values often.
ints = st.integers(-3, 3) | st.sampled_from([2**63 - 1, -(2**63)])
floats = st.sampled_from([-1.5, -0.0, 0.5, 1.0, 2.5, 1e300])
strs = st.sampled_from(["", "x", "y", "1", "true", "Ünï", "名前", "a b", "\x00"])
scalars = st.one_of(ints, floats, strs, st.booleans(), st.none())
values = st.one_of(scalars, st.lists(st.one_of(ints, strs, st.booleans()), max_size=3))


@st.composite
def metadata(draw: Any) -> dict[str, Any]:
    md: dict[str, Any] = {}
    for key in ("a", "b", "ключ", "tag-1"):
        if draw(st.booleans()):
            md[key] = draw(values)
    if draw(st.booleans()):
        md["n"] = {"x": draw(values)} if draw(st.booleans()) else draw(values)
    return md


eq_values = st.one_of(st.integers(-3, 3), strs, st.booleans())
bounds = st.one_of(st.none(), st.sampled_from([-2, -1.5, 0, 0.5, 1, 2.5, 3]))


@st.composite
def range_filter(draw: Any) -> Range:
    field = draw(st.sampled_from(FIELDS))
    b = {k: draw(bounds) for k in ("gte", "gt", "lte", "lt")}
    if all(v is None for v in b.values()):
        b["gte"] = 0
    return Range(field, **b)


leaf = st.one_of(
    st.builds(Eq, st.sampled_from(FIELDS), eq_values),
    st.builds(AnyOf, st.sampled_from(FIELDS), st.lists(st.integers(-3, 3), min_size=1, max_size=3)),
    st.builds(AnyOf, st.sampled_from(FIELDS), st.lists(strs, min_size=1, max_size=3)),
    range_filter(),
)
filters = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.builds(Not, inner), st.builds(And, st.lists(inner, min_size=1, max_size=3).map(tuple))
    ),
    max_leaves=6,
)


def _values(md: dict[str, Any], field: str) -> list[Any]:
    """The stored values a filter on ``field`` looks at: objects are walked by the dotted
    path, a list at the end contributes its elements."""
    node: Any = md
    for part in field.split("."):
        if not isinstance(node, dict) or part not in node:
            return []
        node = node[part]
    return list(node) if isinstance(node, list) else [node]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _eq(v: Any, want: Any) -> bool:
    # Typed equality: a boolean never equals an integer, an integer never a float.
    return type(v) is type(want) and v == want


def _in_range(v: Any, r: Range) -> bool:
    if not _is_number(v) or math.isnan(v):
        return False
    return (
        (r.gte is None or v >= r.gte)
        and (r.gt is None or v > r.gt)
        and (r.lte is None or v <= r.lte)
        and (r.lt is None or v < r.lt)
    )


def reference(flt: Filter, md: dict[str, Any]) -> bool:
    """The documented filter rules, in Python."""
    if isinstance(flt, Eq):
        return any(_eq(v, flt.value) for v in _values(md, flt.field))
    if isinstance(flt, AnyOf):
        return any(_eq(v, w) for v in _values(md, flt.field) for w in flt.values)
    if isinstance(flt, Range):
        return any(_in_range(v, flt) for v in _values(md, flt.field))
    if isinstance(flt, Not):
        return not reference(flt.inner, md)
    assert isinstance(flt, And)
    return all(reference(p, md) for p in flt.parts)


def _load(location: str, docs: list[dict[str, Any]]) -> Any:
    store = open_store(location)
    store.ensure_collection(SPEC)
    store.upsert(
        "c",
        [
            StoredPoint(
                id=point_id(f"d{i}", 0),
                payload={"doc_id": f"d{i}", "chunk_index": 0, "metadata": md},
                dense=[1.0, 0.5],
            )
            for i, md in enumerate(docs)
        ],
    )
    return store


def _ids(store: Any, flt: Filter) -> list[int]:
    return sorted(int(r.payload["doc_id"][1:]) for r in store.scroll("c", flt))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(docs=st.lists(metadata(), min_size=1, max_size=12), flts=st.lists(filters, min_size=1, max_size=8))
def test_edge_client_and_reference_agree(docs: list[dict[str, Any]], flts: list[Filter]) -> None:
    docs = [check_metadata(md, "test") for md in docs]  # what the boundary accepts is stored
    with tempfile.TemporaryDirectory() as tmp:
        edge, memory = _load(tmp, docs), _load(":memory:", docs)
        try:
            for flt in flts:
                expected = [i for i, md in enumerate(docs) if reference(flt, md)]
                assert _ids(edge, flt) == expected, flt
                assert _ids(memory, flt) == expected, flt
                assert edge.count("c", flt) == memory.count("c", flt) == len(expected)
            # Everything accepted reads back unchanged on both backends.
            for store in (edge, memory):
                stored = {r.payload["doc_id"]: r.payload["metadata"] for r in store.scroll("c")}
                assert [stored[f"d{i}"] for i in range(len(docs))] == docs
        finally:
            edge.close()
            memory.close()
