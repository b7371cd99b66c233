"""``export-onnx`` on the tiny checkpoints: the directory, its manifest, its sha256 check, the
CLI, and the errors for what cannot be exported or loaded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from m3retriever.cli import main
from m3retriever.encoders.base import EncoderOptions
from m3retriever.encoders.onnx_m3 import OnnxBGEM3Encoder
from m3retriever.errors import ConfigError, ModelNotFoundError
from m3retriever.export import export_onnx
from m3retriever.rerankers.base import RerankerOptions
from m3retriever.rerankers.onnx_cross import OnnxCrossEncoderReranker
from m3retriever.runtime.exported import MANIFEST_NAME, sha256_file

pytest.importorskip("onnx")


def _manifest(directory: Path) -> dict:
    return json.loads((directory / MANIFEST_NAME).read_text())


@pytest.mark.parametrize("name", ["m3", "m3-int8", "reranker", "reranker-int8"])
def test_manifest_records_the_files_source_opset_and_quantization(onnx_exports, tiny_bge_m3_path, tiny_reranker_path, name):
    directory = onnx_exports[name]
    manifest = _manifest(directory)
    source = tiny_bge_m3_path if name.startswith("m3") else tiny_reranker_path
    assert manifest["kind"] == ("bge-m3" if name.startswith("m3") else "reranker")
    assert manifest["opset"] == 17
    assert manifest["source"]["model"] == str(source)
    # every file of the directory but the manifest, each with its real sha256
    on_disk = {p.name for p in directory.iterdir()} - {MANIFEST_NAME}
    assert set(manifest["files"]) == on_disk >= {"model.onnx", "tokenizer.json", "config.json"}
    assert all(sha256_file(directory / f) == digest for f, digest in manifest["files"].items())
    assert manifest["source"]["files"]["model.safetensors"] == sha256_file(source / "model.safetensors")
    assert manifest["versions"]["torch"] and manifest["versions"]["onnxruntime"]
    if name.endswith("int8"):
        assert manifest["quantization"]["weight_type"] == "QInt8"
        assert manifest["quantization"]["method"] == "dynamic"
        assert manifest["quantization"]["per_channel"] is True
    else:
        assert manifest["quantization"] is None
    if name.startswith("m3"):
        assert list(manifest["outputs"]) == ["dense_vecs", "sparse_weights", "colbert_vecs"]
        assert manifest["colbert_dim"] == 32 and manifest["hidden_size"] == 32
        assert manifest["special_token_ids"] == {"cls_token": 0, "eos_token": 2, "pad_token": 1, "unk_token": 3}
        assert manifest["source"]["files"]["colbert_linear.pt"] == sha256_file(source / "colbert_linear.pt")
    else:
        assert list(manifest["outputs"]) == ["logits"]


def test_int8_keeps_the_heads_in_float_and_shrinks_the_graph(onnx_exports):
    import onnx

    quantized = onnx.load(str(onnx_exports["m3-int8"] / "model.onnx"))
    ops = {node.op_type for node in quantized.graph.node}
    assert "DynamicQuantizeLinear" in ops
    float_nodes = set(_manifest(onnx_exports["m3-int8"])["quantization"]["float_nodes"])
    assert {"/sparse_linear/MatMul", "/colbert_linear/MatMul"} <= float_nodes
    assert float_nodes <= {node.name for node in quantized.graph.node if node.op_type in ("MatMul", "Add")}
    size = (onnx_exports["m3-int8"] / "model.onnx").stat().st_size
    assert size < 0.7 * (onnx_exports["m3"] / "model.onnx").stat().st_size


@pytest.fixture
def damaged(tmp_path, onnx_exports):
    """``damaged(name, file)``: a copy of an export whose ``file`` has one byte changed."""

    def make(name: str, file: str) -> Path:
        copy = tmp_path / f"{name}-{file}"
        shutil.copytree(onnx_exports[name], copy)
        data = bytearray((copy / file).read_bytes())
        data[len(data) // 2] ^= 0x01
        (copy / file).write_bytes(bytes(data))
        return copy

    return make


@pytest.mark.parametrize("file", ["model.onnx", "tokenizer.json"])
def test_a_damaged_file_is_refused_before_anything_runs(damaged, file):
    encoder = OnnxBGEM3Encoder(EncoderOptions(model=str(damaged("m3", file)), device="cpu"))
    with pytest.raises(ModelNotFoundError, match=f"{file} is damaged or was replaced.*export-onnx"):
        encoder.encode_document(["some text"])
    with pytest.raises(ModelNotFoundError, match="damaged"):
        encoder.token_offsets("some text")
    reranker = OnnxCrossEncoderReranker(RerankerOptions(model=str(damaged("reranker", file)), device="cpu"))
    with pytest.raises(ModelNotFoundError, match=f"{file} is damaged"):
        reranker.score("query", ["passage"])


def test_a_missing_file_and_a_wrong_kind_are_refused(tmp_path, onnx_exports):
    copy = tmp_path / "m3"
    shutil.copytree(onnx_exports["m3"], copy)
    (copy / "config.json").unlink()
    with pytest.raises(ModelNotFoundError, match="config.json is listed in .* but missing"):
        OnnxBGEM3Encoder(EncoderOptions(model=str(copy), device="cpu")).encode_query(["q"])
    with pytest.raises(ModelNotFoundError, match="holds a 'reranker' export, not a BGE-M3 one"):
        OnnxBGEM3Encoder(EncoderOptions(model=str(onnx_exports["reranker"])))
    reranker = OnnxCrossEncoderReranker(RerankerOptions(model=str(onnx_exports["m3"])))
    with pytest.raises(ModelNotFoundError, match="needs an export of kind 'reranker'"):
        reranker.score("q", ["p"])


def test_directories_that_are_not_exports_say_how_to_make_one(tmp_path, tiny_bge_m3_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ModelNotFoundError, match=f"export-onnx BAAI/bge-m3 {missing} --int8"):
        OnnxBGEM3Encoder(EncoderOptions(model=str(missing)))
    with pytest.raises(ModelNotFoundError, match=f"export-onnx BAAI/bge-reranker-v2-m3 {missing} --int8"):
        OnnxCrossEncoderReranker(RerankerOptions(model=str(missing)))
    with pytest.raises(ModelNotFoundError, match="lacks model.onnx"):  # a checkpoint, not an export
        OnnxBGEM3Encoder(EncoderOptions(model=str(tiny_bge_m3_path)))
    with pytest.raises(ModelNotFoundError, match="export-onnx BAAI/bge-m3 DIR"):
        OnnxBGEM3Encoder(EncoderOptions(model=None))


def test_export_refuses_a_checkpoint_of_neither_kind_and_a_full_directory(tmp_path, tiny_bge_m3_path, onnx_exports):
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy2(tiny_bge_m3_path / name, plain / name)
    with pytest.raises(ModelNotFoundError, match="neither a BGE-M3 checkpoint .* nor a cross-encoder"):
        export_onnx(str(plain), tmp_path / "out")
    before = sorted(p.name for p in onnx_exports["m3"].iterdir())
    with pytest.raises(ConfigError, match="is not empty; pick a new directory or pass --force"):
        export_onnx(str(tiny_bge_m3_path), onnx_exports["m3"])
    assert sorted(p.name for p in onnx_exports["m3"].iterdir()) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch left behind


def test_cli_exports_and_replaces_with_force(tmp_path, tiny_reranker_path, capsys):
    out = tmp_path / "rr"
    assert main(["model", "export-onnx", str(tiny_reranker_path), str(out), "--int8", "--per-tensor"]) == 0
    printed = capsys.readouterr().out
    assert "exported reranker (int8, opset 17" in printed and str(out) in printed
    assert "outputs: logits" in printed
    assert _manifest(out)["quantization"]["per_channel"] is False
    first = _manifest(out)["files"]["model.onnx"]
    assert main(["model", "export-onnx", str(tiny_reranker_path), str(out), "--force", "--opset", "18"]) == 0
    manifest = _manifest(out)
    assert manifest["quantization"] is None and manifest["opset"] == 18
    assert manifest["files"]["model.onnx"] != first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    scores = OnnxCrossEncoderReranker(RerankerOptions(model=str(out), device="cpu")).score("q", ["a", "b c"])
    assert scores.shape == (2,) and np.isfinite(scores).all()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}/no-such-model", "{tmp}/out"], "could not be found: no such directory"),
        (["{tiny}", "{tmp}/out", "--opset", "9"], "--opset must be between 14 and 21"),
        (["{tiny}", "{tmp}/file.txt"], "is a file; give export-onnx a directory"),
    ],
)
def test_cli_errors_exit_2_without_a_traceback(tmp_path, tiny_bge_m3_path, capsys, args, message):
    (tmp_path / "file.txt").write_text("x")
    argv = ["model", "export-onnx"] + [a.format(tmp=tmp_path, tiny=tiny_bge_m3_path) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("int8", [False, True], ids=["fp32", "int8"])
def test_graphs_over_the_protobuf_limit_keep_their_weights_in_one_data_file(
    tmp_path, tiny_bge_m3_path, onnx_exports, monkeypatch, int8
):
    from m3retriever.export import onnx_export

    # BGE-M3's 2.2 GB of fp32 weights cannot sit in one protobuf: with the limit at 0, the tiny
    # model takes the same path (weights in model.onnx.data beside the graph).
    monkeypatch.setattr(onnx_export, "_PROTOBUF_LIMIT", 0)
    out = export_onnx(str(tiny_bge_m3_path), tmp_path / "large", int8=int8)
    assert sorted(_manifest(out)["files"]) == ["config.json", "model.onnx", "model.onnx.data", "tokenizer.json", "tokenizer_config.json"]
    assert (out / "model.onnx.data").stat().st_size > 32 * 64 * 4  # at least a feed-forward weight
    texts = ["The cat sat on the mat.", "Interest rates rose again.", ""]
    same = onnx_exports["m3-int8" if int8 else "m3"]
    ours = OnnxBGEM3Encoder(EncoderOptions(model=str(out), device="cpu")).encode_document(texts)
    theirs = OnnxBGEM3Encoder(EncoderOptions(model=str(same), device="cpu")).encode_document(texts)
    assert np.abs(ours.dense - theirs.dense).max() < 1e-6
    assert ours.sparse == theirs.sparse
