"""Context for an answer: ``Retriever.get`` reads a whole stored document back in order, and the
``expand`` search option merges each hit with its neighbouring chunks (overlap removed, spans
kept). Real embedded Qdrant and the tiny models; the merging rules also under hypothesis with the
real chunker."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m3retriever import InputError
from m3retriever.context import StoredChunk, longest_overlap, merge_chunks
from m3retriever.ingest.chunking import ChunkingConfig, chunk_text
from m3retriever.store.schema import StoredPoint
from m3retriever.types import GAP, ChunkSpan

LONG = " ".join(f"Sentence {i} tells of topic {i % 7}, of river {i % 5} and hill {i % 3}." for i in range(40))
"""Many chunks at the tiny settings (48 tokens, 8 of overlap)."""


def _words(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(r"\S+", text)]


def _stored(chunks, offsets: bool = True) -> list[StoredChunk]:
    return [
        StoredChunk("d", c.chunk_index, c.text, c.start if offsets else None, c.end if offsets else None)
        for c in chunks
    ]


def _strip_offsets(r, doc_id: str) -> None:
    """Rewrite ``doc_id``'s chunks as an older writer stored them: no ``start``/``end``."""
    records = [x for x in r.store.scroll(r.collection, with_vectors=True) if x.payload["doc_id"] == doc_id]
    points = [
        StoredPoint(
            id=x.id, payload={k: v for k, v in x.payload.items() if k not in ("start", "end")}, vectors=x.vectors
        )
        for x in records
    ]
    r.store.upsert(r.collection, points)
    assert all("start" not in x.payload for x in r.store.scroll(r.collection) if x.payload["doc_id"] == doc_id)


