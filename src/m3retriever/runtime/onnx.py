"""onnxruntime helpers: a process-wide session cache, provider choice, batch-invariance check
and padded model inputs (used by the ONNX dense encoder and the ONNX cross-encoder)."""

from __future__ import annotations

import functools
import logging
import mmap
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from m3retriever.errors import ConfigError
from m3retriever.runtime.cache import SharedModels
from m3retriever.runtime.onnx_cache import optimized_path, remove_abandoned, temporary_path

if TYPE_CHECKING:  # pragma: no cover
    import onnxruntime
    from tokenizers import Encoding as TokEncoding

__all__ = [
    "MAX_POSITIONS",
    "usable_cpu_count",
    "get_onnx_session",
    "is_dynamically_quantized",
    "pad_encodings",
    "clamp_max_length",
    "run_session",
    "run_outputs",
]

logger = logging.getLogger(__name__)

MAX_POSITIONS = 512
"""Position limit of the BERT-style models used here; ``max_length`` is clamped to it."""

_SESSIONS: SharedModels["onnxruntime.InferenceSession"] = SharedModels()


def usable_cpu_count() -> int:
    """CPUs this process may run on (its affinity mask), falling back to ``os.cpu_count()``.

    ``os.cpu_count()`` reports the host's CPUs even when the process is pinned to fewer
    (containers, ``taskset``); oversubscribing onnxruntime's thread pool is much slower.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _providers(device: str) -> list[str]:
    """Pick onnxruntime execution providers for ``device`` (``auto``, ``cpu``, ``cuda[:n]``)."""
    import onnxruntime as ort
    available = set(ort.get_available_providers())
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "auto":
        if "CUDAExecutionProvider" in available:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in available:
            raise ConfigError(
                f"device={device!r} was requested, but this onnxruntime build has no CUDA "
                "provider. Install 'onnxruntime-gpu' or use device='cpu'."
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise ConfigError(f"Unknown device {device!r}: use 'auto', 'cpu' or 'cuda[:N]'.")


def get_onnx_session(model_path: Path, device: str = "auto") -> "onnxruntime.InferenceSession":
    """Return a process-wide cached ``InferenceSession`` for ``model_path``.

    Sessions are created once per (path, providers) and shared: ``InferenceSession.run`` is
    thread-safe. The intra-op thread pool uses every CPU the process may run on.

    Args:
        model_path: The ``.onnx`` file.
        device: ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.

    Returns:
        The session.
    """
    import onnxruntime as ort
    providers = _providers(device)
    key = (str(Path(model_path).resolve()), tuple(providers))

    def load() -> "onnxruntime.InferenceSession":
        provider_options: list[Any] = list(providers)
        if device.startswith("cuda:"):
            provider_options = [
                ("CUDAExecutionProvider", {"device_id": int(device.split(":", 1)[1])}),
                "CPUExecutionProvider",
            ]
        logger.info("Loading ONNX model %s (providers %s)", key[0], providers)
        if providers == ["CPUExecutionProvider"]:
            cached = optimized_path(Path(key[0]), "all")
            if cached is not None:
                return _cached_session(Path(key[0]), cached, provider_options)
        return ort.InferenceSession(key[0], sess_options=_session_options(), providers=provider_options)

    return _SESSIONS.get(key, load)


def _session_options(optimize: bool = True, save_to: Path | None = None) -> "onnxruntime.SessionOptions":
    """Session options: every CPU the process may use, no spinning threads, every graph
    optimisation (``optimize``) or none (a graph optimised before), the optimised graph
    written to ``save_to``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = usable_cpu_count()
    options.inter_op_num_threads = 1
    level = ort.GraphOptimizationLevel
    options.graph_optimization_level = level.ORT_ENABLE_ALL if optimize else level.ORT_DISABLE_ALL
    # No busy-waiting between calls: a query runs several small sessions back to back (dense
    # encoder, then the cross-encoder) on few cores, and threads spinning in one pool starve
    # the next (dense query encoding: 82 -> 26 ms p50 on 2 cores, docs/benchmarks.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if save_to is not None:
        options.optimized_model_filepath = str(save_to)
        options.log_severity_level = 3  # not the warning that the graph suits this CPU only
    return options


