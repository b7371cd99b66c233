"""A collection's index settings by its expected size: the defaults and the value checks.

:class:`~m3retriever.config.Config` declares the settings (``expected_chunks``,
``quantization``, ``vectors_on_disk``, ``payload_on_disk``, ``hnsw_m``,
``hnsw_ef_construct``); this module says what an unset one becomes for a new collection and
which values are accepted. Why the threshold is where it is: docs/configuration.md, "Index
settings by size", from the measurements in docs/benchmarks.md, "Store scale".
"""

from __future__ import annotations

import numbers
from typing import Any

from m3retriever.errors import ConfigError

__all__ = ["QUANTIZED_FROM", "QUANTIZATIONS", "auto_index_settings", "quantized", "check_index_values"]

QUANTIZED_FROM = 250_000
"""``expected_chunks`` from which a new collection is quantized by default."""

QUANTIZATIONS = ("none", "scalar", "binary", "turbo")

# name -> (lowest, highest)
_INTS = {"expected_chunks": (1, 10**12), "hnsw_m": (4, 128), "hnsw_ef_construct": (4, 4096)}


def auto_index_settings(expected_chunks: int | None) -> dict[str, Any]:
    """The index settings a new collection of ``expected_chunks`` chunks gets by default.

    Below :data:`QUANTIZED_FROM` chunks (or unknown): float vectors in RAM, as always. From
    it: int8 scalar quantization in RAM, float vectors and payloads on disk (same recall after
    rescoring, a fraction of the memory).
    """
    big = (expected_chunks or 0) >= QUANTIZED_FROM
    return {"quantization": "scalar" if big else "none", "vectors_on_disk": big, "payload_on_disk": big}


def quantized(quantization: str | None, expected_chunks: int | None) -> bool:
    """Whether a new collection quantizes: its own setting, else the default by size."""
    kind = quantization or auto_index_settings(expected_chunks)["quantization"]
    return bool(kind != "none")


def check_index_values(config: Any) -> None:
    """Type and range checks of a configuration's index settings (``None``: unset).

    Raises:
        ConfigError: naming the setting, the accepted values and the value given.
    """
    if config.quantization is not None and config.quantization not in QUANTIZATIONS:
        raise ConfigError(f"quantization must be 'none', 'scalar', 'binary' or 'turbo', got {config.quantization!r}")
    for name in ("vectors_on_disk", "payload_on_disk"):
        value = getattr(config, name)
        if value is not None and not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
    for name, (low, high) in _INTS.items():
        value = getattr(config, name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= int(value) <= high:
            raise ConfigError(f"{name} must be a whole number between {low} and {high:,}, got {value!r:.40}")
