"""Fine-tuning: pairs, hard-negative mining, training, the manifest, the query-generator hook,
the extra dense branch ``dense2`` and adding it to an existing collection (tiny models)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import CORPUS
from m3retriever import Retriever, hookimpl, load_config, plugins
from m3retriever.cli import main
from m3retriever.errors import ConfigError, FingerprintMismatchError, InputError, PluginError
from m3retriever.finetune import MANIFEST_NAME, Recipe, TrainingData, finetune, read_manifest
from m3retriever.finetune.mining import mine_examples
from m3retriever.finetune.pairs import collection_chunks, split_heldout
from m3retriever.finetune.trainer import batches
from m3retriever.maintenance.add_branch import BUILD_SUFFIX, _build
from m3retriever.store import open_store
from m3retriever.store.kept import length_stats, search_defaults
from maintenance_calls import add_branch_config

LABELS = {
    "vector database payload filters": ["qdrant"],
    "capital of France on the Seine": ["paris"],
    "merge ranked lists by reciprocal rank": ["rrf"],
    "loyal animals walking in the park": ["dog"],
    "shares falling after an interest rate decision": ["market"],
    "cat watching birds in the garden": ["cat"],
    "term frequency and inverse document frequency": ["bm25"],
    "cross-encoder reads query and passage together": ["rerank"],
}
TINY = {"reranker": "none", "device": "cpu", "max_length": 64}
FAST = Recipe(batch_size=4, epochs=1, lr=1e-3, heldout=0.25, max_length=64, skip=0)


@pytest.fixture(scope="module")
def tiny_st(tiny_bge_m3_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random encoder as a sentence-transformers folder (mean pooling)."""
    from sentence_transformers import SentenceTransformer

    out = tmp_path_factory.mktemp("tiny-st")
    SentenceTransformer(str(tiny_bge_m3_path), device="cpu").save(str(out))
    return out


@pytest.fixture
def pairs_file(tmp_path: Path) -> Path:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"query": q, "relevant": d}) + "\n" for q, d in LABELS.items()))
    return path


@pytest.fixture(scope="module")
def filled(tiny_settings: dict, corpus_docs, tmp_path_factory: pytest.TempPathFactory):
    """The test corpus in a tiny-model collection, shared by the tests that only read it."""
    r = Retriever(load_config(env={}, location=str(tmp_path_factory.mktemp("filled")), **{**tiny_settings, **TINY}))
    r.ingest(corpus_docs)
    yield r
    r.close()


@pytest.fixture(scope="module")
def trained(tiny_st: Path, tiny_settings: dict, corpus_docs, tmp_path_factory: pytest.TempPathFactory):
    """One fine-tuning run on the tiny model, shared by the tests that read its output."""
    root = tmp_path_factory.mktemp("trained")
    pairs = root / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"query": q, "relevant": d}) + "\n" for q, d in LABELS.items()))
    with Retriever(load_config(env={}, location=str(root / "store"), **{**tiny_settings, **TINY})) as r:
        r.ingest(corpus_docs)
        report = finetune(r, root / "model", pairs=pairs, base_model=str(tiny_st), recipe=FAST)
    return report


def _same_vectors(after: dict, before: dict) -> None:
    """Every vector but dense2 as it was: sparse ones exactly; dense ones to float32 rounding
    (qdrant-client re-normalises a cosine vector it is given, even a unit one; Edge stores it
    bit for bit)."""
    assert set(after) - {"dense2"} == set(before)
    for name, v in before.items():
        if isinstance(v, list):
            assert np.allclose(after[name], v, rtol=0, atol=1e-6), name
        else:
            assert after[name] == v, name


def _data(labels: dict[str, list[str]]) -> TrainingData:
    return TrainingData("t", "jsonl", {f"q{i}": q for i, q in enumerate(labels)}, {f"q{i}": dict.fromkeys(d, 1) for i, d in enumerate(labels.values())})


