"""The ``collection`` and ``model`` groups, and the commands of ``collection`` that live
here: ``info`` and ``renormalize`` (``copy``, ``snapshot``, ``restore``: :mod:`m3retriever.cli.transfer`;
``warm-up``: :mod:`m3retriever.cli.warm_up`; ``defaults``: :mod:`m3retriever.cli.defaults`;
``add-branch``: :mod:`m3retriever.finetune.cli`)."""

from __future__ import annotations

import argparse
import json

from m3retriever.cli.registry import CommandLine, command_config
from m3retriever.display import out as _out

__all__ = ["register_commands"]

RENORMALIZE = (
    "BM25 normalises each chunk by the collection's average length as it was when the "
    "chunk was written. Recount the lengths from the stored texts and rewrite every BM25 "
    "vector with the current average (no model runs; other vectors are copied). Also "
    "upgrades a collection built before the BM25 parameters were recorded. With "
    "--tenant, that tenant's chunks with the tenant's own average; without, on a "
    "collection partitioned by tenant, each tenant's chunks with its own average."
)


def register_commands(cli: CommandLine) -> None:
    """Declare the ``collection`` and ``model`` groups, ``collection info`` and ``collection renormalize``."""
    cli.group(
        "collection",
        help="work on a stored collection: info, copy, snapshot, restore, renormalize, add-branch, warm-up, defaults",
        description="Operations on one stored collection as a whole (see each command's --help).",
    )
    cli.group(
        "model",
        help="model work: fine-tune a dense model, export a checkpoint to ONNX",
        description="Make models for a collection: fine-tune a dense model on its data, export a checkpoint to ONNX.",
    )
    cli.command(
        "collection info",
        cmd_info,
        help="counts, models, sizes and the settings in force of the collection",
        options=("store", "model", "tenant"),  # the models and counts of that profile and tenant
        arguments=lambda p: p.add_argument("--json", action="store_true", help="print JSON"),
    )
    cli.command(
        "collection renormalize",
        cmd_renormalize,
        help="recount document lengths and rewrite the BM25 vectors with the exact average",
        description=RENORMALIZE,
        options=("store", "model", "tenant"),  # the profile decides the BM25 settings it checks
    )


def cmd_info(args: argparse.Namespace) -> int:
    from m3retriever.retriever import Retriever

    with Retriever(command_config(args), must_exist=True) as r:
        info = r.info()
    if args.json:
        _out(json.dumps(info, indent=2, default=str))
    else:
        in_force = info.pop("settings", {})
        for key, value in info.items():
            _out(f"{key:16} {json.dumps(value, default=str) if isinstance(value, (dict, list)) else value}")
        _out("settings in force (where each comes from: explicit, collection, profile, default):")
        for name, item in in_force.items():
            _out(f"  {name:24} {json.dumps(item['value'], default=str):40} {item['source']}")
    return 0


def cmd_renormalize(args: argparse.Namespace) -> int:
    from m3retriever.maintenance.renormalize import renormalize
    from m3retriever.opening import open_collection

    # --tenant without --tenant-field follows the tenant field recorded with the collection.
    tenant, args.tenant = args.tenant, None
    cfg = command_config(args)
    with open_collection(cfg) as collection:
        report = renormalize(collection, tenant=tenant)
    if not report.after:
        _out(f"{cfg.collection}: no BM25 branch or no such collection; nothing to do")
        return 0
    where = cfg.collection + (f" tenant {report.tenant!r}" if report.tenant is not None else "")
    for branch, stats in report.after.items():
        was = report.before.get(branch)
        before = f"{was.average:.2f} over {was.count} chunks" if was and was.average else "not recorded"
        _out(f"{where} {branch}: average {stats.average or 0:.2f} terms over {stats.count} chunks (was {before})")
    if report.tenants:
        _out(f"{len(report.tenants)} tenants' chunks rewritten with their own tenant's average")
    upgraded = "; fingerprint upgraded" if report.upgraded else ""
    _out(f"rewrote {report.chunks} chunks in {report.seconds:.1f}s{upgraded}")
    return 0
