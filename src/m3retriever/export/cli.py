"""``m3retriever model export-onnx``: argument parsing and the handler (the work is imported when the
command runs, so ``m3retriever --help`` stays fast)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from m3retriever.cli.registry import CommandLine
from m3retriever.display import out
from m3retriever.errors import ConfigError

__all__ = ["register_commands"]


def register_commands(cli: CommandLine) -> None:
    """Declare ``model export-onnx``."""
    cli.command(
        "model export-onnx",
        _cmd_export,
        help="export a BGE-M3 or bge-reranker checkpoint to an ONNX directory (optionally int8)",
        description=(
            "Turn a BGE-M3 checkpoint into one ONNX graph emitting dense vectors, lexical weights "
            "and ColBERT vectors, or a cross-encoder (bge-reranker) into an ONNX graph emitting "
            "logits (the kind is detected from the checkpoint). The directory holds the graph, "
            "the tokenizer and a manifest with the sha256 of every file; the bge-m3-onnx encoder "
            "and the onnx-cross-encoder reranker load it (profile bge-m3-cpu). Needs torch, "
            "transformers and onnx."
        ),
        arguments=_arguments,
    )


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="hub id (from the local cache when offline) or checkpoint directory")
    p.add_argument("outdir", help="directory to write (new or empty)")
    p.add_argument("--int8", action="store_true", help="dynamic int8 quantization (onnxruntime)")
    p.add_argument(
        "--per-tensor",
        action="store_true",
        help="with --int8, one scale per weight tensor instead of per output channel (less accurate)",
    )
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17)")
    p.add_argument("--force", action="store_true", help="replace a non-empty OUTDIR")


def _cmd_export(args: argparse.Namespace) -> int:
    from m3retriever.export.onnx_export import DEFAULT_OPSET, export_onnx
    from m3retriever.runtime.exported import MANIFEST_NAME

    opset = DEFAULT_OPSET if args.opset is None else args.opset
    if not 14 <= opset <= 21:
        raise ConfigError(f"--opset must be between 14 and 21, got {opset}")
    outdir = export_onnx(
        args.model, args.outdir, int8=args.int8, opset=opset, overwrite=args.force, per_channel=not args.per_tensor
    )
    manifest = json.loads((Path(outdir) / MANIFEST_NAME).read_text(encoding="utf-8"))
    size = sum((Path(outdir) / name).stat().st_size for name in manifest["files"])
    quantized = "int8" if manifest["quantization"] else "fp32"
    out(
        f"exported {manifest['kind']} ({quantized}, opset {manifest['opset']}, "
        f"{size / 1e6:.1f} MB) to {outdir}\n"
        f"outputs: {', '.join(manifest['outputs'])}"
    )
    return 0
