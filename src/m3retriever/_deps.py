"""Import optional dependencies with an error that names the pip extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from m3retriever.errors import MissingDependencyError


def require(module: str, *, package: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming ``extra``.

    Args:
        module: Dotted module name to import.
        package: The pip distribution that provides it.
        extra: The m3retriever extra that installs it.
        purpose: What needs it, for the error message.

    Returns:
        The imported module.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised by a dedicated test
        raise MissingDependencyError(package, extra, purpose) from exc