def _cached_session(model: Path, cached: Path, providers: list[Any]) -> "onnxruntime.InferenceSession":
    """A CPU session of ``model`` from its optimised graph at ``cached``, written there first
    when missing (moved into place whole); a cached graph that does not load is written again."""
    import onnxruntime as ort

    if cached.is_file():
        try:
            return ort.InferenceSession(str(cached), sess_options=_session_options(optimize=False), providers=providers)
        except Exception as exc:  # a damaged file: rebuilt below
            logger.warning("optimised graph %s does not load (%s); writing it again", cached, exc)
    tmp = temporary_path(cached)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        remove_abandoned(cached.parent)
        session = ort.InferenceSession(str(model), sess_options=_session_options(save_to=tmp), providers=providers)
        os.replace(tmp, cached)
        return session
    except Exception as exc:  # an unwritable cache folder: run without it
        logger.info("not caching the optimised graph of %s: %s", model, exc)
        return ort.InferenceSession(str(model), sess_options=_session_options(), providers=providers)
    finally:
        tmp.unlink(missing_ok=True)


@functools.lru_cache(maxsize=1)
def _run_options() -> "onnxruntime.RunOptions":
    import onnxruntime as ort

    options = ort.RunOptions()
    # Give the arena's unused chunks back after each run: otherwise the arena keeps the peak of
    # the largest batch (or of many concurrent requests) for the life of the process.
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


def run_session(session: "onnxruntime.InferenceSession", output: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """Run ``session`` for one output, shrinking the memory arena afterwards.

    Args:
        session: The session.
        output: Name of the output to compute.
        feeds: Model inputs by name.

    Returns:
        The output array.
    """
    (result,) = session.run([output], feeds, _run_options())
    return np.asarray(result)


def run_outputs(
    session: "onnxruntime.InferenceSession", outputs: Sequence[str], feeds: dict[str, np.ndarray]
) -> list[np.ndarray]:
    """Run ``session`` once for several outputs (one forward pass), shrinking the arena after.

    Args:
        session: The session.
        outputs: Names of the outputs to compute.
        feeds: Model inputs by name.

    Returns:
        The output arrays, in the order of ``outputs``.
    """
    return [np.asarray(r) for r in session.run(list(outputs), feeds, _run_options())]


def is_dynamically_quantized(model_path: Path) -> bool:
    """True when the ONNX graph uses dynamic int8 quantization (``DynamicQuantizeLinear``).

    Such graphs quantize activations with one scale per *tensor*, so a text's output depends
    on the other texts (and the padding) in its batch: batch-invariant results need one
    sequence per run. On CPU that is also the fastest way to run them (measured: 33 texts/s
    unbatched vs 25 at batch 32 for bge-small int8 on 2 cores).
    """
    stat = os.stat(model_path)
    return _has_dynamic_quantization(str(model_path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _has_dynamic_quantization(model_path: str, size: int, mtime_ns: int) -> bool:
    """Reads the file once per (path, size, modification time): a scan of tens of MB is
    worth skipping on every search."""
    with open(model_path, "rb") as fh:
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return data.find(b"DynamicQuantizeLinear") != -1


def pad_encodings(
    encodings: Sequence["TokEncoding"], pad_id: int = 0
) -> dict[str, np.ndarray]:
    """Right-pad tokenized texts to the longest one and build int64 model inputs.

    Args:
        encodings: ``tokenizers`` encodings (not padded).
        pad_id: The padding token id.

    Returns:
        ``input_ids``, ``attention_mask`` and ``token_type_ids`` arrays of shape ``(n, longest)``.
    """
    longest = max(len(e.ids) for e in encodings)
    n = len(encodings)
    input_ids = np.full((n, longest), pad_id, dtype=np.int64)
    attention_mask = np.zeros((n, longest), dtype=np.int64)
    token_type_ids = np.zeros((n, longest), dtype=np.int64)
    for row, enc in enumerate(encodings):
        length = len(enc.ids)
        input_ids[row, :length] = enc.ids
        attention_mask[row, :length] = 1
        token_type_ids[row, :length] = enc.type_ids
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_type_ids": token_type_ids,
    }


def clamp_max_length(max_length: int, what: str) -> int:
    """Validate ``max_length`` and clamp it to the models' 512 positions."""
    if max_length < 8:
        raise ConfigError(f"{what}: max_length must be at least 8 tokens, got {max_length}")
    if max_length > MAX_POSITIONS:
        logger.debug("%s: max_length %d clamped to %d", what, max_length, MAX_POSITIONS)
    return min(max_length, MAX_POSITIONS)
