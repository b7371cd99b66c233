"""Import optional dependencies with an error that names the pip extra, or, when an installed
dependency fails to import, the versions known to work."""

from __future__ import annotations

import importlib
import importlib.metadata
from types import ModuleType

from m3retriever.errors import BrokenDependencyError, MissingDependencyError

__all__ = ["require", "KNOWN_GOOD"]

KNOWN_GOOD: dict[str, tuple[str, ...]] = {
    # FlagEmbedding's package __init__ imports transformers.modeling_attn_mask_utils, which
    # transformers 5.24 removed.
    "FlagEmbedding": ("FlagEmbedding==1.4.2", "transformers>=4.44,<5.24", "sentence-transformers>=5.0"),
    "transformers": ("transformers>=4.44,<5.24",),
    "sentence_transformers": ("sentence-transformers>=5.0", "transformers>=4.44,<5.24"),
}
"""Versions known to work together, by module, quoted when an installed module fails to import."""


def _installed(requirements: tuple[str, ...]) -> str:
    names = [r.split("=")[0].split("<")[0].split(">")[0] for r in requirements]
    found = []
    for name in names:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def require(module: str, *, package: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module``, or raise an error that says how to fix the installation.

    Args:
        module: Dotted module name to import.
        package: The pip distribution that provides it.
        extra: The m3retriever extra that installs it.
        purpose: What needs it, for the error message.

    Returns:
        The imported module.

    Raises:
        MissingDependencyError: ``module`` is not installed (names ``extra``).
        BrokenDependencyError: ``module`` is installed but its import fails (names the
            installed versions and those known to work).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        if isinstance(exc, ModuleNotFoundError) and exc.name in (module, top):
            raise MissingDependencyError(package, extra, purpose) from exc
        good = KNOWN_GOOD.get(top, (package,))
        raise BrokenDependencyError(
            f"{purpose} needs '{package}', which is installed but fails to import ({exc}). "
            f"This is usually a version clash between its dependencies. Installed: "
            f"{_installed(good)}. Known to work: {', '.join(good)}; install them with: "
            f"pip install {' '.join(repr(g) for g in good)} (or use the project's constraints.txt)"
        ) from exc
