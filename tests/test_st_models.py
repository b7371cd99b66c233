"""Loading a sentence-transformers model (``runtime.st_models``), as the ``sentence-transformers``
encoder and fine-tuning both do: the token limit, a model that cannot be loaded, a missing extra."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("sentence_transformers")

from m3retriever.encoders.base import EncoderOptions  # noqa: E402
from m3retriever.encoders.st_dense import SentenceTransformerEncoder  # noqa: E402
from m3retriever.errors import MissingDependencyError, ModelNotFoundError  # noqa: E402
from m3retriever.finetune.trainer import load_model  # noqa: E402
from m3retriever.runtime.st_models import load_sentence_transformer  # noqa: E402


def test_the_token_limit_is_capped_at_the_models_own(tiny_bge_m3_path: Path) -> None:
    own = load_sentence_transformer(str(tiny_bge_m3_path), device="cpu", max_length=10**6, purpose="A test")
    limit = own.max_seq_length
    assert limit, "the tiny model declares its own limit"
    for asked in (8, limit - 1, limit, limit + 1):
        model = load_model(str(tiny_bge_m3_path), asked)
        assert model.max_seq_length == min(asked, limit)
        assert str(model.device) == "cpu"


def test_a_folder_without_a_model_is_refused_by_both_callers(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"model '.*' to fine-tune: .*local sentence-transformers folder"):
        load_model(str(tmp_path), 64)
    encoder = SentenceTransformerEncoder(EncoderOptions(model=str(tmp_path), device="cpu"))
    with pytest.raises(ModelNotFoundError, match=r"model '.*': .*local sentence-transformers folder"):
        encoder.encode_document(["a passage"])


def test_a_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # as if not installed
    with pytest.raises(MissingDependencyError, match=r"^Fine-tuning needs .*m3retriever\[torch\]"):
        load_model(str(tmp_path), 64)
    encoder = SentenceTransformerEncoder(EncoderOptions(model=str(tmp_path), device="cpu"))
    with pytest.raises(MissingDependencyError, match=r"^The sentence-transformers encoder needs .*m3retriever\[torch\]"):
        encoder.encode_document(["a passage"])
