"""Context for an answer: ``Retriever.get`` reads a whole stored document back in order, and the
``expand`` search option merges each hit with its neighbouring chunks (overlap removed, spans
kept). Real embedded Qdrant and the tiny models; the merging rules also under hypothesis with the
real chunker."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m3retriever import ConfigError, InputError
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


# -- expand -------------------------------------------------------------------------------


class _Counting:
    """Counts the store reads made through it (the real store does the work)."""

    def __init__(self, store, monkeypatch) -> None:
        self.calls: list[str] = []
        for name in ("retrieve", "scroll"):
            real = getattr(store, name)

            def counted(*args, _real=real, _name=name, **kwargs):
                self.calls.append(_name)
                return _real(*args, **kwargs)

            monkeypatch.setattr(store, name, counted)


def _expected(doc, hit, n: int) -> tuple[str, int, int]:
    """The passage of ``hit`` from the document read whole: its neighbours' span, sliced."""
    spans = {s.chunk_index: s for s in doc.chunks}
    first = spans[max(0, hit.chunk_index - n)]
    last = spans[min(max(spans), hit.chunk_index + n)]
    own = spans[hit.chunk_index]
    return doc.text[first.start : last.end], own.start - first.start, own.end - first.start


def _check_passages(r, hits, n: int, texts: dict[str, str]) -> None:
    assert hits
    for hit in hits:
        c = hit.context
        assert c is not None
        assert c.text[c.start : c.end] == hit.text
        doc = r.get(hit.doc_id)
        assert doc.text == texts[hit.doc_id]
        assert (c.text, c.start, c.end) == _expected(doc, hit, n)
        assert [s.chunk_index for s in c.chunks] == list(
            range(max(0, hit.chunk_index - n), min(len(doc.chunks) - 1, hit.chunk_index + n) + 1)
        )
        assert all(c.text[s.start : s.end] for s in c.chunks)


SECOND = " ".join(f"Paragraph {i} is about lakes {i % 4}, roads {i % 6} and towns." for i in range(30))


def test_expand_gives_each_hit_its_neighbours_in_one_read(make_retriever, monkeypatch) -> None:
    r = make_retriever(reranker="none")
    texts = {"long": LONG, "second": SECOND, "short": "A short note about rivers."}
    r.add_texts(list(texts.values()), ids=list(texts))
    plain = r.search("river hill topic", top_k=10)
    assert all(h.context is None for h in plain) and plain[0].as_dict()["context"] is None
    counting = _Counting(r.store, monkeypatch)
    expanded = r.search("river hill topic", top_k=10, expand=2)
    assert counting.calls == ["retrieve"]  # one batched read for all hits
    monkeypatch.undo()
    assert [(h.id, h.score) for h in expanded] == [(h.id, h.score) for h in plain]  # the ranking is untouched
    _check_passages(r, expanded.hits, 2, texts)
    assert {h.chunk_index for h in expanded if h.doc_id == "long"} - {0}  # neighbours on both sides
    short = next((h for h in r.search("short note rivers", top_k=20, expand=3) if h.doc_id == "short"), None)
    assert short is not None and short.context.text == texts["short"] and short.context.chunks == ((0, 0, 26),)
    data = expanded[0].as_dict()["context"]
    assert data["text"][data["start"] : data["end"]] == expanded[0].text
    batch = r.search_batch(["river hill", "lakes roads towns"], top_k=5, expand=1)
    for result in batch:
        _check_passages(r, result.hits, 1, texts)


def test_expand_without_offsets_and_with_foreign_point_ids(make_retriever, monkeypatch) -> None:
    r = make_retriever(reranker="none")
    r.add_texts([LONG, SECOND], ids=["long", "second"])
    _strip_offsets(r, "long")
    # "second" rewritten under point ids of another writer: read by filter, still exact
    records = [x for x in r.store.scroll(r.collection, with_vectors=True) if x.payload["doc_id"] == "second"]
    r.store.delete_ids(r.collection, [x.id for x in records])
    moved = [StoredPoint(id=str(uuid.uuid4()), payload=x.payload, vectors=x.vectors) for x in records]
    r.store.upsert(r.collection, moved)
    hits = r.search("lakes roads river hill", top_k=12, expand=2).hits
    assert {h.doc_id for h in hits} == {"long", "second"}
    _check_passages(r, hits, 2, {"long": LONG, "second": SECOND})


def test_expand_keeps_to_the_tenant(make_retriever) -> None:
    r = make_retriever(reranker="none", tenant_field="tenant")
    a, b = r.scoped("a"), r.scoped("b")
    a.add_texts([LONG], ids=["same"])
    b.add_texts([SECOND], ids=["same"])
    r.ingest([{"doc_id": "open", "text": LONG, "metadata": {"tenant": "c"}}])  # unscoped ingest: ids without tenant
    for scoped, text in ((a, LONG), (b, SECOND)):
        hits = scoped.search("river hill lakes roads", top_k=8, expand=3).hits
        assert {h.doc_id for h in hits} == {"same"}
        _check_passages(scoped, hits, 3, {"same": text})
    c_hits = r.scoped("c").search("river hill", top_k=5, expand=1).hits
    _check_passages(r.scoped("c"), c_hits, 1, {"open": LONG})
    for hit in r.search("river hill lakes roads", top_k=20, expand=2):  # unscoped: each its own tenant's
        own = {"a": LONG, "b": SECOND, "c": LONG}[hit.metadata["tenant"]]
        assert hit.context.text in own


@pytest.mark.parametrize("bad", [-1, 21, "2", 1.5, True])
def test_expand_is_range_checked(make_retriever, bad) -> None:
    r = make_retriever(reranker="none")
    with pytest.raises(ConfigError, match="search.expand"):
        r.search("anything", expand=bad)


def test_cli_search_expand(config_file, tmp_path, capsys) -> None:
    from m3retriever.cli import main

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "long.txt").write_text(LONG, encoding="utf-8")
    assert main(["ingest", str(corpus), "--config", str(config_file), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["search", "river hill", "--config", str(config_file), "-k", "2", "--expand", "1", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert len(hits) == 2
    for h in hits:
        c = h["context"]
        assert c["text"][c["start"] : c["end"]] == h["text"] and c["text"] in LONG
    assert main(["search", "river hill", "--config", str(config_file), "-k", "1", "--expand", "1"]) == 0
    out = capsys.readouterr().out
    assert "#1 long.txt: chunks" in out
    passage = out.split("#1 long.txt: chunks", 1)[1].split("\n", 1)[1]
    assert " ".join(passage.split()) in " ".join(LONG.split())
