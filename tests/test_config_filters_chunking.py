"""Configuration loading, the filter language, chunking and file readers: pure logic, no models."""

from __future__ import annotations

import gzip
import json

import pytest

from m3retriever import AnyOf, ConfigError, Eq, InputError, Not, Range, SearchConfig, load_config, parse_filter
from m3retriever.chunking import ChunkingConfig, chunk_text
from m3retriever.filters import And
from m3retriever.sources import read_beir_corpus, read_folder, read_jsonl


def words(text):
    import re

    return [m.span() for m in re.finditer(r"\S+", text)]


def test_config_sources_apply_in_order(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('profile = "small"\ncollection = "a"\nindexed_fields = ["x"]\n[search]\ntop_k = 3\nrrf_k = 30\n')
    env = {"M3R_COLLECTION": "b", "M3R_SEARCH_TOP_K": "4", "M3R_BM25": "false", "OTHER": "1", "M3R_MCP_TOKEN": "t"}
    cfg = load_config(toml, env=env, location="/tmp/x", search={"rrf_k": 10})
    assert cfg.profile == "small" and cfg.collection == "b" and cfg.location == "/tmp/x"
    assert cfg.indexed_fields == ("x",) and cfg.bm25 is False
    assert (cfg.search.top_k, cfg.search.rrf_k) == (4, 10)
    hash(cfg)  # frozen and hashable (Retriever.shared keys on it)
    with pytest.raises(Exception):
        cfg.profile = "bge-m3"  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"profile": "huge"}, "unknown profile 'huge'"),
        ({"colection": "x"}, "unknown setting 'colection'"),
        ({"batch_size": "many"}, "batch_size must be int"),
        ({"search": {"top_k": 0}}, "top_k must be between 1 and"),
        ({"search": {"fusion": "max"}}, "fusion must be one of"),
        ({"search": {"rerank_weight": 2}}, r"rerank_weight must be between 0 and 1"),
        ({"search": {"min_score": 5}}, "min_score must be between 0 and 1"),
        ({"bm25": "perhaps"}, "bm25 must be true or false"),
        ({"collection": "has space"}, "collection name"),
    ],
)
def test_bad_config_names_the_problem(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        load_config(env={}, **kwargs)


def test_bad_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("profile = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, env={})


def test_unknown_env_variable_is_reported():
    with pytest.raises(ConfigError, match="unknown setting 'search.tpo_k'"):
        load_config(env={"M3R_SEARCH_TPO_K": "3"})


def test_filter_mapping_syntax():
    f = parse_filter({"lang": "en", "year": {"gte": 2020, "lt": 2024}, "tag": {"any": ["a", "b"]}, "s": {"not": "x"}, "n": [1, 2]})
    assert f == And(
        (Eq("lang", "en"), Range("year", gte=2020, lt=2024), AnyOf("tag", ["a", "b"]), Not(Eq("s", "x")), AnyOf("n", [1, 2]))
    )
    assert parse_filter(None) is None and parse_filter({}) is None
    assert (Eq("a", 1) & Eq("b", 2) & Eq("c", 3)).parts == (Eq("a", 1), Eq("b", 2), Eq("c", 3))


@pytest.mark.parametrize(
    "spec, message",
    [
        ("lang=en", "must be a mapping"),
        ({"x": {"between": 1}}, "unknown operators"),
        ({"x": 1.5}, "use Range"),
        ({"x": {"any": []}}, "matches nothing"),
        ({"x": {"any": ["a", 1]}}, "all strings or all integers"),
        ({"x": {"gte": "high"}}, "must be a number"),
        ({"": 1}, "non-empty metadata key"),
        ({"x": {"a": 1}}, "unknown operators"),
    ],
)
def test_filter_errors(spec, message):
    with pytest.raises(InputError, match=message):
        parse_filter(spec)


def test_chunks_cover_the_text_with_overlap():
    text = " ".join(f"w{i}" for i in range(100)) + "."
    chunks = chunk_text("d", text, words, ChunkingConfig(max_tokens=30, overlap=5))
    assert [c.chunk_index for c in chunks] == list(range(len(chunks)))
    assert all(len(words(c.text)) <= 30 for c in chunks)
    assert chunks[0].start == 0 and chunks[-1].end == len(text) and chunks[-1].text.endswith("w99.")
    for a, b in zip(chunks, chunks[1:]):
        assert len(set(a.text.split()) & set(b.text.split())) == 5  # the overlap
        assert text[a.start : a.end] == a.text
    covered = set()
    for c in chunks:
        covered |= set(c.text.split())
    assert covered == set(text.split())


def test_short_text_is_one_chunk_holding_everything():
    chunks = chunk_text("d", "  Hello, world!  ", words, ChunkingConfig(max_tokens=30, overlap=5))
    assert len(chunks) == 1 and chunks[0].text == "  Hello, world!  "
    assert chunk_text("d", "   ", words, ChunkingConfig()) == []


def test_chunking_config_is_validated():
    with pytest.raises(ConfigError):
        ChunkingConfig(max_tokens=4)
    with pytest.raises(ConfigError):
        ChunkingConfig(max_tokens=100, overlap=80)


def test_read_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.md").write_text("# A\ntext")
    (tmp_path / "sub" / "b.txt").write_text("B text")
    (tmp_path / "skip.bin").write_bytes(b"\x00\x01")
    (tmp_path / "empty.txt").write_text("  ")
    docs = list(read_folder(tmp_path))
    assert [d.doc_id for d in docs] == ["a.md", "sub/b.txt"]
    assert docs[1].metadata == {"file_name": "b.txt", "suffix": ".txt"}
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        list(read_folder(tmp_path, strict=True))
    assert [d.doc_id for d in read_folder(tmp_path)] == ["a.md", "sub/b.txt"]  # skipped
    with pytest.raises(InputError, match="not a directory"):
        list(read_folder(tmp_path / "nope"))


def test_read_jsonl_and_beir(tmp_path):
    p = tmp_path / "docs.jsonl"
    p.write_text(
        json.dumps({"doc_id": "1", "text": "one", "lang": "en"}) + "\n\n"
        + json.dumps({"id": 2, "title": "T", "text": "two", "metadata": {"k": 1}}) + "\n"
    )
    docs = list(read_jsonl(p))
    assert [(d.doc_id, d.text) for d in docs] == [("1", "one"), ("2", "T\ntwo")]
    assert docs[0].metadata == {"lang": "en"} and docs[1].metadata == {"k": 1, "title": "T"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"doc_id": "1", "text": "ok"}) + "\n{not json\n")
    with pytest.raises(InputError, match=r"bad.jsonl:2: not valid JSON"):
        list(read_jsonl(bad))
    beir = tmp_path / "beir"
    beir.mkdir()
    with gzip.open(beir / "corpus.jsonl.gz", "wt") as fh:
        fh.write(json.dumps({"_id": "d1", "title": "Title", "text": "Body"}) + "\n")
    assert [(d.doc_id, d.text) for d in read_beir_corpus(beir)] == [("d1", "Title\nBody")]
    with pytest.raises(InputError, match="not a BEIR dataset"):
        list(read_beir_corpus(tmp_path))


def test_search_config_defaults():
    from m3retriever.profiles import get_profile
    from m3retriever.search import ResolvedSearch

    s = SearchConfig()
    assert (s.fusion, s.rrf_k, s.prefetch_limit) == ("rrf", None, 100)
    # RRF k and the branch weights come from the profile unless set
    small = get_profile("small")
    assert ResolvedSearch.resolve(s, get_profile("bge-m3"), True).rrf_k == 60
    got = ResolvedSearch.resolve(s, small, True)
    assert got.rrf_k == small.rrf_k and got.weights["dense"] == small.dense_weight
    assert ResolvedSearch.resolve(SearchConfig(rrf_k=7), small, True).rrf_k == 7
    with pytest.raises(ConfigError, match="rrf_k must be between 1 and"):
        SearchConfig(rrf_k=0)