def test_mined_negatives_come_from_the_fused_candidates_and_are_never_relevant(filled):
    data = _data(LABELS)
    chunks = collection_chunks(filled.store.scroll(filled.collection))
    examples = mine_examples(filled, data, chunks, negatives=3, depth=8, skip=1)
    assert len(examples) == data.n_pairs
    for ex in examples:
        relevant = set(data.qrels[ex.query_id])
        assert ex.positive_doc in relevant and ex.positive in chunks[ex.positive_doc]
        assert len(ex.negatives) == 3 and not relevant & set(ex.negative_docs)
        fused = filled.search(ex.query, top_k=8, rerank=False)
        order = list(dict.fromkeys(h.doc_id for h in fused if h.doc_id not in relevant))
        assert list(ex.negative_docs) == order[1:4]  # the fused order, the top one skipped
        assert all(n in chunks[d] for n, d in zip(ex.negatives, ex.negative_docs))


def test_batches_never_repeat_a_passage(filled):
    chunks = collection_chunks(filled.store.scroll(filled.collection))
    examples = mine_examples(filled, _data(LABELS), chunks, negatives=2, depth=6)
    import random

    cut = batches(examples, 4, random.Random(0))
    assert sorted(e.query_id for b in cut for e in b) == sorted(e.query_id for e in examples)
    for b in cut:
        texts = [t for e in b for t in (e.query, e.positive, *e.negatives)]
        assert len(b) <= 4 and len(texts) == len(set(texts))


def test_heldout_pool_is_the_fused_candidates_and_the_relevant_documents(filled):
    from m3retriever.finetune.heldout import heldout_pool

    data = _data(LABELS)
    chunks = collection_chunks(filled.store.scroll(filled.collection))
    assert heldout_pool(filled, data, chunks, 0) == chunks
    pool = heldout_pool(filled, data, chunks, 2)
    expected = {d for q in data.qrels.values() for d in q}
    expected |= {h.doc_id for q in data.queries.values() for h in filled.search(q, top_k=2, rerank=False)}
    assert set(pool) == expected and all(pool[d] == chunks[d] for d in pool)


def test_heldout_split_is_seeded_and_disjoint():
    data = _data(LABELS)
    train, held = split_heldout(data, 0.25, 7)
    assert (train.queries, held.queries) == tuple(x.queries for x in split_heldout(data, 0.25, 7))
    assert len(held.queries) == 2 and not set(train.queries) & set(held.queries)
    assert set(train.queries) | set(held.queries) == set(data.queries)


def test_training_changes_the_model_and_writes_the_manifest(trained, tiny_st: Path):
    from sentence_transformers import SentenceTransformer

    m = read_manifest(trained.path)
    assert m["base_model"] == str(tiny_st) and m["recipe"]["loss"] == "mnrl"
    assert m["data"]["pairs"] == len(LABELS) and m["data"]["heldout_queries"] == 2
    assert m["data"]["qrels_sha256"] == _data(LABELS).qrels_sha256() or len(m["data"]["qrels_sha256"]) == 64
    assert m["training"]["steps"] >= 1 and set(m["heldout"]["before"]) == {"ndcg@10", "recall@100"}
    assert set(m["heldout"]["after"]) == {"ndcg@10", "recall@100"} and m["seconds"] > 0
    texts = ["capital of France", "stock market"]
    base = SentenceTransformer(str(tiny_st), device="cpu").encode(texts)
    tuned = SentenceTransformer(str(trained.path), device="cpu").encode(texts)
    assert not np.allclose(base, tuned, atol=1e-4)
    assert not (trained.path.parent / (trained.path.name + ".partial")).exists()


def test_the_model_serves_as_the_dense_encoder(trained, tmp_path, corpus_docs):
    cfg = load_config(env={}, location=str(tmp_path / "s"), profile="small", dense_encoder="sentence-transformers",
                      dense_model=str(trained.path), sparse_encoder="none", **TINY)
    with Retriever(cfg) as r:
        r.ingest(corpus_docs)
        hits = r.search("capital of France", top_k=3)
        assert len(hits.hits) == 3 and hits.hits[0].scores.dense is not None
        assert r.info()["encoders"]["dense"]["model"] == str(trained.path)


