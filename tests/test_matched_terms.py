"""Matched terms a person can read: a hit's ``matched_terms`` are the query's own words found
in its text (never subword pieces, never a word the query lacks), and ``matches`` give the
character spans of every occurrence, on a real embedded store with the tiny models and, for
the analyzer, on random texts."""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m3retriever.display import format_hits
from m3retriever.encoders.bm25 import BM25Encoder
from m3retriever.search.matching import Matcher, fold_words, word_spans
from m3retriever.types import MatchedTerm

QDRANT_DOCS = [
    {
        "doc_id": "qdrant",
        "text": "Qdrant is a vector database and search engine. What makes QDRANT fast: qdrant's HNSW index.",
    },
    {"doc_id": "paris", "text": "Paris is the capital and largest city of France."},
    {"doc_id": "runner", "text": "She runs every morning; running keeps her fit. A run a day!"},
]


def _spans_text(hit) -> dict[str, list[str]]:
    return {m.term: [hit.text[a:b] for a, b in m.spans] for m in hit.matches}


@pytest.mark.parametrize("bm25", [False, True], ids=["learned-sparse", "bm25"])
def test_issue_example_lists_only_query_words(make_retriever, bm25):
    r = make_retriever(bm25=bm25)
    r.ingest(QDRANT_DOCS)
    hit = next(h for h in r.search("what is qdrant?", top_k=3, rerank=False) if h.doc_id == "qdrant")
    # Not subword pieces ('q', '##t', '##dran'), nor words the query lacks ('and', 'af'):
    # the query's words after the analyzer ("is" is a stopword), in the query's order.
    assert hit.matched_terms == ("what", "qdrant")
    assert _spans_text(hit) == {"what": ["What"], "qdrant": ["Qdrant", "QDRANT", "qdrant"]}
    assert hit.matched_terms == tuple(m.term for m in hit.matches)


def test_spans_point_at_the_words_and_serialize(make_retriever):
    r = make_retriever(bm25=True)
    r.ingest(QDRANT_DOCS)
    result = r.search("Running, RUN!", top_k=3, rerank=False)
    hit = next(h for h in result if h.doc_id == "runner")
    # Stemmed: every form of the word is found, the span covers the whole written word.
    assert hit.matches == (MatchedTerm("running", ((4, 8), (24, 31), (49, 52))),)
    assert _spans_text(hit) == {"running": ["runs", "running", "run"]}
    as_json = json.loads(json.dumps(result.as_dict()))
    out = next(h for h in as_json["hits"] if h["doc_id"] == "runner")
    assert out["matched_terms"] == ["running"]
    assert out["matches"] == [{"term": "running", "spans": [[4, 8], [24, 31], [49, 52]]}]
    assert "running" in format_hits(result)  # the human table shows the words


def test_without_bm25_words_are_case_folded_not_stemmed(make_retriever):
    r = make_retriever(bm25=False)
    r.ingest(QDRANT_DOCS)
    hit = next(h for h in r.search("Running runs", top_k=3, rerank=False) if h.doc_id == "runner")
    assert _spans_text(hit) == {"running": ["running"], "runs": ["runs"]}


@pytest.mark.parametrize("analyzer", [BM25Encoder().analyze_words, fold_words], ids=["bm25", "fold"])
def test_unicode_case_folding_and_punctuation(analyzer):
    text = "STRASSE, Straße; café (cafe\u0301) — e-mail: Ñandú! 東京タワーは高い。東京"
    m = Matcher("straße Café e-mail ñandú 東京", analyzer)
    spans = {t.term: [text[a:b] for a, b in t.spans] for t in m.match(text)}
    assert spans["straße"] == ["STRASSE", "Straße"]  # case folded: ß == ss
    assert spans["café"] == ["café", "cafe\u0301"]  # NFC: a combining accent is the same word
    assert spans["e"] == ["e"] and spans["mail"] == ["mail"]  # punctuation splits words
    assert spans["ñandú"] == ["Ñandú"]
    assert spans["東"] == ["東", "東"] and spans["京"] == ["京", "京"]  # each Han ideograph is a word
    assert "cafe" not in spans  # accents are kept: "cafe" is another word than "café"


def test_no_query_words_no_matches():
    assert Matcher("the of and ?!", BM25Encoder().analyze_words).match("the cat of the house") == ()
    assert Matcher("", fold_words).match("anything") == ()


_ALPHABET = st.sampled_from(list("abcdeRUNrunsıİßSSéÉ\u0301東京タは 0123456789.,;!?-'\n\t") + ["the", "is", "running"])
_TEXTS = st.lists(_ALPHABET, max_size=40).map("".join)


@settings(max_examples=150, deadline=None)
@given(query=_TEXTS, text=_TEXTS, stem=st.booleans())
def test_every_span_is_its_term_and_every_term_a_query_word(query, text, stem):
    analyzer = BM25Encoder().analyze_words if stem else fold_words
    m = Matcher(query, analyzer)
    query_words = {query[a:b] for a, b in word_spans(query)}
    matches = m.match(text)
    covered = set()
    for t in matches:
        assert "#" not in t.term and "\u2581" not in t.term
        assert t.term in {_nfc_lower(w) for w in query_words}
        assert t.spans == tuple(sorted(t.spans))
        for a, b in t.spans:
            assert (a, b) in word_spans(text)
            assert m.key(text[a:b]) == m.key(t.term) is not None
            covered.add((a, b))
    # and nothing is missed: every word of the text that analyzes to a query word is listed
    query_keys = {m.key(w) for w in query_words} - {None}
    assert {s for s in word_spans(text) if m.key(text[s[0] : s[1]]) in query_keys} == covered


def _nfc_lower(word: str) -> str:
    return unicodedata.normalize("NFC", word).lower()
