"""Bad input through the Python API: each defect class found by the hardening review, checked on
a real embedded store (and qdrant-client's ``:memory:`` where the backends could differ)."""

from __future__ import annotations

import math

import pytest

from m3retriever import Retriever, load_config
from m3retriever.errors import ConfigError, FingerprintMismatchError, InputError
from m3retriever.validation import MAX_METADATA_DEPTH, MAX_QUERY_CHARS


def _nested(levels: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"k": value}
    return value


def test_deeply_nested_metadata_is_refused_and_the_collection_survives(make_retriever, corpus_docs, tmp_path):
    r = make_retriever()
    r.ingest(corpus_docs[:3])
    for levels in (MAX_METADATA_DEPTH + 1, 130, 500):
        with pytest.raises(InputError, match="nested more than"):
            r.ingest([{"doc_id": "deep", "text": "deep text", "metadata": {"m": _nested(levels)}}])
    r.ingest([{"doc_id": "ok", "text": "ok text", "metadata": {"m": _nested(MAX_METADATA_DEPTH - 1)}}])
    r.close()
    again = make_retriever()  # a later process opens the collection and searches it
    assert again.count() == 4
    assert again.search("qdrant", rerank=False).hits


@pytest.mark.parametrize("location", ["edge", ":memory:"])
def test_boolean_filters_never_match_integers(make_retriever, tmp_path, location):
    r = make_retriever(location=str(tmp_path / "s") if location == "edge" else location)
    values = {"t": True, "f": False, "one": 1, "zero": 0}
    r.ingest([{"doc_id": k, "text": f"document {k}", "metadata": {"flag": v}} for k, v in values.items()])

    def ids(flt):
        return sorted(h.doc_id for h in r.search("document", top_k=10, filter=flt, rerank=False))

    assert ids({"flag": True}) == ["t"]
    assert ids({"flag": False}) == ["f"]
    assert ids({"flag": 1}) == ["one"]
    assert ids({"flag": 0}) == ["zero"]
    assert ids({"flag": {"not": True}}) == ["f", "one", "zero"]
    assert r.count({"flag": True}) == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"doc_id": "d289", "text": "duplicate id"},
        {"doc_id": "empty", "text": "   "},
        {"doc_id": "meta", "text": "x", "metadata": {"bad key": 1}},
        {"doc_id": "big", "text": "x", "metadata": {"n": 2**64}},
    ],
)
def test_a_list_is_validated_whole_before_anything_is_written(make_retriever, bad):
    r = make_retriever()
    docs = [{"doc_id": f"d{i}", "text": f"text number {i}"} for i in range(300)]
    docs[290] = bad
    with pytest.raises(InputError, match="document #290"):
        r.ingest(docs)
    assert r.count() == 0


def test_a_stream_error_says_how_much_was_written_and_a_rerun_is_idempotent(make_retriever):
    r = make_retriever()

    def stream(broken: bool):
        for i in range(300):
            text = "" if broken and i == 290 else f"text number {i}"
            yield {"doc_id": f"d{i}", "text": text}

    with pytest.raises(InputError, match="document #290.*256 documents before this batch were already written"):
        r.ingest(stream(True))
    assert r.count() == 256
    report = r.ingest(stream(False))
    assert (report.skipped, report.added) == (256, 44)
    assert r.count() == 300


def test_folder_of_documents_larger_than_the_limit_is_refused(make_retriever):
    r = make_retriever(max_document_chars=1000)
    with pytest.raises(InputError, match="max_document_chars"):
        r.ingest([{"doc_id": "small", "text": "fine"}, {"doc_id": "huge", "text": "word " * 1000}])
    assert r.count() == 0


def test_long_queries_are_cut_to_tokens_and_absurd_ones_refused(make_retriever, corpus_docs):
    r = make_retriever(max_query_tokens=16)
    r.ingest(corpus_docs)
    long_query = "vector database filters " * 2000
    result = r.search(long_query)
    assert result.hits
    assert len(result.query) < 200  # 16 tokens of the tokenizer, not 48,000 characters
    assert long_query.startswith(result.query)
    with pytest.raises(InputError, match="characters"):
        r.search("x" * (MAX_QUERY_CHARS + 1))


@pytest.mark.parametrize(
    "options",
    [
        {"top_k": 2.5},
        {"top_k": math.nan},
        {"top_k": 2**64},
        {"top_k": True},
        {"top_k": "5"},
        {"hnsw_ef": -5},
        {"rrf_k": 2.5},
        {"rerank": "no"},
        {"rerank_weight": math.nan},
        {"dense_weight": math.inf},
        {"min_score": "high"},
        {"prefetch_limit": 0},
    ],
)
def test_bad_search_options_are_config_errors_naming_the_option(make_retriever, corpus_docs, options):
    r = make_retriever()
    r.ingest(corpus_docs[:2])
    (name,) = options
    with pytest.raises(ConfigError, match=f"search.{name}"):
        r.search("qdrant", **options)


