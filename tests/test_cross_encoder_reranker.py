"""CrossEncoderReranker on a tiny random model with the bge-reranker layout (no mocks)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from m3retriever.errors import ConfigError, InputError, ModelNotFoundError
from m3retriever.rerankers import cross_encoder
from m3retriever.rerankers.base import RerankerOptions
from m3retriever.rerankers.cross_encoder import CrossEncoderReranker

QUERY = "where did the cat sit?"
PASSAGES = [
    "The cat sat on the mat.",
    "The stock market fell sharply after the central bank raised interest rates again.",
    "x",
    "",
    "Café in München: naïve prices, €24.50!",
    "Dogs are loyal animals that enjoy long walks in the park. " * 10,
]


@pytest.fixture(scope="module")
def reranker(tiny_reranker_path: Path) -> CrossEncoderReranker:
    return CrossEncoderReranker(
        RerankerOptions(model=str(tiny_reranker_path), device="cpu", batch_size=2)
    )


def _reference(path: Path, **kwargs):  # type: ignore[no-untyped-def]
    """sentence-transformers' own CrossEncoder, loaded independently of our cache."""
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(path), device="cpu", local_files_only=True, **kwargs)


def test_one_float32_logit_per_passage(reranker: CrossEncoderReranker) -> None:
    scores = reranker.score(QUERY, PASSAGES)
    assert isinstance(scores, np.ndarray)
    assert scores.dtype == np.float32
    assert scores.shape == (len(PASSAGES),)
    assert np.all(np.isfinite(scores))
    assert len(set(scores.tolist())) > 1  # random weights, but not constant


def test_scores_follow_the_callers_order(reranker: CrossEncoderReranker) -> None:
    scores = reranker.score(QUERY, PASSAGES)
    perm = [3, 5, 0, 2, 4, 1]
    permuted = reranker.score(QUERY, [PASSAGES[i] for i in perm])
    assert np.allclose(permuted, scores[perm], atol=1e-5)
    # deterministic
    assert np.array_equal(reranker.score(QUERY, PASSAGES), scores)


def test_equals_cross_encoder_predict(reranker: CrossEncoderReranker, tiny_reranker_path: Path) -> None:
    import torch

    pairs = [(QUERY, p) for p in PASSAGES]
    ours = reranker.score(QUERY, PASSAGES)
    raw = _reference(tiny_reranker_path, activation_fn=torch.nn.Identity()).predict(pairs, batch_size=4)
    assert np.allclose(ours, raw, atol=1e-5)
    # the scores are raw logits: CrossEncoder's default (sigmoid) output is their sigmoid
    default = _reference(tiny_reranker_path).predict(pairs, batch_size=4)
    assert np.allclose(1.0 / (1.0 + np.exp(-ours.astype(np.float64))), default, atol=1e-5)
    assert (ours < 0).any() or (ours > 1).any()


def test_max_length_cuts_the_passage(reranker: CrossEncoderReranker, tiny_reranker_path: Path) -> None:
    # CrossEncoder(max_length=...) cuts the longer side first, so it is no reference here: the
    # exact pairs (query within its budget, passage cut) are checked in test_rerank_truncation.py.
    short = CrossEncoderReranker(
        RerankerOptions(model=str(tiny_reranker_path), device="cpu", max_length=24)
    )
    assert short.spec.max_length == 24 and short.spec.max_query_length == 18
    ours = short.score(QUERY, PASSAGES)
    full = reranker.score(QUERY, PASSAGES)
    assert not np.isclose(ours[5], full[5])  # the long passage was cut
    assert np.isclose(ours[2], full[2], atol=1e-5)  # a short pair (17 tokens) was not
    assert short.model is reranker.model  # max_length is per call, the model is shared


def test_model_loaded_once_for_two_instances(tiny_reranker_path: Path, reranker: CrossEncoderReranker) -> None:
    other = CrossEncoderReranker(RerankerOptions(model=str(tiny_reranker_path), device="cpu", batch_size=5))
    assert other.model is reranker.model
    keys = [k for k in cross_encoder._models.keys() if k[0] == str(tiny_reranker_path)]
    assert keys == [(str(tiny_reranker_path), "cpu", False)]


def test_empty_and_bad_input(reranker: CrossEncoderReranker) -> None:
    empty = reranker.score(QUERY, [])
    assert empty.shape == (0,) and empty.dtype == np.float32
    with pytest.raises(InputError):
        reranker.score(QUERY, "a single string")
    with pytest.raises(InputError):
        reranker.score(QUERY, ["ok", None])  # type: ignore[list-item]
    with pytest.raises(InputError):
        reranker.score(None, ["ok"])  # type: ignore[arg-type]


def test_spec_and_defaults(tiny_reranker_path: Path) -> None:
    spec = CrossEncoderReranker(RerankerOptions(model=str(tiny_reranker_path), max_length=128)).spec
    assert spec.name == "cross-encoder"
    assert spec.model == str(tiny_reranker_path)
    assert spec.max_length == 128
    assert CrossEncoderReranker(RerankerOptions()).spec.model == "BAAI/bge-reranker-v2-m3"
    with pytest.raises(ConfigError):
        CrossEncoderReranker(RerankerOptions(batch_size=0))


def test_missing_local_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-reranker"
    with pytest.raises(ModelNotFoundError) as info:
        CrossEncoderReranker(RerankerOptions(model=str(missing), device="cpu")).score(QUERY, ["a"])
    message = str(info.value)
    assert str(missing) in message
    assert 'RerankerOptions(model="/path/to/bge-reranker-v2-m3")' in message
    assert "M3R_RERANKER_MODEL" in message
    assert "download BAAI/bge-reranker-v2-m3" in message


def test_missing_hub_model_offline_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rr = CrossEncoderReranker(RerankerOptions(model="BAAI/not-a-cached-reranker-m3r", device="cpu"))
    started = time.monotonic()
    with pytest.raises(ModelNotFoundError) as info:
        rr.score(QUERY, ["a"])
    assert time.monotonic() - started < 10
    assert "BAAI/not-a-cached-reranker-m3r" in str(info.value)
    assert "offline" in str(info.value)