@pytest.mark.parametrize("backend", ["edge", "memory"])
def test_add_branch_encodes_only_dense2_and_keeps_everything_else(backend, trained, tiny_settings, tmp_path, corpus_docs):
    client = None
    location = str(tmp_path / "edge")
    if backend == "memory":
        from qdrant_client import QdrantClient

        client, location = QdrantClient(":memory:"), ":memory:"
    base = {**tiny_settings, **TINY, "location": location}
    with Retriever(load_config(env={}, **base), client=client) as r:
        r.ingest(corpus_docs)
        r.save_search_defaults({"prefetch_limit": 40})
        before = {p.id: p for p in r.store.scroll(r.collection, with_vectors=True)}
        lengths = length_stats(r.store, r.collection)
    cfg = load_config(env={}, dense2_encoder="sentence-transformers", dense2_model=str(trained.path), **base)
    report = add_branch_config(cfg, client)
    assert report.encoded == report.copied == len(before)
    with Retriever(cfg, client=client) as r:
        after = {p.id: p for p in r.store.scroll(r.collection, with_vectors=True)}
        assert after.keys() == before.keys()
        for pid, old in before.items():
            assert dict(after[pid].payload) == dict(old.payload)
            _same_vectors(after[pid].vectors, old.vectors)
            assert len(after[pid].vectors["dense2"]) == 32
        assert length_stats(r.store, r.collection) == lengths
        assert search_defaults(r.store, r.collection) == {"prefetch_limit": 40}
        assert not r.store.has_collection(r.collection + BUILD_SUFFIX)
        hit = r.search("capital of France", top_k=12).hits
        assert any(h.scores.dense2_rank is not None for h in hit)
        assert all(h.scores.dense2_rank is None for h in r.search("capital of France", top_k=12, dense2_weight=0).hits)
        vec = r.encoders.encode_query(["capital of France"]).dense2
        assert vec is not None and vec.shape == (1, 32)


def test_an_interrupted_build_or_swap_is_finished_by_the_next_run(trained, tiny_settings, tmp_path, corpus_docs):
    from dataclasses import replace

    from m3retriever.components import encoders_for
    from m3retriever.config.resolution import resolve
    from m3retriever.retriever import collection_spec

    base = {**tiny_settings, **TINY, "location": str(tmp_path / "s")}
    with Retriever(load_config(env={}, **base)) as r:
        r.ingest(corpus_docs)
        before = {p.id: (dict(p.payload), p.vectors) for p in r.store.scroll(r.collection, with_vectors=True)}
    cfg = load_config(env={}, dense2_encoder="sentence-transformers", dense2_model=str(trained.path), **base)
    settings = resolve(cfg)  # as the retriever describes it: settings resolved
    encoders = encoders_for(settings)
    spec = collection_spec(encoders, settings)
    build = spec.name + BUILD_SUFFIX
    # A build that stopped half-way (still marked as building): the original is intact and the
    # next run starts the build over.
    store = open_store(cfg.location)
    store.ensure_collection(replace(spec, name=build, fingerprint={**spec.fingerprint, "building": True}))
    store.close()
    assert add_branch_config(cfg).encoded == len(before)
    # A build that completed but was not swapped in yet (killed between the two steps): the
    # next run swaps it in without running a model.
    base = {**base, "location": str(tmp_path / "s2")}
    with Retriever(load_config(env={}, **base)) as r:
        r.ingest(corpus_docs)
    cfg = load_config(env={}, dense2_encoder="sentence-transformers", dense2_model=str(trained.path), **base)
    store = open_store(cfg.location)
    assert _build(store, encoders, spec, build, 5) == len(before)
    store.close()
    report = add_branch_config(cfg)
    assert (report.encoded, report.copied) == (0, len(before))
    with Retriever(cfg) as r:
        after = {p.id: (dict(p.payload), p.vectors) for p in r.store.scroll(r.collection, with_vectors=True)}
        assert not r.store.has_collection(build)
    assert after.keys() == before.keys()
    # On a server, a swap cut short after the original was dropped: whatever opens the
    # collection next (here a retriever, not add-branch) finishes it from the copy marked as
    # replacing it, without running a model.
    from qdrant_client import QdrantClient

    from m3retriever.store.schema import REPLACES_KEY

    client = QdrantClient(location=":memory:")
    with Retriever(load_config(env={}, **base), client=client) as r:
        r.ingest(corpus_docs)
        assert _build(r.store, encoders, spec, build, 5) == len(before)
        r.store.set_metadata(build, {REPLACES_KEY: spec.name})
        r.store.drop_collection(spec.name)
    with Retriever(cfg, client=client) as r:
        after = {p.id: (dict(p.payload), p.vectors) for p in r.store.scroll(r.collection, with_vectors=True)}
        assert not r.store.has_collection(build) and "dense2" in r.store.collection_fingerprint(r.collection)
    assert after.keys() == before.keys()
    for pid, (payload, vectors) in before.items():
        assert after[pid][0] == payload
        _same_vectors(after[pid][1], vectors)


