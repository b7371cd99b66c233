"""``add-branch`` rebuilds a collection around a new ``dense2`` vector: everything else the
collection holds must come through the rebuild as it was, on both backends.

The collection here is built with every setting that lives with it off its default: the ColBERT
multivectors, BM25 (length totals, per tenant too), a tenant field, an indexed field, index
settings (HNSW shape, scalar quantization, payloads on disk) and saved search defaults. The
branch is then added with the configuration the collection was built with, and with one that
names only the profile, models and new branch (everything else follows the collection, as a
``Retriever`` opening it would).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from m3retriever import Retriever, load_config
from m3retriever.errors import ConfigError
from m3retriever.maintenance.add_branch import BUILD_SUFFIX
from m3retriever.store.kept import length_stats, search_defaults, tenant_length_stats
from m3retriever.store.schema import DENSE2, MULTIVECTOR, CollectionSpec
from maintenance_calls import add_branch_config

TINY = {"reranker": "none", "device": "cpu", "max_length": 64}
# What the collection is built with beyond the profile and models.
BUILT_WITH: dict[str, Any] = {
    "multivector": True,
    "bm25": True,
    "tenant_field": "lang",
    "indexed_fields": ("topic",),
    "hnsw_m": 8,
    "hnsw_ef_construct": 40,
    "quantization": "scalar",
    "payload_on_disk": True,
}
QUERIES = ["capital of France", "loyal animals in the park", "vector database filters"]


@pytest.fixture(scope="module")
def tiny_st(tiny_bge_m3_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random encoder as a sentence-transformers folder: the new branch's model."""
    from sentence_transformers import SentenceTransformer

    out = tmp_path_factory.mktemp("tiny-st")
    SentenceTransformer(str(tiny_bge_m3_path), device="cpu").save(str(out))
    return out


def _searches(r: Retriever, n: int, **overrides: Any) -> list[list[tuple[str, float | None]]]:
    """Each query's hits rescored by MaxSim over every chunk: (id, multivector score)."""
    out = []
    for result in r.search_batch(
        QUERIES, top_k=n, rerank=False, multivector_rescore=True, multivector_depth=n + 8, **overrides
    ):
        assert len(result.hits) == n and all(h.scores.multivector is not None for h in result.hits)
        out.append([(h.id, h.scores.multivector) for h in result.hits])
    return out


def _state(r: Retriever) -> dict[str, Any]:
    """Everything kept with the collection beside its points."""
    store, name = r.store, r.collection
    meta = store.metadata(name)
    spec = store.stored_spec(name)
    assert isinstance(spec, CollectionSpec)
    return {
        "index": store.index_settings(name),
        "spec": {k: v for k, v in vars(spec).items() if k not in ("fingerprint", "dense2_dim", "dense2_distance")},
        "fingerprint": {k: v for k, v in spec.fingerprint.items() if k != DENSE2},
        "tenant_index": store.tenant_index(name, "lang"),
        "lengths": length_stats(store, name),
        "tenant_lengths": tenant_length_stats(store, name),
        "defaults": search_defaults(store, name),
        "built": meta.get("settings"),
    }


# Each backend once, each form of the configuration once (the two are independent: what
# follows the collection is resolved before the store is touched).
@pytest.mark.parametrize(("backend", "given"), [("edge", "followed"), ("memory", "as built")])
def test_add_branch_keeps_multivectors_and_every_collection_setting(
    backend: str, given: str, tiny_st: Path, tiny_settings: dict, corpus_docs: list[dict], tmp_path: Path
) -> None:
    client = None
    location = str(tmp_path / "edge")
    if backend == "memory":
        from qdrant_client import QdrantClient

        client, location = QdrantClient(":memory:"), ":memory:"
    base = {**tiny_settings, **TINY, "location": location}
    with Retriever(load_config(env={}, **base, **BUILT_WITH), client=client) as r:
        for lang in ("en", "de", "es"):  # scoped ingests keep each tenant's length totals
            with r.scoped(lang) as t:
                t.ingest([d for d in corpus_docs if d["metadata"]["lang"] == lang])
        r.save_search_defaults({"prefetch_limit": 40, "fusion": "dbsf"})
        colbert = {
            p.id: np.asarray(p.vectors[MULTIVECTOR], dtype=np.float32)
            for p in r.store.scroll(r.collection, with_vectors=True)
        }
        n = len(colbert)
        searched = _searches(r, n)
        before = _state(r)
    assert before["index"]["quantization"] == "scalar" and before["lengths"] and len(before["tenant_lengths"]) == 3
    assert before["built"] and before["defaults"] == {"prefetch_limit": 40, "fusion": "dbsf"}

    new_branch = {"dense2_encoder": "sentence-transformers", "dense2_model": str(tiny_st)}
    # An index setting asked for explicitly that the collection was not created with is
    # refused before anything is written (the state is compared below).
    kept = BUILT_WITH if given == "as built" else {"tenant_field": "lang"}
    with pytest.raises(ConfigError, match="hnsw_m: created with 8, configured 32"):
        add_branch_config(load_config(env={}, **base, **{**kept, "hnsw_m": 32}, **new_branch), client)

    cfg = load_config(env={}, **base, **kept, **new_branch)
    report = add_branch_config(cfg, client, batch=5)
    assert report.encoded == report.copied == n

    with Retriever(cfg, client=client) as r:
        assert not r.store.has_collection(r.collection + BUILD_SUFFIX)
        after = {p.id: p.vectors for p in r.store.scroll(r.collection, with_vectors=True)}
        assert after.keys() == colbert.keys()
        for pid, vectors in after.items():
            assert len(vectors[DENSE2]) == 32
            mine = np.asarray(vectors[MULTIVECTOR], dtype=np.float32)
            assert mine.shape == colbert[pid].shape and mine.tobytes() == colbert[pid].tobytes(), pid
        assert _state(r) == before
        # Without the new branch the searches are the ones before, hit for hit; with it the
        # fused candidates are still every chunk, each with the MaxSim score it had.
        assert _searches(r, n, dense2_weight=0) == searched
        for now, then in zip(_searches(r, n), searched):
            assert dict(now) == dict(then)
