"""What the reranker reads of a long chunk (search.rerank_window): the windows chosen, and the
real ms-marco cross-encoder reading the part of a chunk that answers the query."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import re  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from m3retriever.config import SearchConfig  # noqa: E402
from m3retriever.errors import ConfigError, ModelNotFoundError  # noqa: E402
from m3retriever.rerankers.base import RerankerOptions  # noqa: E402
from m3retriever.rerankers.onnx_cross import OnnxCrossEncoderReranker  # noqa: E402
from m3retriever.rerankers.windows import window_text, windows  # noqa: E402
from m3retriever.runtime import wheels  # noqa: E402
from m3retriever.search.matching import Matcher  # noqa: E402
from m3retriever.search.reading import read_and_score  # noqa: E402


def _spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(r"\S+", text)]


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 300),
    budget=st.integers(1, 120),
    strategy=st.sampled_from(["first", "match", "maxp"]),
    mark_at=st.lists(st.tuples(st.integers(0, 299), st.sampled_from("abc")), max_size=12),
    max_windows=st.integers(1, 6),
)
def test_windows_stay_inside_the_passage_and_the_budget(n, budget, strategy, mark_at, max_windows) -> None:
    spans = [(2 * i, 2 * i + 1) for i in range(n)]
    marks = [(2 * i, 2 * i + 1, k) for i, k in mark_at if i < n]
    got = windows(spans, budget, strategy, marks, max_windows)
    assert got, "a passage is always read"
    for a, b in got:
        assert 0 <= a < b <= n
        assert b - a <= budget
    if n <= budget:
        assert got == [(0, n)]
    elif strategy == "first":
        assert got == [(0, budget)]
    elif strategy == "maxp":
        assert len(got) <= max_windows
        assert got[0][0] == 0 and (len(got) == 1 or got[-1][1] == n), "maxp reads the start and the end"
        assert got == sorted(set(got))
    else:
        assert len(got) == 1


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(2, 200),
    budget=st.integers(1, 60),
    mark_at=st.lists(st.tuples(st.integers(0, 199), st.sampled_from("abcd")), min_size=1, max_size=15),
)
def test_match_window_holds_the_most_distinct_words(n, budget, mark_at) -> None:
    spans = [(2 * i, 2 * i + 1) for i in range(n)]
    marks = [(2 * i, 2 * i + 1, k) for i, k in mark_at if i < n]
    ((a, b),) = windows(spans, budget, "match", marks)

    def distinct(start: int) -> int:
        return len({k for i, k in mark_at if i < n and start <= i < start + budget})

    best = max(distinct(s) for s in range(0, max(1, n - budget + 1)))
    assert distinct(a) == best


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(2, 200),
    budget=st.integers(1, 60),
    mark_at=st.lists(st.tuples(st.integers(0, 199), st.sampled_from("abcd")), min_size=1, max_size=15),
    sentence_at=st.lists(st.integers(1, 199), max_size=30),
)
def test_a_sentence_anchored_match_window_starts_a_sentence_and_holds_the_most_words(
    n, budget, mark_at, sentence_at
) -> None:
    spans = [(2 * i, 2 * i + 1) for i in range(n)]
    marks = [(2 * i, 2 * i + 1, k) for i, k in mark_at if i < n]
    sentences = sorted({0, *(i for i in sentence_at if i < n)})
    ((a, b),) = windows(spans, budget, "match", marks, sentences=sentences)
    assert b - a == min(budget, n)
    candidates = [s for s in sentences if s <= max(0, n - budget)] + [max(0, n - budget)]
    assert a in candidates

    def distinct(start: int) -> int:
        return len({k for i, k in mark_at if i < n and start <= i < start + budget})

    assert distinct(a) == max(distinct(s) for s in candidates)


def test_sentence_starts() -> None:
    from m3retriever.rerankers.windows import sentence_starts

    text = "First one. Second one!\nThird line\n\n- a bullet e.g. here 3.5 units"
    spans = _spans(text)
    starts = [text[spans[i][0] : spans[i][1]] for i in sentence_starts(text, spans)]
    assert starts == ["First", "Second", "Third", "-"]


def test_a_match_window_begins_at_the_sentence_holding_the_words() -> None:
    from m3retriever.rerankers.windows import sentence_starts

    text = " ".join(f"w{i}." for i in range(60)) + " The needle is here and then " + " ".join(f"v{i}" for i in range(60))
    spans = _spans(text)
    marks = [(m.start(), m.end(), "needle") for m in re.finditer("needle", text)]
    ((a, b),) = windows(spans, 20, "match", marks, sentences=sentence_starts(text, spans))
    assert window_text(text, spans, (a, b)).startswith("The needle is here")


def test_match_window_without_any_word_reads_the_start() -> None:
    spans = _spans(" ".join(f"w{i}" for i in range(100)))
    assert windows(spans, 10, "match", []) == [(0, 10)]


def test_match_window_keeps_the_start_when_it_is_as_good() -> None:
    text = "alpha " + " ".join(f"w{i}" for i in range(100)) + " alpha"
    spans = _spans(text)
    marks = [(m.start(), m.end(), "alpha") for m in re.finditer("alpha", text)]
    assert windows(spans, 10, "match", marks) == [(0, 10)]


def test_match_window_is_centred_on_the_words() -> None:
    words = [f"w{i}" for i in range(200)]
    words[150] = "needle"
    text = " ".join(words)
    spans = _spans(text)
    marks = [(m.start(), m.end(), "needle") for m in re.finditer("needle", text)]
    ((a, b),) = windows(spans, 20, "match", marks)
    assert a < 150 < b - 1, "the word is inside, with text read on both sides"
    assert abs((a + b) / 2 - 150) <= 1


def test_window_text_is_a_slice_of_the_passage() -> None:
    text = "  lead  one two three four five six  "
    spans = _spans(text)
    assert window_text(text, spans, (0, 2)) == "  lead  one"
    assert window_text(text, spans, (2, 4)) == "two three"
    assert window_text(text, spans, (5, 7)) == "five six  "


def test_rerank_window_is_checked() -> None:
    with pytest.raises(ConfigError, match="rerank_window"):
        SearchConfig(rerank_window="middle")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def reranker() -> OnnxCrossEncoderReranker:
    try:
        wheels.msmarco_reranker_onnx_dir()
    except ModelNotFoundError as exc:
        pytest.skip(f"wheel-shipped model not installed: {exc}")
    return OnnxCrossEncoderReranker(RerankerOptions(max_length=128))


FILLER = (
    "The committee met on a Tuesday to review the annual budget, the catering contract and the "
    "parking arrangements for visitors, and agreed to meet again in the spring. "
)
ANSWER = "To run the test suite, type make test in the project folder; it installs everything first."
QUERY = "How do I run the test suite?"


def test_token_spans_and_budget(reranker: OnnxCrossEncoderReranker) -> None:
    (spans,) = reranker.token_spans([ANSWER])
    assert spans[0] == (0, 2) and all(a < b for a, b in spans)
    budget = reranker.passage_budget(QUERY)
    assert budget is not None and 100 < budget < 128 - len(reranker.token_spans([QUERY])[0])


def test_first_window_misses_an_answer_late_in_the_chunk_and_match_finds_it(reranker: OnnxCrossEncoderReranker) -> None:
    chunk = FILLER * 6 + ANSWER + " " + FILLER
    matcher = Matcher(QUERY)
    first = read_and_score(reranker, QUERY, [chunk], "first", matcher)
    match = read_and_score(reranker, QUERY, [chunk], "match", matcher)
    maxp = read_and_score(reranker, QUERY, [chunk], "maxp", matcher)
    assert first.spans == [(0, len(chunk))]
    start, end = match.spans[0]
    assert start <= chunk.index(ANSWER) and chunk.index(ANSWER) + len(ANSWER) <= end
    assert first.logits[0] < 0 < match.logits[0], (first.logits, match.logits)
    assert maxp.logits[0] > first.logits[0] and maxp.pairs > 1


def test_short_chunks_are_read_whole_as_before(reranker: OnnxCrossEncoderReranker) -> None:
    texts = [ANSWER, FILLER]
    plain = reranker.score(QUERY, texts)
    for strategy in ("first", "match", "maxp"):
        got = read_and_score(reranker, QUERY, texts, strategy, Matcher(QUERY))  # type: ignore[arg-type]
        np.testing.assert_array_equal(got.logits, plain.astype(np.float64))
        assert got.pairs == 2