def test_an_ingest_with_dense2_writes_and_searches_the_branch(make_retriever, tiny_st, corpus_docs):
    r = make_retriever(dense2_encoder="sentence-transformers", dense2_model=str(tiny_st), **TINY)
    r.ingest(corpus_docs)
    stored = list(r.store.scroll(r.collection, with_vectors=True))
    assert stored and all(len(p.vectors["dense2"]) == 32 for p in stored)
    hits = r.search("capital of France", top_k=len(CORPUS), rerank=False).hits
    ranks = sorted(h.scores.dense2_rank for h in hits if h.scores.dense2_rank is not None)
    assert ranks == list(range(1, len(ranks) + 1)) and ranks
    assert r.info()["encoders"]["dense2"]["name"] == "sentence-transformers"
    from m3retriever.evaluation.runner import available_stages, evaluate

    assert "dense2" in available_stages(r)
    report = evaluate(r, {"q": "capital of France"}, {"q": {"paris": 1}}, stages=["dense", "dense2"])
    alone = sorted(report.runs["dense2"]["q"].items(), key=lambda kv: -kv[1])
    best = min((h for h in hits if h.scores.dense2_rank is not None), key=lambda h: h.scores.dense2_rank)
    assert alone[0][0] == best.doc_id  # the stage is the dense2 branch alone
    # The MCP tool output carries the branch's score and rank too.
    import anyio
    from mcp import Client

    from m3retriever_mcp import create_server

    async def call():  # type: ignore[no-untyped-def]
        with anyio.fail_after(60):
            async with Client(create_server(r).server) as client:
                return await client.call_tool("search", {"query": "capital of France", "top_k": 3})

    result = anyio.run(call)
    assert not result.is_error
    scores = [h["scores"] for h in result.structured_content["hits"]]
    assert any(isinstance(s["dense2"], float) and s["dense2_rank"] >= 1 for s in scores)


def test_dense2_refused_until_added_with_a_hint(trained, tiny_settings, corpus_docs, tmp_path):
    base = {**tiny_settings, **TINY, "location": str(tmp_path / "s")}
    with Retriever(load_config(env={}, **base)) as r:
        r.ingest(corpus_docs[:2])
    cfg = load_config(env={}, dense2_encoder="sentence-transformers", dense2_model=str(trained.path), **base)
    with pytest.raises(FingerprintMismatchError, match="dense2.model.*m3retriever collection add-branch"):
        Retriever(cfg)


def test_bad_pairs_are_clear_errors(filled, tiny_st, tmp_path):
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text(json.dumps({"query": "q", "relevant": ["paris", "atlantis"]}) + "\n")
    with pytest.raises(InputError, match="'atlantis'.*Ingest those documents"):
        finetune(filled, tmp_path / "m", pairs=unknown, base_model=str(tiny_st), recipe=FAST)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(InputError, match="no labelled queries"):
        finetune(filled, tmp_path / "m", pairs=empty, base_model=str(tiny_st), recipe=FAST)
    with pytest.raises(InputError, match="not both or neither"):
        finetune(filled, tmp_path / "m", base_model=str(tiny_st), recipe=FAST)
    (tmp_path / "exists").mkdir()
    with pytest.raises(InputError, match="already exists"):
        finetune(filled, tmp_path / "exists", pairs=unknown, recipe=FAST)
    with pytest.raises(ConfigError, match="batch_size"):
        Recipe(batch_size=1)
    assert not (tmp_path / "m").exists()