# -- merging, with the real chunker -------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    words=st.lists(st.sampled_from(["a", "ab", "b", "a,", "\n", "ba."]), min_size=1, max_size=120),
    max_tokens=st.integers(8, 24),
    overlap_share=st.floats(0, 0.5),
)
def test_merged_chunks_are_the_text_exactly_with_offsets(words, max_tokens, overlap_share) -> None:
    text = " ".join(words)
    config = ChunkingConfig(max_tokens, int(overlap_share * (max_tokens // 2)))
    chunks = chunk_text("d", text, _words, config)
    merged, spans, consecutive = merge_chunks(_stored(chunks))
    assert consecutive
    if chunks:  # repetitive text: only the offsets make this exact
        assert merged == text
        assert spans == tuple(ChunkSpan(c.chunk_index, c.start, c.end) for c in chunks)
        assert all(merged[s.start : s.end] == c.text for s, c in zip(spans, chunks))


@settings(max_examples=150, deadline=None)
@given(
    n_words=st.integers(1, 150),
    seps=st.lists(st.sampled_from([" ", "  ", "\n", ", "]), min_size=1, max_size=5),
    max_tokens=st.integers(8, 24),
    overlap_share=st.floats(0, 0.5),
)
def test_merged_chunks_without_offsets_are_the_text(n_words, seps, max_tokens, overlap_share) -> None:
    text = "".join(f"w{i}{seps[i % len(seps)]}" for i in range(n_words)).rstrip()
    chunks = chunk_text("d", text, _words, ChunkingConfig(max_tokens, int(overlap_share * (max_tokens // 2))))
    merged, spans, _ = merge_chunks(_stored(chunks, offsets=False))
    assert merged == text
    assert all(merged[s.start : s.end] == c.text for s, c in zip(spans, chunks))


def test_offsets_that_disagree_with_the_texts_fall_back_to_matching() -> None:
    a = StoredChunk("d", 0, "one two three", 0, 13)
    b = StoredChunk("d", 1, "three four", 2, 12)  # wrong offsets: they would cut "th"
    assert merge_chunks([a, b])[0] == "one two three four"


def test_longest_overlap_leaves_the_next_chunk_a_character() -> None:
    assert longest_overlap("abc", "abc") == 0
    assert longest_overlap("aaa", "aaa") == 2
    assert longest_overlap("x abc", "abc d") == 3
    assert longest_overlap("", "abc") == 0


def test_a_missing_chunk_leaves_a_gap() -> None:
    chunks = chunk_text("d", LONG, _words, ChunkingConfig(8, 2))
    kept = [c for c in chunks if c.chunk_index != 2]
    merged, spans, consecutive = merge_chunks(_stored(kept))
    assert not consecutive and GAP in merged
    assert [s.chunk_index for s in spans] == [c.chunk_index for c in kept]
    assert all(merged[s.start : s.end] == c.text for s, c in zip(spans, kept))


# -- Retriever.get ------------------------------------------------------------------------


def test_get_returns_the_whole_document_in_order(make_retriever) -> None:
    r = make_retriever(reranker="none")
    r.ingest([{"doc_id": "long", "text": LONG, "metadata": {"lang": "en"}, "source": "test://long"}])
    r.add_texts(["A short note."], ids=["short"])
    doc = r.get("long")
    assert doc is not None and doc.complete
    assert len(doc.chunks) > 3
    assert doc.text == LONG
    assert [s.chunk_index for s in doc.chunks] == list(range(len(doc.chunks)))
    assert doc.chunks[0].start == 0 and doc.chunks[-1].end == len(LONG)
    assert doc.metadata == {"lang": "en"} and doc.source == "test://long"
    assert doc.as_document().text == LONG and doc.as_dict()["chunks"][0] == [0, 0, doc.chunks[0].end]
    short = r.get("short")
    assert short is not None and short.text == "A short note." and len(short.chunks) == 1


def test_get_of_an_unknown_or_invalid_id(make_retriever, tmp_path) -> None:
    r = make_retriever(reranker="none")
    assert r.get("nothing-yet") is None  # no collection
    r.add_texts(["A short note."], ids=["short"])
    assert r.get("other") is None
    for bad in ("", "  ", 3, None):
        with pytest.raises(InputError, match="doc_id"):
            r.get(bad)  # type: ignore[arg-type]


def test_get_of_a_collection_written_without_offsets(make_retriever) -> None:
    r = make_retriever(reranker="none")
    r.add_texts([LONG], ids=["long"])
    with_offsets = r.get("long")
    _strip_offsets(r, "long")
    doc = r.get("long")
    assert doc is not None and doc.complete
    assert doc.text == LONG
    assert doc.chunks == with_offsets.chunks  # type: ignore[union-attr]


def test_get_skips_stale_chunks_of_an_earlier_version(make_retriever) -> None:
    r = make_retriever(reranker="none")
    r.add_texts([LONG], ids=["long"])
    n = r.get("long").chunks[-1].chunk_index + 1  # type: ignore[union-attr]
    last = next(x for x in r.store.scroll(r.collection, with_vectors=True) if x.payload["chunk_index"] == n - 1)
    stale = {**last.payload, "chunk_index": n, "content_hash": "older", "text": " stale words"}
    r.store.upsert(
        r.collection, [StoredPoint(id="00000000-0000-0000-0000-000000000001", payload=stale, vectors=last.vectors)]
    )
    doc = r.get("long")
    assert doc is not None and doc.text == LONG and doc.complete


def test_get_keeps_to_the_tenant(make_retriever) -> None:
    r = make_retriever(reranker="none", tenant_field="tenant")
    a, b = r.scoped("a"), r.scoped("b")
    a.add_texts([LONG], ids=["same"])
    b.add_texts(["Tenant b's own document."], ids=["same"])
    b.add_texts(["Only b has this one."], ids=["b-only"])
    assert a.get("same").text == LONG  # type: ignore[union-attr]
    assert b.get("same").text == "Tenant b's own document."  # type: ignore[union-attr]
    assert a.get("b-only") is None
    assert r.scoped("c").get("same") is None
    assert r.get("b-only").text == "Only b has this one."  # type: ignore[union-attr]
    with pytest.raises(InputError, match="several tenants"):
        r.get("same")
