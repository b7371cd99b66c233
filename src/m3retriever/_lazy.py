"""Lazy public names (PEP 562), written once for ``m3retriever`` and ``m3retriever.plugin``."""

from __future__ import annotations

import importlib
import sys
import warnings

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (kept cheap: import m3retriever loads this)
if TYPE_CHECKING:
    from typing import Any, Callable, Mapping, Sequence


def exports(
    module: str, public: Mapping[str, str], names: Sequence[str], moved: Mapping[str, str] | None = None
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``module``.

    Args:
        module: The module's ``__name__``.
        public: Each public name -> the module that defines it (imported on first use, then
            kept on ``module`` so later lookups skip ``__getattr__``).
        names: The module's ``__all__`` (what ``dir()`` shows besides its dunders).
        moved: Names exported before -> where they live now: they resolve with a
            ``DeprecationWarning`` naming that place.
    """
    moved = moved or {}

    def __getattr__(name: str) -> Any:
        if name in public:
            value = getattr(importlib.import_module(public[name]), name)
            setattr(sys.modules[module], name, value)
            return value
        if name in moved:
            where = moved[name]
            warnings.warn(
                f"{module}.{name} is deprecated and will be removed from the top-level package "
                f"in the next release; import it from {where} instead (from {where} import {name})",
                DeprecationWarning,
                stacklevel=2,
            )
            return getattr(importlib.import_module(where), name)
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        own = vars(sys.modules[module])
        return sorted({n for n in own if n.startswith("__")} | set(names))

    return __getattr__, __dir__