@pytest.mark.parametrize(
    "flt, message",
    [
        ({"a b": 1}, "not a valid metadata key"),
        ({"a:b": 1}, "not a valid metadata key"),
        ({"🙂": 1}, "not a valid metadata key"),
        ({"a.": 1}, "not a valid metadata key"),
        ({"$x": 1}, "not a valid metadata key"),
        ({"n": 2**64}, "64 bits"),
        ({"n": {"gte": 10**400}}, "too large"),
        ({"n": {"gte": math.nan}}, "finite"),
        ({"n": {"lt": math.inf}}, "finite"),
        ({"n": {"gte": True}}, "number"),
        ({"n": "\udcff"}, "Unicode"),
        ({1: "x"}, "filter field"),
    ],
)
def test_bad_filters_are_input_errors(make_retriever, corpus_docs, flt, message):
    r = make_retriever()
    r.ingest(corpus_docs[:2])
    with pytest.raises(InputError, match=message):
        r.search("qdrant", filter=flt)
    with pytest.raises(InputError, match=message):
        r.count(flt)


@pytest.mark.parametrize(
    "doc, message",
    [
        ({"doc_id": "a", "text": "bad \ud800 text"}, "Unicode"),
        ({"doc_id": "\udcff", "text": "text"}, "Unicode"),
        ({"doc_id": "a", "text": "t", "metadata": {"k": "\udcff"}}, "Unicode"),
        ({"doc_id": "a", "text": "t", "metadata": {1: "x"}}, "must be a string"),
        ({"doc_id": "a", "text": "t", "metadata": {"k": {"a b": 1}}}, "not allowed"),
        ({"doc_id": "a", "text": "t", "metadata": {"k": math.nan}}, "finite"),
        ({"doc_id": "a", "text": "t", "metadata": {"k": object()}}, "not JSON"),
        ({"doc_id": "a", "text": "t", "metadata": ["not", "a", "mapping"]}, "mapping"),
        ({"doc_id": "a" * 2000, "text": "t"}, "shorter id"),
        ({"doc_id": 5, "text": "t"}, "doc_id"),
    ],
)
def test_bad_documents_are_input_errors_and_nothing_is_written(make_retriever, doc, message):
    r = make_retriever()
    with pytest.raises(InputError, match=message):
        r.ingest([doc])
    assert r.count() == 0


def test_non_iterables_and_bad_queries_are_input_errors(make_retriever, corpus_docs):
    r = make_retriever()
    r.ingest(corpus_docs[:2])
    for call in (
        lambda: r.ingest(None),
        lambda: r.ingest(5),
        lambda: r.add_texts(None),
        lambda: r.add_texts(["a"], ids="a"),
        lambda: r.search_batch(None),
        lambda: r.search("bad \udcff query"),
        lambda: r.search(None),
        lambda: r.delete(5),
    ):
        with pytest.raises(InputError):
            call()
    assert r.count() == 2


def test_info_reports_the_exact_point_count(make_retriever, corpus_docs):
    r = make_retriever()
    r.ingest(corpus_docs)
    r.ingest(corpus_docs[:3] + [{"doc_id": "extra", "text": "one more"}])  # overwrites + new
    info = r.info()
    assert info["points"] == r.count() == len(corpus_docs) + 1


def test_fingerprint_mismatch_names_the_setting_that_differs(make_retriever, tmp_path, corpus_docs, tiny_settings):
    r = make_retriever()
    r.ingest(corpus_docs[:2])
    r.close()
    with pytest.raises(FingerprintMismatchError) as err:
        Retriever(load_config(env={}, location=str(tmp_path / "store"), **{**tiny_settings, "bm25": True}))
    message = str(err.value)
    assert "bm25.name: built with '(unset)', configured 'bm25'" in message
    assert "dense" not in message  # only what differs
    assert len(message) < 900



def test_a_dependency_that_fails_to_import_names_the_versions_that_work(tmp_path, monkeypatch):
    """A package that is installed but whose import breaks (as FlagEmbedding 1.4.2 does under
    transformers 5.24) is not reported as missing: the error says what works."""
    from m3retriever._deps import require
    from m3retriever.errors import BrokenDependencyError, MissingDependencyError

    pkg = tmp_path / "brokenpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from transformers import modeling_attn_mask_utils_gone\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BrokenDependencyError, match="installed but fails to import.*Known to work"):
        require("brokenpkg", package="brokenpkg", extra="bge-m3", purpose="A test")
    with pytest.raises(MissingDependencyError, match=r"m3retriever\[bge-m3\]"):
        require("no_such_package_here", package="nope", extra="bge-m3", purpose="A test")

