"""A process-wide cache of loaded models: each is loaded once, under a lock."""

from __future__ import annotations

import threading
from typing import Callable, Generic, Hashable, TypeVar

__all__ = ["SharedModels"]

V = TypeVar("V")


class SharedModels(Generic[V]):
    """Loaded models by key (path, device, options...), shared by every encoder instance."""

    def __init__(self) -> None:
        self._items: dict[Hashable, V] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], V]) -> V:
        """Return the model for ``key``, calling ``load()`` the first time only."""
        with self._lock:
            if key not in self._items:
                self._items[key] = load()
            return self._items[key]

    def keys(self) -> list[Hashable]:
        """Keys of the models loaded so far."""
        with self._lock:
            return list(self._items)
