"""Command-line options for a new collection's index settings (``--expected-chunks``,
``--quantization``, ``--vectors-on-disk``, ``--payload-on-disk``, ``--hnsw-m``,
``--hnsw-ef-construct``) and their mapping to :class:`~m3retriever.config.Config` settings.

The values are handed to :func:`~m3retriever.config.load_config` as given, the way ``M3R_*``
variables are: they are converted and checked there, by the same code and with the same
messages as a TOML file's or an environment variable's. An option left out is unset, so the
configuration file, the environment, and for an existing collection its own settings apply.
"""

from __future__ import annotations

import argparse
from typing import Any

from m3retriever.config.sizing import QUANTIZATIONS
from m3retriever.store.index_settings import INDEX_SETTINGS

__all__ = ["INDEX_OPTIONS", "add_index_arguments", "index_overrides"]

INDEX_OPTIONS = ("expected_chunks", *INDEX_SETTINGS)
"""The :class:`~m3retriever.config.Config` settings these options set (``--expected-chunks``
sets ``expected_chunks``...)."""


def add_index_arguments(p: argparse.ArgumentParser, *, expected_chunks: bool = True) -> None:
    """Add the index-settings options to a command that may create a collection.

    Args:
        p: The command's parser.
        expected_chunks: Also add ``--expected-chunks`` (a copy knows its size: it has not).
    """
    g = p.add_argument_group(
        "index settings of a new collection",
        "fixed when the collection is created; for an existing one, a value other than its own "
        "is an error (leave them out to use the collection's)",
    )
    if expected_chunks:
        g.add_argument(
            "--expected-chunks",
            metavar="N",
            help="chunks the collection is expected to hold: picks the settings below when they are unset "
            "(quantized, vectors and payloads on disk from 250,000)",
        )
    g.add_argument(
        "--quantization",
        metavar="{" + ",".join(QUANTIZATIONS) + "}",
        help="compressed copy of the dense vectors searched first: none, scalar (int8), binary (1 bit), turbo (4 bits)",
    )
    g.add_argument(
        "--vectors-on-disk",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="memory-map the float vectors and sparse indexes from disk",
    )
    g.add_argument(
        "--payload-on-disk",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep payloads (chunk texts) on disk",
    )
    g.add_argument("--hnsw-m", metavar="M", help="HNSW graph degree (4 to 128; default 16)")
    g.add_argument("--hnsw-ef-construct", metavar="EF", help="HNSW build beam (4 to 4096; default 128)")


def index_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The options given, as ``load_config`` overrides (``None``: not given, so unset)."""
    return {name: getattr(args, name, None) for name in INDEX_OPTIONS}
