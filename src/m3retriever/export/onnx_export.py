"""``export_onnx``: a BGE-M3 or cross-encoder checkpoint to one ONNX graph, optionally int8.

The graph is traced with torch's TorchScript exporter (``dynamo=False``; with dynamic batch and
sequence axes it is the exporter that handles these models on torch 2.13) and, with ``int8``,
quantized by onnxruntime's dynamic quantization (int8 weights, activations quantized per run).
The directory is written under a temporary name beside ``outdir`` and renamed into place at the
end, so a failed export leaves nothing half-written.
"""

from __future__ import annotations

import gc
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from m3retriever._deps import require
from m3retriever.errors import ConfigError
from m3retriever.export.graphs import KIND_BGE_M3, LoadedGraph, load_graph, max_positions
from m3retriever.runtime.exported import MANIFEST_NAME, MANIFEST_VERSION, sha256_file
from m3retriever.runtime.hub import WEIGHT_FILES, resolve_model_dir

__all__ = ["export_onnx", "DEFAULT_OPSET", "MODEL_FILE", "DATA_FILE"]

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 17
MODEL_FILE = "model.onnx"
DATA_FILE = "model.onnx.data"
"""Where the weights of a graph over protobuf's 2 GB limit go (one file beside the graph)."""

_PROTOBUF_LIMIT = 2_000_000_000
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "sentencepiece.bpe.model",
)
_SOURCE_FILES = WEIGHT_FILES + ("config.json", "colbert_linear.pt", "sparse_linear.pt") + _TOKENIZER_FILES


