"""The ``collection copy``, ``collection snapshot`` and ``collection restore`` commands: move a
collection between stores without re-encoding it, and keep or bring back an embedded
collection as one file."""

from __future__ import annotations

import argparse
from dataclasses import replace

from m3retriever.cli.index_options import add_index_arguments, index_overrides
from m3retriever.cli.registry import CommandLine, command_config
from m3retriever.config import load_config, refuse_tenant
from m3retriever.display import out as _out

__all__ = ["register_commands"]


COPY = (
    "Stream every point with all its vectors and payload, and the collection's fingerprint, "
    "BM25 length totals and saved search defaults, to another store. Idempotent (point ids "
    "are stable) and resumable: run it again after an interruption to continue. The counts "
    "and a sample of vectors are verified at the end. The target is created with the "
    "source's index settings, or with those given (--quantization, --hnsw-m...): a way "
    "to quantize a collection or change its HNSW graph without re-encoding it."
)


def register_commands(cli: CommandLine) -> None:
    """Declare ``collection copy``, ``collection snapshot`` and ``collection restore``."""
    cli.command(
        "collection copy",
        _cmd_copy,
        help="copy a collection to another store (embedded, :memory: or a server) without re-encoding",
        description=COPY,
        arguments=_copy_arguments,
    )
    cli.command(
        "collection snapshot",
        _cmd_snapshot,
        help="write an embedded collection to one snapshot file",
        options=("store",),
        arguments=lambda p: p.add_argument("path", help="snapshot file to write"),
    )
    cli.command(
        "collection restore",
        _cmd_restore,
        help="restore a snapshot file into an embedded store",
        options=("store",),
        arguments=_restore_arguments,
    )


def _copy_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML configuration file (its collection and api_key are used)")
    p.add_argument("--from", dest="source", required=True, help="source store: a directory or a Qdrant URL")
    p.add_argument("--to", dest="target", required=True, help="target store: a directory or a Qdrant URL")
    p.add_argument("--collection", help="collection to copy")
    p.add_argument("--to-collection", help="name in the target (default: the same)")
    p.add_argument("--from-api-key", help="API key of a source server (default: the configuration's)")
    p.add_argument("--to-api-key", help="API key of a target server (default: the configuration's)")
    p.add_argument("--batch", type=int, default=512, help="points per page (default 512)")
    p.add_argument("--no-optimize", action="store_true", help="do not build the target's indexes at the end")
    add_index_arguments(p, expected_chunks=False)  # default: the source's


def _restore_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="snapshot file to read")
    p.add_argument("--overwrite", action="store_true", help="replace a collection of that name holding points")


def _cmd_copy(args: argparse.Namespace) -> int:
    from m3retriever.maintenance.copy import copy_collection
    from m3retriever.opening import open_collection
    from m3retriever.store import open_store
    from m3retriever.store.collection_names import check_name

    given = {k: v for k, v in index_overrides(args).items() if v is not None}
    cfg = load_config(args.config, collection=args.collection, **given)  # converted and checked there
    refuse_tenant(cfg, "copy")
    if args.to_collection is not None:  # before either store is opened
        check_name(args.to_collection, "target collection name")
    source_config = replace(cfg, location=args.source, api_key=args.from_api_key or cfg.api_key)
    with open_collection(source_config, must_exist=True) as source:
        target = open_store(args.target, api_key=args.to_api_key or cfg.api_key)
        try:
            report = copy_collection(
                source,
                target,
                to_collection=args.to_collection,
                batch=args.batch,
                optimize=not args.no_optimize,
                index_settings={k: getattr(cfg, k) for k in given},
            )
        finally:
            target.close()
    resumed = " (resumed)" if report.resumed else ""
    _out(
        f"copied {report.points} points{resumed} of {cfg.collection!r} to {report.collection!r} in "
        f"{report.seconds:.1f}s ({report.points_per_second:,.0f} points/s); counts {report.source_count} = "
        f"{report.target_count}, {report.verified} points verified; indexes built in {report.optimize_seconds:.1f}s"
    )
    return 0


def _cmd_snapshot(args: argparse.Namespace) -> int:
    from m3retriever.maintenance.snapshot import check_embedded, snapshot_collection
    from m3retriever.opening import open_collection

    cfg = command_config(args)
    refuse_tenant(cfg, "snapshot")
    check_embedded(cfg.location)  # before anything is opened
    with open_collection(cfg, must_exist=True) as collection:
        report = snapshot_collection(collection, args.path)
    _out(f"snapshot of {report.collection!r}: {report.points} points, {report.bytes:,} bytes in {report.path} ({report.seconds:.1f}s)")
    return 0


def _cmd_restore(args: argparse.Namespace) -> int:
    from m3retriever.maintenance.snapshot import restore_snapshot

    cfg = command_config(args)
    refuse_tenant(cfg, "restore")
    collection = args.collection or None  # the snapshot's own name unless one is given
    report = restore_snapshot(cfg.location, args.path, collection=collection, overwrite=args.overwrite)
    _out(f"restored {report.collection!r}: {report.points} points from {report.path} ({report.seconds:.1f}s)")
    return 0
