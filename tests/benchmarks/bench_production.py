"""Speed of the production models (BGE-M3 and bge-reranker-v2-m3), measured without their weights.

Speed does not depend on trained weights, only on the architecture and the token counts: both
production models are XLM-RoBERTa large (24 layers, hidden 1024, 16 heads, FFN 4096, vocabulary
250,002; ~568M parameters). This script builds them with random weights from that config,
offline, in the production layouts (BGE-M3: ``XLMRobertaModel`` + ``colbert_linear.pt`` +
``sparse_linear.pt``; reranker: ``XLMRobertaForSequenceClassification`` with one label), with
the tiny Unigram tokenizer of ``tests/tinymodels.py`` (the real XLM-R tokenizer is not available
offline; only token counts matter, so model-level timings feed token ids of the wanted lengths).

Parts (``--parts``; each meant for one run under ``flock /work/cache/timing.lock``):

* ``torch``: torch fp32 on CPU through the real components: query encoding (``BGEM3Encoder``),
  ingest tokens/s (``Retriever.ingest`` into Qdrant Edge), cross-encoder pairs/s at each pair
  length (the reranker's own model on token ids), the end-to-end query (``Retriever.search``)
  at rerank depths 10 and 20, and the ColBERT head's cost over token states.
* ``onnx``: the same two models exported with ``torch.onnx.export`` and quantized with
  onnxruntime's ``quantize_dynamic`` (int8 weights), timed with onnxruntime on token ids.
* ``multivector`` (``bench_production_maxsim.py``): the engine side of a multivector (MaxSim) rescoring stage in Qdrant Edge:
  prefetch (dense + sparse) -> RRF -> MaxSim over a named multivector, against the same query
  without that last stage, on random 1024-d token vectors.

Not part of ``run_all.py --smoke`` (the models need ~5 GB of RAM and minutes per figure); run
``python tests/benchmarks/run_all.py --only production`` or this script directly:

    python tests/benchmarks/bench_production.py --parts torch --json /tmp/prod-torch.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for extra in (ROOT / "src", ROOT / "tests", HERE):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

LARGE = {
    "vocab_size": 250_002,
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
    "max_position_embeddings": 8194,
    "type_vocab_size": 1,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "layer_norm_eps": 1e-5,
}
if os.environ.get("M3R_BENCH_TINY"):  # a dry run of the code paths in seconds (figures meaningless)
    LARGE.update(vocab_size=250_002, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
PAIR_LENGTHS = (128, 256, 512, 1024)
QUERY_TOKENS = 32
PASSAGE_TOKENS = 256
DEPTHS = (10, 20)
THREADS = 2


def log(msg: str) -> None:
    print(f"[production {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def timed(fn: Callable[[], Any], reps: int) -> list[float]:
    """Wall-clock seconds of ``reps`` calls (callers warm up themselves)."""
    return [m[0] for m in measured(fn, reps)]


def measured(fn: Callable[[], Any], reps: int) -> list[tuple[float, float]]:
    """(wall seconds, process CPU seconds over all threads) of ``reps`` calls.

    On a shared machine the wall clock includes waiting for the CPU; the CPU time does not, so
    CPU seconds / threads estimates the wall time of an idle machine with that many cores.
    """
    out = []
    for _ in range(reps):
        c, t = time.process_time(), time.perf_counter()
        fn()
        out.append((time.perf_counter() - t, time.process_time() - c))
    return out


def medians(fn: Callable[[], Any], reps: int) -> dict[str, float]:
    """Median wall and CPU seconds of ``reps`` calls."""
    runs = measured(fn, reps)
    return {
        "wall_s": statistics.median(w for w, _ in runs),
        "cpu_s": statistics.median(c for _, c in runs),
        "reps": reps,
    }


# -- models ----------------------------------------------------------------------------------
def _config(**extra: Any) -> Any:
    from transformers import XLMRobertaConfig

    return XLMRobertaConfig(**LARGE, **extra)


def build_models(root: Path) -> tuple[Path, Path]:
    """Write random-weight BGE-M3 and bge-reranker-v2-m3 lookalikes under ``root``."""
    import torch
    from transformers import XLMRobertaForSequenceClassification, XLMRobertaModel

    from tinymodels import _save_tokenizer

    m3, rr = root / "bge-m3-random", root / "reranker-random"
    for out in (m3, rr):
        out.mkdir(parents=True, exist_ok=True)
        _save_tokenizer(out)
    torch.manual_seed(0)
    model = XLMRobertaModel(_config(architectures=["XLMRobertaModel"]), add_pooling_layer=True)
    n_params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(str(m3))
    del model
    torch.save(torch.nn.Linear(LARGE["hidden_size"], LARGE["hidden_size"]).state_dict(), m3 / "colbert_linear.pt")
    torch.save(torch.nn.Linear(LARGE["hidden_size"], 1).state_dict(), m3 / "sparse_linear.pt")
    gc.collect()
    torch.manual_seed(1)
    config = _config(
        num_labels=1,
        architectures=["XLMRobertaForSequenceClassification"],
        id2label={0: "LABEL_0"},
        label2id={"LABEL_0": 0},
    )
    XLMRobertaForSequenceClassification(config).save_pretrained(str(rr))
    gc.collect()
    log(f"built random models ({n_params / 1e6:.0f}M parameters each) in {root}")
    return m3, rr


def words_of_tokens(tokenizer: Any, n: int, offset: int = 0) -> str:
    """A text of exactly ``n`` tokens of ``tokenizer`` (without special tokens)."""
    from tinymodels import TRAINING_TEXT

    text = " ".join(TRAINING_TEXT[(offset + i) % len(TRAINING_TEXT)] for i in range(n))
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][:n]
    out = tokenizer.decode(ids)
    if len(tokenizer(out, add_special_tokens=False)["input_ids"]) < n:  # decoding merged pieces
        out = out + " the" * (n - len(tokenizer(out, add_special_tokens=False)["input_ids"]))
    return str(out)


def _ids(batch: int, length: int, seed: int = 0) -> Any:
    import torch

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 250_000, (batch, length), generator=g)
    ids[:, 0], ids[:, -1] = 0, 2
    return ids


# -- torch fp32 -----------------------------------------------------------------------------
def run_torch(root: Path, reps: int, depths: tuple[int, ...] = DEPTHS) -> dict[str, Any]:
    """torch fp32 timings through the real encoder, reranker, store and retriever."""
    import torch

    torch.set_num_threads(THREADS)
    from m3retriever import Retriever, load_config

    m3, rr = build_models(root)
    res: dict[str, Any] = {"threads": THREADS, "load_before": load_average()}
    config = load_config(
        env={},
        profile="bge-m3",
        location=str(root / "store"),
        collection="prod",
        dense_model=str(m3),
        reranker_model=str(rr),
        device="cpu",
        chunk_tokens=PASSAGE_TOKENS,
        chunk_overlap=0,
        batch_size=8,
    )
    with Retriever(config) as r:
        enc = r.dense_encoder
        assert enc is not None and r.reranker is not None
        tok = enc.model.tokenizer
        query = words_of_tokens(tok, QUERY_TOKENS - 2, offset=7)
        enc.encode_query(["warm up"])
        res["query_encode"] = medians(lambda: enc.encode_query([query]), reps)
        log(f"query encoding ({QUERY_TOKENS} tokens): {res['query_encode']}")

        docs = [
            {"doc_id": f"d{i}", "text": words_of_tokens(tok, PASSAGE_TOKENS - 2, offset=i)}
            for i in range(max(depths))
        ]
        n_tokens = sum(len(enc.token_offsets(d["text"])) for d in docs)
        reports: list[Any] = []
        res["ingest"] = {"docs": len(docs), "tokens": n_tokens, **medians(lambda: reports.append(r.ingest(docs)), 1)}
        log(f"ingest: {reports[0]} -> {res['ingest']}")

        r.search(query, rerank=False)
        searches = [r.search(query, rerank=False).timings_ms for _ in range(reps)]
        res["store_query_ms"] = statistics.median(t["search"] for t in searches)
        res["search_no_rerank_ms"] = statistics.median(t["total"] for t in searches)
        res["pairs"] = _torch_pairs(r.reranker.model.model, reps)  # type: ignore[attr-defined]
        res["colbert_head"] = _torch_colbert_head(enc.model, reps)
        res["e2e"] = {}
        for depth in depths:
            results: list[Any] = []
            run = medians(lambda d=depth, out=results: out.append(r.search(query, top_k=10, rerank_depth=d)), 1)
            res["e2e"][str(depth)] = {**dict(results[0].timings_ms), **run}
            log(f"end-to-end at depth {depth}: {res['e2e'][str(depth)]}")
    res["load_after"] = load_average()
    return res


def _torch_pairs(model: Any, reps: int) -> dict[str, Any]:
    """Cross-encoder pairs/s on token ids (one batch per length; the reranker's batch is 16)."""
    import torch

    out: dict[str, Any] = {}
    with torch.inference_mode():
        model(input_ids=_ids(1, 16))
        for length in PAIR_LENGTHS:
            batch = max(1, 512 // length)
            ids = _ids(batch, length)
            m = medians(lambda ids=ids: model(input_ids=ids), reps if length < 1024 else max(1, reps - 1))
            out[str(length)] = {"batch": batch, **m}
            log(f"torch pairs at {length} tokens: {out[str(length)]}")
    return out


def _torch_colbert_head(flag_model: Any, reps: int) -> dict[str, Any]:
    """Cost of BGE-M3's ColBERT projection over token states vs the forward pass that makes them."""
    import torch

    head = getattr(flag_model.model, "colbert_linear", None) or torch.nn.Linear(1024, 1024)
    states = torch.randn(1, 512, head.in_features)
    with torch.inference_mode():
        head(states)
        m = medians(lambda: head(states[:, 1:]), max(reps, 5))
    return {"tokens": 511, **m}


# -- ONNX int8 ------------------------------------------------------------------------------
def _export(model: Any, path: Path, output: str) -> None:
    import torch

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, return_dict=False)[0]

    ids = _ids(1, 16)
    mask = torch.ones_like(ids)
    with torch.no_grad():
        torch.onnx.export(
            Graph().eval(),
            (ids, mask),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=[output],
            dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}},
            opset_version=17,
            dynamo=False,
        )


