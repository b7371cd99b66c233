"""Optimised ONNX graphs kept on disk, so that a new process skips graph optimisation.

onnxruntime optimises a graph each time a session is created (``ORT_ENABLE_ALL``: constant
folding, node fusions, the CPU's blocked layouts): about 0.2 s for each of the small
profile's int8 models on 2 cores, paid by every command-line search. The first session of a
model writes its optimised graph here (``SessionOptions.optimized_model_filepath``, to a
temporary file moved into place, so a reader never sees half a file); later processes load
that graph with optimisation off (docs/benchmarks.md, "Cold command-line search"). A writer
killed with SIGKILL leaves its temporary file; the next writer removes such files once their
process is gone and they are ten minutes old (:func:`remove_abandoned`).

The file name is keyed by what decides the optimised graph: the model file (its resolved
path, size and modification time, as Python keys its bytecode cache: hashing 33 MB of model
on every search would cost a third of what the cache saves), the onnxruntime version and the
CPU (the blocked layouts are specific to the machine's instruction set). CPU sessions only;
models of 1 GiB or more are left out (a graph over 2 GiB cannot be written as one file).

The folder is ``$M3R_ONNX_CACHE`` when set (``off`` turns the cache off), else
``$XDG_CACHE_HOME/m3retriever/onnx-optimized`` (``~/.cache/...``); deleting it is safe.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import re
import time
import uuid
from pathlib import Path

__all__ = ["CACHE_ENV", "cache_dir", "optimized_path", "temporary_path", "remove_abandoned"]

CACHE_ENV = "M3R_ONNX_CACHE"
MAX_CACHED_BYTES = 1 << 30


def cache_dir() -> Path | None:
    """The folder of optimised graphs (``None``: the cache is off)."""
    raw = os.environ.get(CACHE_ENV, "").strip()
    if raw.lower() in {"off", "0", "no", "false"}:
        return None
    if raw:
        return Path(raw).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "m3retriever" / "onnx-optimized"


@functools.lru_cache(maxsize=1)
def _cpu() -> str:
    """The machine and its CPU's feature flags (what the optimised layouts depend on)."""
    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    flags = line.split(":", 1)[-1].strip()
                    break
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()} {flags}"


def optimized_path(model_path: Path, level: str) -> Path | None:
    """Where the optimised graph of ``model_path`` (at optimisation ``level``) is kept, or
    ``None`` when it is not cached (cache off, model too large or unreadable)."""
    folder = cache_dir()
    if folder is None:
        return None
    try:
        stat = model_path.stat()
    except OSError:
        return None
    if stat.st_size >= MAX_CACHED_BYTES:
        return None
    import onnxruntime as ort

    key = json.dumps([str(model_path.resolve()), stat.st_size, stat.st_mtime_ns, ort.__version__, level, _cpu()])
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return folder / f"{model_path.parent.name}-{model_path.stem}-{digest}.onnx"


def temporary_path(final: Path) -> Path:
    """A fresh file name beside ``final`` to write to before moving it into place."""
    return final.with_name(f".{final.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp.onnx")


_TEMPORARY = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}\.tmp\.onnx$")
ABANDONED_AFTER_S = 600.0
"""A temporary graph whose writer is gone is removed once it is this old (a process id can be
reused, and a slow writer on a busy machine takes seconds)."""


def remove_abandoned(folder: Path, now: float | None = None) -> list[Path]:
    """Remove the temporary graphs in ``folder`` left by writers that no longer run (a process
    killed with SIGKILL never reaches its own clean-up), once :data:`ABANDONED_AFTER_S` old.

    Only files named as :func:`temporary_path` names them are touched; returns those removed.
    """
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for path in entries:
        match = _TEMPORARY.match(path.name)
        if match is None or _running(int(match.group(1))):
            continue
        try:
            if now - path.lstat().st_mtime >= ABANDONED_AFTER_S and path.is_file():
                path.unlink()
                removed.append(path)
        except OSError:
            continue
    return removed


def _running(pid: int) -> bool:
    """Whether a process with this id runs (one of another user's counts as running)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True