def export_onnx(
    model: str,
    outdir: str | Path,
    *,
    int8: bool = False,
    opset: int = DEFAULT_OPSET,
    overwrite: bool = False,
    per_channel: bool = True,
) -> Path:
    """Export a BGE-M3 or cross-encoder checkpoint to an ONNX directory m3retriever loads.

    A BGE-M3 checkpoint (a transformer with ``colbert_linear.pt`` and ``sparse_linear.pt``)
    becomes one graph with three outputs (``dense_vecs``, ``sparse_weights``,
    ``colbert_vecs``); a sequence classifier (bge-reranker) becomes a graph with ``logits``.
    The directory also holds the tokenizer, ``config.json`` and a manifest
    (:data:`~m3retriever.runtime.exported.MANIFEST_NAME`) with the sha256 of every file.

    Args:
        model: Hub id (from the local cache when offline) or local checkpoint directory.
        outdir: Directory to write; it must not exist or be empty unless ``overwrite``.
        int8: Quantize the weights to int8 (onnxruntime dynamic quantization; the BGE-M3
            sparse and ColBERT heads stay float).
        opset: ONNX opset of the graph.
        overwrite: Replace an existing non-empty ``outdir``.
        per_channel: With ``int8``, one scale per output channel of each weight instead of
            one per tensor (measured on all-MiniLM-L6-v2 weights: Kendall tau of the dense
            ranking against fp32 0.911 instead of 0.814, docs/onnx.md).

    Returns:
        The export directory.

    Raises:
        ModelNotFoundError: ``model`` cannot be found or is neither kind.
        ConfigError: ``outdir`` is not empty (and ``overwrite`` is off) or is a file.
        MissingDependencyError: torch, transformers or onnx is not installed.
    """
    target = Path(outdir).expanduser().resolve()
    _check_target(target, overwrite)
    source = Path(
        resolve_model_dir(
            model,
            default_model="BAAI/bge-m3",
            how_to="pass the path of a local checkpoint directory",
        )
    )
    graph = load_graph(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    work.chmod(0o755)  # mkdtemp's 0700 would hide the export from other users
    try:
        started = time.perf_counter()
        _fill(work, model, source, graph, opset, int8, per_channel)
        _move_into_place(work, target)
        logger.info("exported %s to %s in %.1f s", model, target, time.perf_counter() - started)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return target


def _fill(work: Path, model: str, source: Path, graph: LoadedGraph, opset: int, int8: bool, per_channel: bool) -> None:
    """Write the graph, the tokenizer, ``config.json`` and the manifest into ``work``."""
    _export_graph(graph, work / "raw", opset)
    # The torch weights are no longer needed: free them before onnx and the quantizer load
    # their own copies (BGE-M3's are 2.2 GB).
    graph.module = None
    gc.collect()
    excluded = _write_model(graph, work / "raw", work, int8, per_channel)
    shutil.rmtree(work / "raw")
    _copy_tokenizer(source, work)
    shutil.copy2(source / "config.json", work / "config.json")
    for path in work.iterdir():
        path.chmod(0o644)  # onnx writes external data 0600; the export is meant to be shared
    quantization = (
        {"method": "dynamic", "weight_type": "QInt8", "per_channel": per_channel,
         "library": "onnxruntime", "float_nodes": excluded}
        if int8 else None
    )
    manifest = _manifest(model, source, graph, work, opset, quantization)
    (work / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _check_target(target: Path, overwrite: bool) -> None:
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{target} is a file; give export-onnx a directory to write")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise ConfigError(
            f"{target} is not empty; pick a new directory or pass --force (overwrite=True) "
            "to replace it"
        )


def _export_graph(graph: LoadedGraph, raw: Path, opset: int) -> None:
    """Trace ``graph`` to ``raw/model.onnx`` (torch writes external data files beside it when
    the weights pass 2 GB)."""
    torch = require("torch", package="torch", extra="torch", purpose="export-onnx")
    require("onnx", package="onnx", extra="onnx-export", purpose="export-onnx")
    raw.mkdir()
    example = _example_inputs(torch, graph)
    axes: dict[str, dict[int, str]] = {name: {0: "batch", 1: "sequence"} for name in graph.inputs}
    for name in graph.outputs:
        axes[name] = {0: "batch"} if name in ("dense_vecs", "logits") else {0: "batch", 1: "tokens"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python branches on shapes
        torch.onnx.export(
            graph.module,
            tuple(example[name] for name in graph.inputs),
            str(raw / MODEL_FILE),
            input_names=list(graph.inputs),
            output_names=list(graph.outputs),
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )


def _example_inputs(torch: Any, graph: LoadedGraph) -> dict[str, Any]:
    """Two rows of different lengths (one padded), so the traced graph keeps the mask path."""
    config = graph.config
    pad = int(config.get("pad_token_id") or 0)
    bos = int(config.get("bos_token_id") or 0)
    eos = int(config.get("eos_token_id") or 2)
    word = max(pad, bos, eos) + 1
    ids = torch.tensor(
        [[bos] + [word] * 6 + [eos], [bos, word, word, eos] + [pad] * 4], dtype=torch.long
    )
    mask = torch.tensor([[1] * 8, [1] * 4 + [0] * 4], dtype=torch.long)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


def _write_model(graph: LoadedGraph, raw: Path, work: Path, int8: bool, per_channel: bool) -> list[str]:
    """Write ``work/model.onnx`` (weights in one ``model.onnx.data`` when over 2 GB), quantized
    when ``int8``; returns the graph nodes quantization left in float."""
    onnx = require("onnx", package="onnx", extra="onnx-export", purpose="export-onnx")
    large = sum(p.stat().st_size for p in raw.iterdir()) > _PROTOBUF_LIMIT
    if not int8:
        if not large and [p.name for p in raw.iterdir()] == [MODEL_FILE]:
            shutil.move(str(raw / MODEL_FILE), str(work / MODEL_FILE))
        else:
            proto = onnx.load(str(raw / MODEL_FILE))
            onnx.save_model(
                proto, str(work / MODEL_FILE), save_as_external_data=True,
                all_tensors_to_one_file=True, location=DATA_FILE, size_threshold=1024,
            )
        return []
    quantization = require(
        "onnxruntime.quantization", package="onnxruntime", extra="onnx-export", purpose="--int8"
    )
    proto = onnx.load(str(raw / MODEL_FILE), load_external_data=False)
    excluded = [
        node.name for node in proto.graph.node
        if any(node.name.startswith(prefix) for prefix in graph.quantize_exclude)
    ]
    del proto
    root = logging.getLogger()
    root.addFilter(_no_preprocessing_advice)
    try:
        quantization.quantize_dynamic(
            str(raw / MODEL_FILE),
            str(work / MODEL_FILE),
            weight_type=quantization.QuantType.QInt8,
            per_channel=per_channel,
            nodes_to_exclude=excluded,
            use_external_data_format=large,
        )
    finally:
        root.removeFilter(_no_preprocessing_advice)
    return excluded


def _no_preprocessing_advice(record: logging.LogRecord) -> bool:
    """Drop onnxruntime's advice to pre-process the graph (meant for static quantization of
    vision models; it logs it on the root logger for every dynamic quantization)."""
    return not str(record.msg).startswith("Please consider to run pre-processing")


def _copy_tokenizer(source: Path, work: Path) -> None:
    """Copy the tokenizer files; write ``tokenizer.json`` from the tokenizer if the checkpoint
    has none (onnxruntime runs need it)."""
    for name in _TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, work / name)
    if not (work / "tokenizer.json").is_file():
        transformers = require(
            "transformers", package="transformers", extra="torch", purpose="export-onnx"
        )
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(source))
        tokenizer.save_pretrained(str(work))
        if not (work / "tokenizer.json").is_file():
            raise ConfigError(f"{source}'s tokenizer cannot be saved as tokenizer.json (not a fast tokenizer)")


