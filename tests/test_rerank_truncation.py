"""How both rerankers fit a (query, passage) pair into ``max_length``: the query keeps its
budget of tokens, the passage is cut (tiny random bge-reranker lookalike, no mocks).

The reference logits come from the transformers model itself on token ids built by hand:
``<s> query[:budget] </s></s> passage[:rest] </s>``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m3retriever.rerankers.base import RerankerOptions, cut_to_tokens, query_budget
from m3retriever.rerankers.cross_encoder import CrossEncoderReranker
from m3retriever.rerankers.onnx_cross import OnnxCrossEncoderReranker
from tinymodels import TRAINING_TEXT

MAX_LENGTH = 32
LONG_QUERY = " ".join(TRAINING_TEXT[10:20])  # ~275 tokens of the tiny tokenizer
LONG_PASSAGE = " ".join(TRAINING_TEXT[30:40])
SHORT_QUERY = "where did the cat sit?"


@pytest.fixture(scope="module")
def plain_tokenizer(tiny_reranker_path: Path) -> Any:
    from m3retriever.runtime.tokens import load_tokenizer

    return load_tokenizer(tiny_reranker_path / "tokenizer.json")


@pytest.fixture(scope="module")
def hf_model(tiny_reranker_path: Path) -> Any:
    from transformers import XLMRobertaForSequenceClassification

    return XLMRobertaForSequenceClassification.from_pretrained(str(tiny_reranker_path)).eval()


@pytest.fixture(scope="module")
def onnx_dir(tiny_reranker_path: Path, tmp_path_factory: pytest.TempPathFactory, hf_model: Any) -> Path:
    """The tiny reranker exported to ONNX (fp32) next to its ``tokenizer.json``."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = hf_model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, return_dict=False)[0]

    out = tmp_path_factory.mktemp("tiny-reranker-onnx")
    shutil.copy(tiny_reranker_path / "tokenizer.json", out / "tokenizer.json")
    ids = torch.tensor([[0, 5, 6, 2, 2, 7, 2]])
    with torch.no_grad():
        torch.onnx.export(
            Logits().eval(),
            (ids, torch.ones_like(ids)),
            str(out / "model.onnx"),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"}},
            opset_version=17,
            dynamo=False,
        )
    return out


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False).ids)


def _logit(model: Any, ids: list[int]) -> float:
    import torch

    with torch.no_grad():
        return float(model(input_ids=torch.tensor([ids])).logits[0, 0])


def _pair(q: list[int], p: list[int]) -> list[int]:
    return [0, *q, 2, 2, *p, 2]


def _rerankers(path: Path, onnx_dir: Path) -> list[Any]:
    opts = {"device": "cpu", "max_length": MAX_LENGTH}
    return [
        CrossEncoderReranker(RerankerOptions(model=str(path), **opts)),  # type: ignore[arg-type]
        OnnxCrossEncoderReranker(RerankerOptions(model=str(onnx_dir), **opts)),  # type: ignore[arg-type]
    ]


def test_query_budget() -> None:
    assert query_budget(512) == 384 and query_budget(128) == 96 and query_budget(32) == 24
    assert query_budget(8) == 3 and query_budget(2) == 1  # special tokens and a passage token fit


@given(st.integers(1, 100_000))
@settings(max_examples=200, deadline=None)
def test_query_budget_leaves_the_passage_a_quarter(max_length: int) -> None:
    budget = query_budget(max_length)
    assert 1 <= budget <= max(1, max_length - 5)
    if max_length >= 20:
        assert max_length - budget >= max_length // 4


def test_cut_to_tokens() -> None:
    offsets = [(0, 5), (5, 6), (6, 6), (7, 12)]  # an empty span (a special piece) is not a token
    assert cut_to_tokens("hello, world", offsets, 3) == "hello, world"
    assert cut_to_tokens("hello, world", offsets, 2) == "hello,"
    assert cut_to_tokens("hello, world", offsets, 0) == ""


