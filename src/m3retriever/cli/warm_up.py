"""The ``collection warm-up`` command: read an embedded collection's vectors and indexes into the page
cache (:func:`~m3retriever.maintenance.warm_up.warm_up`), through the store alone, no models."""

from __future__ import annotations

import argparse

from m3retriever.cli.registry import CommandLine, command_config
from m3retriever.display import out as _out

__all__ = ["register_commands"]


def register_commands(cli: CommandLine) -> None:
    """Declare ``collection warm-up``."""
    cli.command(
        "collection warm-up",
        _cmd_warm_up,
        help="read an embedded collection's vectors and indexes into the page cache",
        description=(
            "Read every vector storage and vector index file of the collection once (with "
            "--payloads, its payloads too) so that the operating system keeps them in its page cache: the first "
            "queries of a process that opens the collection afterwards do not wait on disk. "
            "Nothing is written. A Qdrant server keeps its own caches (0 bytes read)."
        ),
        options=("store",),
        arguments=lambda p: p.add_argument(
            "--payloads", action="store_true", help="also the payloads (the hits' texts are read from them)"
        ),
    )


def _cmd_warm_up(args: argparse.Namespace) -> int:
    from m3retriever.maintenance.warm_up import warm_up
    from m3retriever.opening import open_collection

    with open_collection(command_config(args), must_exist=True) as collection:
        report = warm_up(collection, payloads=args.payloads)
    read = report.bytes
    _out(f"warmed up {report.collection!r}: read {read:,} bytes ({read / 2**20:.1f} MiB) in {report.seconds:.2f}s")
    return 0
