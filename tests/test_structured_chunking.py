"""Structure-aware chunking: chunks cut at headings first and by tokens within a section, code
blocks kept whole, each chunk with its heading path (and PDF pages); contextual chunk headers
in front of what the encoders read (never of the stored text), recorded with the collection."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from m3retriever.errors import FingerprintMismatchError, InputError
from m3retriever.ingest.chunking import ChunkingConfig, chunk_text
from m3retriever.ingest.headers import chunking_for, header_path, stored_encoder_text
from m3retriever.readers.text import markdown_sections
from m3retriever.types import Document, Section
from test_readers import make_pdf


def words(text: str) -> list[tuple[int, int]]:
    """A tokenizer: every run of non-space characters is a token."""
    return [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]


def para(word: str, n: int) -> str:
    return " ".join(f"{word}{i}" for i in range(n))


def chunks_of(text: str, max_tokens: int = 40, overlap: int = 8):
    return chunk_text("d", text, words, ChunkingConfig(max_tokens, overlap), markdown_sections(text))


GUIDE = (
    "# Guide\n\n"
    "## Install\n\n" + para("inst", 30) + "\n\n"
    "## Tutorial\n\n" + para("tut", 5) + "\n\n"
    "### Query Parameters\n\n" + para("qp", 6) + "\n\n"
    "#### Optional parameters\n\n" + para("opt", 60) + "\n"
)
PATH = ("Guide", "Tutorial", "Query Parameters", "Optional parameters")


def test_chunks_are_cut_at_headings_and_record_their_heading_path():
    chunks = chunks_of(GUIDE)
    for c in chunks:
        assert GUIDE[c.start : c.end] == c.text
    # the title heading joins the Install section (32 tokens), which does not run into the
    # Tutorial (the top-level sections are the ## ones: # occurs once)
    assert chunks[0].text.startswith("# Guide") and "## Install" in chunks[0].text
    assert "Tutorial" not in chunks[0].text and chunks[0].headings == ("Guide",)
    # small subsections under one top-level heading share a chunk (their common path) ...
    assert chunks[1].text.startswith("## Tutorial") and "### Query Parameters" in chunks[1].text
    assert chunks[1].headings == ("Guide", "Tutorial")
    # ... and a section longer than the budget is cut into windows that keep its full path
    long = chunks[2:]
    assert len(long) == 2 and all(c.headings == PATH and "opt" in c.text for c in long)
    # without the structure, the same text is cut by tokens alone, across headings
    plain = chunk_text("d", GUIDE, words, ChunkingConfig(40, 8))
    assert "## Tutorial" in plain[0].text and plain[0].headings == ()


def test_tiny_top_level_sections_share_a_chunk():
    text = "# A\n\none two\n\n# B\n\nthree four\n\n# C\n\n" + para("c", 50)
    chunks = chunks_of(text)
    assert chunks[0].text.startswith("# A") and "# B" in chunks[0].text  # 4 + 4 tokens: tiny
    assert chunks[0].headings == ()  # the path the merged sections share


def test_a_code_block_that_fits_is_kept_whole():
    code = "```\n" + "\n".join(f"line{i} = {i}" for i in range(8)) + "\n```"  # 26 tokens
    text = "# Guide\n\n" + para("w", 25) + "\n\n" + code + "\n\n" + para("x", 30) + "\n"
    whole = [c for c in chunks_of(text) if code in c.text]
    assert whole, "the code block was cut between chunks"
    # without its span, the token windows cut it
    plain = chunk_text(
        "d", text, words, ChunkingConfig(40, 8), [s for s in markdown_sections(text) if s.kind != "code"]
    )
    assert not [c for c in plain if code in c.text]


BLOCK = st.one_of(
    st.builds(lambda lvl, w: "#" * lvl + " " + w, st.integers(1, 3), st.from_regex(r"[A-Z][a-z]{1,8}", fullmatch=True)),
    st.builds(lambda n, w: " ".join([w] * n), st.integers(1, 70), st.from_regex(r"[a-z]{1,6}[.,]?", fullmatch=True)),
    st.builds(lambda n: "```\n" + "\n".join(f"x{i} = {i}" for i in range(n)) + "\n```", st.integers(1, 20)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    blocks=st.lists(BLOCK, min_size=1, max_size=14),
    seps=st.sampled_from(["\n\n", "\n", "\n\n\n  "]),
    max_tokens=st.integers(8, 60),
    overlap_share=st.integers(0, 4),
)
def test_chunks_are_slices_that_cover_every_token_within_the_budget(blocks, seps, max_tokens, overlap_share):
    text = "  " + seps.join(blocks) + "\n"
    overlap = max_tokens // 2 * overlap_share // 4
    chunks = chunk_text("d", text, words, ChunkingConfig(max_tokens, overlap), markdown_sections(text))
    assert chunks and chunks[0].start == 0 and chunks[-1].end == len(text)
    covered: set[int] = set()
    for i, c in enumerate(chunks):
        assert c.chunk_index == i and text[c.start : c.end] == c.text
        inside = [t for t in words(text) if c.start <= t[0] < c.end]
        assert 0 < len(inside) <= max_tokens
        covered |= {t[0] for t in inside}
        if i:
            assert chunks[i - 1].start < c.start <= chunks[i - 1].end  # in order, nothing left out
    assert covered == {t[0] for t in words(text)}


def test_a_chunk_that_begins_with_the_title_gets_no_title_only_header():
    doc = Document("Title here\nabstract words", "d", {"title": "Title here"})
    (c,) = chunk_text("d", doc.text, words, ChunkingConfig(40, 8))
    assert header_path(doc, c, "all") == ()
    later = type(c)("d", 1, "more words", 0, 10)
    assert header_path(doc, later, "all") == ("Title here",)
    assert header_path(doc, later, "structured") == ()  # no structure: nothing under "structured"


def test_chunks_that_can_get_a_header_leave_room_for_it():
    structured = Document("text", "d", structure=(Section("section", 0, 4, ("A",)),))
    titled = Document("text", "d", {"title": "T"})
    wide = ChunkingConfig(510, 64)
    assert chunking_for(structured, "structured", wide, 512) == ChunkingConfig(476, 64)
    assert chunking_for(titled, "structured", wide, 512) == wide  # no header under "structured"
    assert chunking_for(titled, "all", wide, 512) == ChunkingConfig(476, 64)
    assert chunking_for(structured, "off", wide, 512) == wide
    assert chunking_for(structured, "all", ChunkingConfig(256, 32), 512) == ChunkingConfig(256, 32)


def test_a_structure_outside_the_text_is_refused(make_retriever):
    r = make_retriever()
    doc = Document("short text", "d", structure=(Section("section", 0, 99, ("A",)),))
    with pytest.raises(InputError, match=r"structure\[0\] spans 0..99, outside the text's 10 characters"):
        r.ingest([doc])


def _points(r):
    records = r.store.scroll(r.collection, with_vectors=True)
    return sorted(records, key=lambda p: (p.payload["doc_id"], p.payload["chunk_index"]))


def test_headers_change_what_the_encoders_read_not_the_stored_text(make_retriever, tmp_path: Path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "guide.md").write_text(GUIDE)
    stored = {}
    for mode in ("off", "structured"):
        r = make_retriever(location=str(tmp_path / mode), chunk_headers=mode)
        r.ingest_path(folder)
        stored[mode] = _points(r)
    off, on = stored["off"], stored["structured"]
    assert [p.payload["text"] for p in off] == [p.payload["text"] for p in on]
    assert len(on) > 1 and all(p.payload["headings"] for p in on)
    assert on[-1].payload["headings"] == list(PATH) and on[-1].payload["title"] == "Guide"
    header = on[-1].payload["header"]  # the title heads the path once; cut to 32 tokens
    assert header.startswith("Guide > Tutorial > Query") and " > ".join(PATH).startswith(header)
    assert len(r.encoders.chunking_encoder.token_offsets(header)) <= 32
    assert all("header" not in p.payload for p in off)
    assert "header" not in on[0].payload  # it begins with the title: nothing to add
    assert sum("header" in p.payload for p in on) == len(on) - 1
    for a, b in zip(off, on):  # the encoders read the header, where there is one
        assert np.allclose(a.vectors["dense"], b.vectors["dense"]) == ("header" not in b.payload)
    assert stored_encoder_text(on[-1].payload) == header + "\n\n" + on[-1].payload["text"]
    hits = r.search("opt30 opt31", top_k=20, rerank=False)
    assert {h.headings for h in hits} >= {PATH} and all(h.as_dict()["headings"] == list(h.headings) for h in hits)


def test_a_pdf_chunk_records_its_pages(make_retriever, tmp_path: Path):
    folder = tmp_path / "pdfs"
    folder.mkdir()
    make_pdf(folder / "notes.pdf")
    r = make_retriever(chunk_tokens=16, chunk_overlap=2)
    r.ingest_path(folder)
    points = _points(r)
    pages = [tuple(p.payload.get("pages", ())) for p in points]
    assert len(points) > 2 and all(pages)  # every chunk names its pages
    assert pages[0][0] == 1 and pages[-1] == (4,)
    assert {n for ns in pages for n in ns} == {1, 2, 4}  # page 3 has no text
    for p in points:  # a page a chunk names holds some of its text
        assert p.payload["text"].strip()
    hits = r.search("reranker calibrated score", top_k=50, rerank=False)
    assert hits and all(h.pages for h in hits)


def test_the_header_setting_is_recorded_with_the_collection(make_retriever, tmp_path: Path):
    where = str(tmp_path / "kept")
    r = make_retriever(location=where, chunk_headers="all")
    r.add_texts(["one document"], ids=["a"])
    r.close()
    again = make_retriever(location=where)
    assert again.settings.chunk_headers == "all"  # unset: follows the collection
    again.close()
    with pytest.raises(FingerprintMismatchError, match=r"chunk_headers: built with 'all', configured 'off'.*re-ingest"):
        make_retriever(location=where, chunk_headers="off")


def test_a_collection_built_before_headers_keeps_them_off(make_retriever, tmp_path: Path):
    where = str(tmp_path / "old")
    r = make_retriever(location=where, chunk_headers="off")  # what a collection built before had
    r.add_texts(["one document"], ids=["a"])
    assert "chunk_headers" not in r.store.collection_fingerprint(r.collection)
    r.close()
    again = make_retriever(location=where)
    assert again.settings.chunk_headers == "off"
    again.add_texts(["another document"], ids=["b"])  # the default for new ones does not apply