def test_long_query_keeps_its_budget_and_the_passage_is_cut(
    tiny_reranker_path: Path, onnx_dir: Path, plain_tokenizer: Any, hf_model: Any
) -> None:
    q, p = _ids(plain_tokenizer, LONG_QUERY), _ids(plain_tokenizer, LONG_PASSAGE)
    budget = query_budget(MAX_LENGTH)
    assert len(q) > MAX_LENGTH and len(p) > MAX_LENGTH
    # Precondition: the query's text cut after its budget reads back as exactly those tokens.
    cut = cut_to_tokens(LONG_QUERY, plain_tokenizer.encode(LONG_QUERY, add_special_tokens=False).offsets, budget)
    assert _ids(plain_tokenizer, cut) == q[:budget]
    expected = _logit(hf_model, _pair(q[:budget], p[: MAX_LENGTH - 4 - budget]))
    # Cutting the longer side first (what the cross-encoder did before) reads other tokens.
    half = (MAX_LENGTH - 4) // 2
    assert abs(_logit(hf_model, _pair(q[:half], p[:half])) - expected) > 1e-3
    for reranker in _rerankers(tiny_reranker_path, onnx_dir):
        assert reranker.spec.max_query_length == budget
        got = reranker.score(LONG_QUERY, [LONG_PASSAGE, LONG_PASSAGE + " and a different tail"])
        assert got == pytest.approx([expected, expected], abs=1e-4), reranker.spec.name


def test_short_query_whole_and_passage_gets_the_rest(
    tiny_reranker_path: Path, onnx_dir: Path, plain_tokenizer: Any, hf_model: Any
) -> None:
    q, p = _ids(plain_tokenizer, SHORT_QUERY), _ids(plain_tokenizer, LONG_PASSAGE)
    expected = _logit(hf_model, _pair(q, p[: MAX_LENGTH - 4 - len(q)]))
    for reranker in _rerankers(tiny_reranker_path, onnx_dir):
        got = reranker.score(SHORT_QUERY, [LONG_PASSAGE])
        assert got[0] == pytest.approx(expected, abs=1e-4), reranker.spec.name


def test_info_shows_the_lengths_in_force(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from m3retriever.cli import main
    from m3retriever.config.profiles import get_profile

    notes = config_file.parent / "notes"
    notes.mkdir()
    (notes / "note.txt").write_text("a short note about rerankers")
    assert main(["ingest", str(notes), "--config", str(config_file), "--quiet"]) == 0  # info needs a collection
    capsys.readouterr()
    assert main(["collection", "info", "--config", str(config_file), "--json"]) == 0
    lengths = json.loads(capsys.readouterr().out)["lengths"]
    pair = get_profile("bge-m3").get("rerank_max_length")  # the profile states it explicitly
    assert isinstance(pair, int)
    assert lengths == {
        "chunk_tokens": 48,  # the configuration's, below the encoder's limit
        "encoder_max_length": 128,
        "max_query_tokens": 128,  # unset: the encoders' max length
        "rerank_max_length": pair,
        "rerank_query_tokens": query_budget(pair),
    }
    assert main(["collection", "info", "--config", str(config_file)]) == 0
    assert '"rerank_query_tokens": ' + str(query_budget(pair)) in capsys.readouterr().out


def test_info_lengths_follow_the_settings(make_retriever: Any, tmp_path: Path) -> None:
    r = make_retriever(chunk_tokens=4096, max_query_tokens=20, rerank_max_length=64)
    assert r.lengths() == {
        "chunk_tokens": 126,  # capped to the encoder's 128 tokens less two special tokens
        "encoder_max_length": 128,
        "max_query_tokens": 20,
        "rerank_max_length": 64,
        "rerank_query_tokens": 48,
    }
    plain = make_retriever(location=str(tmp_path / "other"), reranker="none")
    assert plain.lengths()["rerank_query_tokens"] is None
