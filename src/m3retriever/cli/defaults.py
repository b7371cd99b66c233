"""The ``collection defaults`` commands: show, set and clear a collection's own search defaults
(:mod:`m3retriever.config.saved`) without running ``tune``.

It opens the store only, not the models: it is quick, and it can repair a collection whose
saved defaults were corrupted by hand (which stops a retriever from opening it).
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Callable

from m3retriever.cli.registry import CommandLine, command_config
from m3retriever.display import out as _out
from m3retriever.errors import ConfigError, InputError

__all__ = ["register_commands"]


def register_commands(cli: CommandLine) -> None:
    """Declare ``collection defaults show|set|clear``."""
    from m3retriever.config.saved import SAVABLE

    cli.group(
        "collection defaults",
        help="show, set or clear the collection's own search defaults",
        description=(
            "A collection can keep search defaults of its own (" + ", ".join(SAVABLE) + "): every "
            "retriever that opens it uses them unless it sets the setting itself (explicit > the "
            "collection's > the profile's > the default). `tune --save` writes some of them."
        ),
    )
    cli.command(
        "collection defaults show",
        _cmd_show,
        help="the collection's own defaults, and each savable setting in force with its source",
        options=("store", "model"),  # the profile's values are shown where the collection keeps none
        arguments=lambda p: p.add_argument("--json", action="store_true", help="print JSON"),
    )
    cli.command(
        "collection defaults set",
        _cmd_set,
        help="save some defaults with the collection (the others it keeps stay)",
        options=("store",),
        arguments=lambda p: p.add_argument(
            "pairs", nargs="+", metavar="KEY=VALUE", help="e.g. oversampling=4 rescore=true hnsw_ef=256"
        ),
    )
    cli.command(
        "collection defaults clear",
        _cmd_clear,
        help="remove some of the collection's defaults (all of them when none is named)",
        options=("store",),
        arguments=lambda p: p.add_argument("keys", nargs="*", metavar="KEY"),
    )


def _config(args: argparse.Namespace) -> Any:
    cfg = command_config(args)
    if cfg.tenant is not None:  # M3R_TENANT, or tenant in the configuration file
        raise ConfigError(
            "a collection's search defaults apply to all its tenants: leave the tenant "
            "(M3R_TENANT, tenant in the configuration file) out"
        )
    return cfg


def _pairs(raw: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in raw:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"expected KEY=VALUE (such as oversampling=4), got {pair!r}")
        out[key.removeprefix("search.")] = value.strip()
    return out


def _cmd_set(args: argparse.Namespace) -> int:
    from m3retriever.config.saved import parse_saved

    return _change(args, lambda collection: (parse_saved(collection.name, _pairs(args.pairs)), ()))


def _cmd_clear(args: argparse.Namespace) -> int:
    from m3retriever.config.saved import SAVABLE
    from m3retriever.maintenance.defaults import stored_keys

    def removed(collection: Any) -> tuple[dict[str, Any], tuple[str, ...]]:
        named = tuple(k.removeprefix("search.") for k in args.keys)
        return {}, named or (*SAVABLE, *stored_keys(collection))

    return _change(args, removed)


def _change(args: argparse.Namespace, change: Callable[[Any], tuple[dict[str, Any], tuple[str, ...]]]) -> int:
    from m3retriever.maintenance.defaults import change_defaults
    from m3retriever.opening import open_collection

    # Without its saved defaults: a corrupted record is what `clear` repairs.
    with open_collection(_config(args), must_exist=True, with_saved=False) as collection:
        values, remove = change(collection)
        kept = change_defaults(collection, values, remove)
    _out(f"collection {collection.name!r} keeps: {json.dumps(kept) if kept else 'no search defaults of its own'}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from m3retriever.maintenance.defaults import defaults_in_force
    from m3retriever.opening import open_collection

    with open_collection(_config(args), must_exist=True) as collection:
        saved, rows = dict(collection.saved), defaults_in_force(collection)
    if args.json:
        _out(json.dumps({"collection": collection.name, "saved": saved, "in_force": rows}, indent=2))
        return 0
    _out(f"collection {collection.name!r} keeps: {json.dumps(saved) if saved else 'no search defaults of its own'}")
    _out("in force (where each comes from: explicit, collection, profile, default):")
    for name, item in rows.items():
        _out(f"  {name:20} {json.dumps(item['value']):24} {item['source']}")
    return 0
