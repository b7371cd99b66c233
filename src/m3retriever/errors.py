"""One exception hierarchy for m3retriever.

Every error the library raises on purpose derives from :class:`M3RetrieverError`, so callers can
catch one type. Messages name the problem *and* the fix.
"""

from __future__ import annotations

__all__ = [
    "M3RetrieverError",
    "ConfigError",
    "InputError",
    "ModelNotFoundError",
    "MissingDependencyError",
    "BrokenDependencyError",
    "StoreError",
    "StoreInUseError",
    "CollectionNotFoundError",
    "DamagedSnapshotError",
    "FingerprintMismatchError",
    "PluginError",
]


class M3RetrieverError(Exception):
    """Base class of every error raised by m3retriever."""


class ConfigError(M3RetrieverError, ValueError):
    """A configuration value is invalid or inconsistent."""


class InputError(M3RetrieverError, ValueError):
    """Input data (documents, queries, filters, files) is invalid."""


class ModelNotFoundError(M3RetrieverError):
    """A model could not be loaded from the hub or a local path."""


class MissingDependencyError(M3RetrieverError, ImportError):
    """An optional dependency is not installed; the message names the pip extra."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the '{package}' package, which is not installed. "
            f"Install it with: pip install 'm3retriever[{extra}]'"
        )
        self.package = package
        self.extra = extra


class BrokenDependencyError(M3RetrieverError, ImportError):
    """An optional dependency is installed but fails to import (usually a version clash); the
    message names the versions installed and the versions known to work."""


class StoreError(M3RetrieverError):
    """The vector store failed or is in an unexpected state."""


class StoreInUseError(StoreError):
    """Another process holds the embedded store's lock."""


class CollectionNotFoundError(StoreError, InputError):
    """The collection (or the store holding it) does not exist; nothing was created.

    The one message for it, wherever it is found: the collection, where it was looked for, and
    the fix.
    """

    def __init__(self, name: str, where: object) -> None:
        super().__init__(f"no collection {name!r} at {where}: ingest documents first (or check --location / --collection)")
        self.name = name
        self.where = where


class DamagedSnapshotError(InputError):
    """A snapshot file is damaged, truncated or crafted; it was refused before anything changed."""


class FingerprintMismatchError(StoreError):
    """The collection was built with a different encoder than the one configured."""


class PluginError(M3RetrieverError):
    """A plugin is missing, duplicated or misbehaves."""