def export_int8(root: Path) -> tuple[Path, Path]:
    """Export both random models to ONNX and quantize them dynamically to int8 weights."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import XLMRobertaForSequenceClassification, XLMRobertaModel

    paths = []
    for name, cls, output, seed in (
        ("encoder", XLMRobertaModel, "last_hidden_state", 0),
        ("reranker", XLMRobertaForSequenceClassification, "logits", 1),
    ):
        torch.manual_seed(seed)
        extra = {"num_labels": 1} if name == "reranker" else {}
        model = cls(_config(**extra)).eval()
        fp32 = root / f"{name}-fp32" / "model.onnx"
        fp32.parent.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        _export(model, fp32, output)
        del model
        gc.collect()
        int8 = root / f"{name}-int8.onnx"
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, use_external_data_format=True)
        shutil.rmtree(fp32.parent)
        size = sum(p.stat().st_size for p in root.iterdir() if p.name.startswith(f"{name}-int8"))
        log(f"{name}: exported and quantized in {time.perf_counter() - t:.0f}s ({size / 1e6:.0f} MB)")
        paths.append(int8)
    return paths[0], paths[1]


def run_onnx(root: Path, reps: int) -> dict[str, Any]:
    """onnxruntime int8 timings on token ids."""
    import numpy as np
    import onnxruntime as ort

    res: dict[str, Any] = {"threads": THREADS, "load_before": load_average()}
    t = time.perf_counter()
    enc_path, rr_path = export_int8(root)
    res["export_s"] = time.perf_counter() - t
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    opts.inter_op_num_threads = 1

    def feeds(batch: int, length: int) -> dict[str, Any]:
        ids = _ids(batch, length).numpy().astype(np.int64)
        return {"input_ids": ids, "attention_mask": np.ones_like(ids)}

    enc = ort.InferenceSession(str(enc_path), opts, providers=["CPUExecutionProvider"])
    enc.run(None, feeds(1, 8))
    q = feeds(1, QUERY_TOKENS)
    res["query_encode"] = medians(lambda: enc.run(None, q), reps)
    log(f"int8 query encoding: {res['query_encode']}")
    doc = feeds(4, PASSAGE_TOKENS)
    res["encode_chunks"] = {"batch": 4, "tokens": 4 * PASSAGE_TOKENS, **medians(lambda: enc.run(None, doc), max(1, reps - 1))}
    log(f"int8 encoder, 4 chunks of {PASSAGE_TOKENS} tokens: {res['encode_chunks']}")
    rr = ort.InferenceSession(str(rr_path), opts, providers=["CPUExecutionProvider"])
    rr.run(None, feeds(1, 8))
    res["pairs"] = {}
    for length in (*PAIR_LENGTHS, QUERY_TOKENS + PASSAGE_TOKENS):
        f = feeds(1, length)  # dynamic int8: one pair per call, as OnnxCrossEncoderReranker does
        m = medians(lambda f=f: rr.run(None, f), reps if length < 1024 else max(1, reps - 1))
        res["pairs"][str(length)] = {"batch": 1, **m}
        log(f"int8 pairs at {length} tokens: {res['pairs'][str(length)]}")
    res["load_after"] = load_average()
    return res


# -- entry points ---------------------------------------------------------------------------
def run(parts: list[str], args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Run ``parts`` (each in its own temp dir), merging into and rewriting ``args.json``."""
    results: dict[str, Any] = {}
    path = Path(args.json)
    if path.is_file():
        results = json.loads(path.read_text())
    for part in parts:
        root = Path(tempfile.mkdtemp(prefix=f"m3r-prod-{part}-", dir=args.workdir))
        try:
            t = time.perf_counter()
            if part == "torch":
                depths = tuple(int(d) for d in args.e2e_depths.split(","))
                results["torch"] = run_torch(root, args.reps, depths)
            elif part == "onnx":
                results["onnx"] = run_onnx(root, args.reps)
            elif part == "multivector":
                from bench_production_maxsim import run_multivector

                results["multivector"] = run_multivector(
                    root, args.mv_chunks, args.mv_tokens, QUERY_TOKENS, max(args.reps, 10)
                )
            else:
                raise SystemExit(f"unknown part {part!r}")
            results[part]["wall_s"] = time.perf_counter() - t
            results[part]["command"] = command
        finally:
            shutil.rmtree(root, ignore_errors=True)
        path.write_text(json.dumps(results, indent=2))
        log(f"{part} done; results in {path}")
    return results


def add_arguments(ap: argparse.ArgumentParser, prefix: str = "") -> None:
    """This benchmark's options (``prefix`` namespaces them inside ``run_all.py``)."""
    ap.add_argument(f"--{prefix}parts", dest="parts", default="torch,onnx,multivector")
    ap.add_argument(f"--{prefix}reps", dest="reps", type=int, default=3)
    ap.add_argument(f"--{prefix}e2e-depths", dest="e2e_depths", default="10,20", help="rerank depths of the timed Retriever.search calls")
    ap.add_argument(f"--{prefix}mv-chunks", dest="mv_chunks", type=int, default=2000)
    ap.add_argument(f"--{prefix}mv-tokens", dest="mv_tokens", type=int, default=200)
    ap.add_argument(f"--{prefix}json", dest="json", default="/tmp/m3r-production.json")
    ap.add_argument(f"--{prefix}workdir", dest="workdir", default=None, help="where the random models go (default: a temp dir)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    args = ap.parse_args(argv)
    command = "python tests/benchmarks/bench_production.py " + " ".join(sys.argv[1:] if argv is None else argv)
    run(args.parts.split(","), args, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