def test_a_missing_collection_is_a_clear_error(make_retriever, tiny_st, pairs_file, tmp_path):
    r = make_retriever(**TINY)
    with pytest.raises(InputError, match="does not exist or is empty.*ingest"):
        finetune(r, tmp_path / "m", pairs=pairs_file, base_model=str(tiny_st), recipe=FAST)
    cfg = load_config(env={}, location=str(tmp_path / "other"), dense2_encoder="sentence-transformers",
                      dense2_model=str(tiny_st), **TINY, profile="small", dense_encoder="none", sparse_encoder="none")
    with pytest.raises(InputError, match="no collection 'm3retriever' at .*ingest documents first"):
        add_branch_config(cfg)
    assert not (tmp_path / "other").exists()  # nothing created


class FirstSentence:
    """A deterministic query generator plugin: each chunk's first words are its query."""

    @hookimpl
    def register_query_generators(self, register):
        register("first-words", lambda words=4: lambda items: [(" ".join(t.split()[:words]), d) for d, t in items])
        register("nonsense", lambda: lambda items: [("a query", "no-such-doc")])


@pytest.fixture
def generator_plugin():
    pm = plugins.get_plugin_manager()
    plugin = FirstSentence()
    pm.register(plugin, name="first-words-test")
    yield
    pm.unregister(plugin)


def test_register_query_generators_a_plugin_makes_the_pairs(generator_plugin, filled, tiny_st, tmp_path):
    assert "first-words" in plugins.query_generator_factories()
    report = finetune(filled, tmp_path / "m", generate="first-words", generator_options={"words": 5},
                      base_model=str(tiny_st), recipe=FAST)
    m = report.manifest
    assert m["data"]["name"] == "generator:first-words" and m["data"]["pairs"] == len(CORPUS)
    with pytest.raises(InputError, match="no-such-doc"):
        finetune(filled, tmp_path / "n", generate="nonsense", base_model=str(tiny_st), recipe=FAST)
    with pytest.raises(PluginError, match="registered query generators"):
        finetune(filled, tmp_path / "n", generate="llm", base_model=str(tiny_st), recipe=FAST)


def test_cli_finetune_and_add_branch(config_file, corpus_docs, tiny_st, pairs_file, tmp_path, capsys):
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"id": d["doc_id"], "text": d["text"]}) + "\n" for d in corpus_docs))
    assert main(["ingest", str(src), "--config", str(config_file)]) == 0
    out = tmp_path / "model"
    args = ["model", "finetune", str(pairs_file), "--config", str(config_file), "--out", str(out), "--base-model", str(tiny_st),
            "--batch-size", "4", "--epochs", "1", "--max-length", "64"]
    assert main(args) == 0
    assert (out / MANIFEST_NAME).is_file() and "wrote" in capsys.readouterr().out
    assert main(args) == 2 and "error: " in capsys.readouterr().err  # --out exists
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"query": "q", "relevant": ["atlantis"]}) + "\n")
    assert main(["model", "finetune", str(bad), "--config", str(config_file), "--out", str(tmp_path / "x")]) == 2
    assert "'atlantis'" in capsys.readouterr().err
    assert main(["model", "finetune", "--config", str(config_file), "--out", str(tmp_path / "x")]) == 2
    assert main(["collection", "add-branch", "--config", str(config_file)]) == 2
    assert "dense2_encoder" in capsys.readouterr().err
    assert main(["collection", "add-branch", "--config", str(config_file), "--dense2-model", str(out)]) == 0
    assert "dense2 added" in capsys.readouterr().out
