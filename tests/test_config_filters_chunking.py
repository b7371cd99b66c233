"""Configuration loading, the filter language, chunking and file readers: pure logic, no models."""

from __future__ import annotations

import gzip
import json

import pytest

from m3retriever import AnyOf, Config, ConfigError, Eq, InputError, Not, Range, SearchConfig, load_config, parse_filter
from m3retriever.filters import And
from m3retriever.ingest.chunking import ChunkingConfig, chunk_text
from m3retriever.ingest.sources import read_beir_corpus, read_folder, read_jsonl


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
    assert docs[1].metadata == {"file_name": "b.txt", "suffix": ".txt", "folders": ["sub"]}
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
    from m3retriever.config.profiles import get_profile
    from m3retriever.config.resolution import resolve

    s = SearchConfig()
    # unset until resolved (a collection's own defaults may fill them), then rrf / 100
    assert (s.fusion, s.rrf_k, s.prefetch_limit) == (None, None, None)
    resolved = resolve(Config()).search
    assert (resolved.fusion, resolved.prefetch_limit, resolved.hnsw_ef) == ("rrf", 100, 200)
    # RRF k and the branch weights come from the profile unless set
    small = get_profile("small")
    assert resolve(Config()).search.rrf_k == 60
    got = resolve(Config(profile="small")).search
    assert got.rrf_k == small.get("search.rrf_k") == 10
    assert got.sparse_weight == small.get("search.sparse_weight") == 0.5
    assert resolve(Config(profile="small", search=SearchConfig(rrf_k=7))).search.rrf_k == 7
    assert resolve(Config(profile="small"), rrf_k=9).search.rrf_k == 9
    with pytest.raises(ConfigError, match="rrf_k must be between 1 and"):
        SearchConfig(rrf_k=0)


def test_resolution_fills_profile_then_field_defaults():
    from m3retriever.config.resolution import resolve

    c = resolve(Config())  # bge-m3
    assert (c.dense_encoder, c.dense_model, c.sparse_encoder) == ("bge-m3", "BAAI/bge-m3", "bge-m3")
    assert c.sparse_model == "BAAI/bge-m3"  # the sparse branch shares the dense encoder's model
    assert (c.bm25, c.reranker, c.rerank_max_length) == (False, "cross-encoder", 512)
    s = c.search
    assert (s.rerank_depth, s.rrf_k, s.dense_weight, s.rerank_weight, s.hnsw_ef) == (50, 60, 1.0, 1.0, 200)
    small = resolve(Config(profile="small", max_length=256))
    assert (small.dense_encoder, small.lexical_encoder, small.bm25) == ("onnx-dense", "bm25", True)
    assert (small.query_instruction, small.rerank_max_length) == ("", 128)
    # resolving twice changes nothing; the user's values always win
    assert resolve(small) == small and resolve(c) == c
    assert resolve(Config(profile="small", rerank_max_length=64)).rerank_max_length == 64
    assert resolve(Config(search=SearchConfig(hnsw_ef=0, prefetch_limit=300))).search.hnsw_ef == 600


def test_resolution_profile_models_follow_their_encoder():
    from m3retriever.config.resolution import resolve

    local = resolve(Config(dense_model="/models/bge-m3"))
    assert local.sparse_model == "/models/bge-m3"  # one instance still serves both branches
    other = resolve(Config(dense_encoder="sentence-transformers"))
    assert other.dense_model is None and other.query_instruction is None  # the encoder's defaults
    assert other.sparse_model is None  # bge-m3's own default model
    assert resolve(Config(reranker="onnx-cross-encoder")).reranker_model is None
    assert resolve(Config(profile="small", dense_encoder="onnx-dense")).query_instruction is None
    assert resolve(Config(dense_encoder="")).dense_encoder == "none"


def test_resolution_of_the_lexical_branch():
    from m3retriever.config.resolution import resolve

    assert resolve(Config(lexical_encoder="hashing")).bm25 is True  # naming one turns it on
    assert resolve(Config(bm25=True)).lexical_encoder == "bm25"
    off = resolve(Config(profile="small", bm25=False))
    assert off.bm25 is False
    assert resolve(Config(profile="small", lexical_encoder="none")).bm25 is False
    assert resolve(Config(profile="small", bm25=False, lexical_encoder="hashing")).bm25 is False


def test_resolution_turns_rerank_off_without_a_reranker():
    from m3retriever.config.resolution import resolve

    assert resolve(Config(reranker="none")).search.rerank is False
    with pytest.raises(ConfigError, match="min_score applies to the calibrated rerank score"):
        resolve(Config(reranker="none", search=SearchConfig(min_score=0.5)))
    with pytest.raises(ConfigError, match="min_score applies"):
        resolve(Config(), rerank=False, min_score=0.5)
    with pytest.raises(ConfigError, match=r"unknown search option\(s\) \['topk'\]"):
        resolve(Config(), topk=3)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"dense_modle": "x"}, "profile 'odd' sets 'dense_modle', which is not a setting a profile can default"),
        ({"batch_size": 8}, "sets 'batch_size', which is not a setting a profile can default"),
        ({"search": {"top_k": 3}}, "sets 'search.top_k', which is not a setting"),
        ({"bm25": "maybe"}, "bm25 must be true or false"),
        ({"search": {"rrf_k": 0}}, "rrf_k must be between 1 and"),
    ],
)
def test_a_profile_is_checked_against_the_fields(monkeypatch, settings, message):
    from m3retriever.config.profiles import PROFILES, Profile
    from m3retriever.config.resolution import resolve

    monkeypatch.setitem(PROFILES, "odd", Profile("odd", "a broken profile", settings))
    with pytest.raises(ConfigError, match=message):
        resolve(Config(profile="odd"))


def test_builtin_profiles_name_only_settings():
    from m3retriever.config.profiles import PROFILES
    from m3retriever.config.resolution import resolve

    for name in PROFILES:
        resolve(Config(profile=name))  # raises on any unknown or mistyped default