def _special_ids(source: Path) -> dict[str, int]:
    """The ids FlagEmbedding drops from lexical weights (cls, eos, pad, unk), by role."""
    transformers = require("transformers", package="transformers", extra="torch", purpose="export-onnx")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(source))
    roles = {}
    for role in ("cls_token", "eos_token", "pad_token", "unk_token"):
        token = getattr(tokenizer, role, None)
        if token is not None:
            roles[role] = int(tokenizer.convert_tokens_to_ids(token))
    return roles


def _versions() -> dict[str, str]:
    found = {}
    for dist in ("m3retriever", "torch", "transformers", "onnx", "onnxruntime"):
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = "unknown"
    return found


def _manifest(
    model: str, source: Path, graph: LoadedGraph, work: Path, opset: int, quantization: dict[str, Any] | None
) -> dict[str, Any]:
    parts = source.parts
    revision = parts[-1] if len(parts) > 2 and parts[-2] == "snapshots" else None
    config = graph.config
    manifest: dict[str, Any] = {
        "format": "m3retriever-onnx",
        "version": MANIFEST_VERSION,
        "kind": graph.kind,
        "source": {
            "model": model,
            "path": str(source),
            "revision": revision,
            "files": {
                name: sha256_file(source / name) for name in _SOURCE_FILES if (source / name).is_file()
            },
        },
        "files": {
            p.name: sha256_file(p) for p in sorted(work.iterdir()) if p.is_file() and p.name != MANIFEST_NAME
        },
        "opset": opset,
        "quantization": quantization,
        "inputs": list(graph.inputs),
        "outputs": dict(graph.outputs),
        "hidden_size": config.get("hidden_size"),
        "max_positions": max_positions(config),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": _versions(),
    }
    if graph.kind == KIND_BGE_M3:
        manifest["colbert_dim"] = graph.colbert_dim
        manifest["special_token_ids"] = _special_ids(source)
    return manifest


def _move_into_place(work: Path, target: Path) -> None:
    """Rename ``work`` to ``target``; an existing ``target`` is moved aside first and removed
    only once the new directory is in place."""
    old: Path | None = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    try:
        os.replace(work, target)
    except OSError:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
