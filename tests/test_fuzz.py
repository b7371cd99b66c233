"""Fuzzing the Python API with hypothesis: random documents, metadata, filters and search options.

Whatever is sent, the only exceptions are the library's own, a rejected call leaves the store's
count unchanged, and the collection still opens and searches afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from m3retriever import Retriever, load_config
from m3retriever.errors import M3RetrieverError
from strategies import any_text, documents, filters, options

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))

@pytest.fixture(scope="module")
def fuzz_retriever(tmp_path_factory: pytest.TempPathFactory, tiny_settings: dict, corpus_docs: list[dict]):
    location = str(tmp_path_factory.mktemp("fuzz") / "store")
    r = Retriever(load_config(env={}, location=location, **tiny_settings))
    r.ingest(corpus_docs)
    yield r, location
    r.close()


def _still_works(r: Retriever) -> None:
    assert r.search("vector database", top_k=3, rerank=False).hits


@FUZZ
@given(docs=st.lists(documents, min_size=1, max_size=3))
def test_fuzz_ingest(fuzz_retriever, docs: list[dict]) -> None:
    r, _ = fuzz_retriever
    before = r.count()
    try:
        r.ingest(docs)
    except M3RetrieverError:
        assert r.count() == before  # a rejected list writes nothing
    _still_works(r)


@FUZZ
@given(query=st.one_of(any_text, st.none(), st.integers()), flt=filters, opts=options)
def test_fuzz_search(fuzz_retriever, query: Any, flt: Any, opts: dict) -> None:
    r, _ = fuzz_retriever
    before = r.count()
    try:
        result = r.search(query, filter=flt, **opts)
    except M3RetrieverError:
        pass
    else:
        assert all(h.scores.final_rank == i for i, h in enumerate(result.hits, 1))
    assert r.count() == before


@FUZZ
@given(flt=filters)
def test_fuzz_count_and_delete(fuzz_retriever, flt: Any) -> None:
    r, _ = fuzz_retriever
    try:
        r.count(flt)
    except M3RetrieverError:
        before = r.count()
        with pytest.raises(M3RetrieverError):
            r.delete(filter=flt)  # the same filter is refused by delete too
        assert r.count() == before


def test_the_fuzzed_collection_reopens(fuzz_retriever, tiny_settings: dict) -> None:
    r, location = fuzz_retriever
    n = r.count()
    r.close()
    again = Retriever(load_config(env={}, location=location, **tiny_settings))
    try:
        assert again.count() == n
        _still_works(again)
        assert Path(location).is_dir()
    finally:
        again.close()
