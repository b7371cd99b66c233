"""The ``defaults`` command: show, set and clear a collection's own search defaults
(:mod:`m3retriever.saved_defaults`) without running ``tune``.

It opens the store only, not the models: it is quick, and it can repair a collection whose
saved defaults were corrupted by hand (which stops a retriever from opening it).
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Callable

from m3retriever.display import out as _out
from m3retriever.errors import ConfigError, InputError

__all__ = ["add_commands"]


def add_commands(
    sub: Any,
    common: Callable[[argparse.ArgumentParser], None],
    config_fn: Callable[..., Any],
) -> None:
    """Add ``defaults show|set|clear`` to the CLI's sub-parsers.

    Args:
        sub: The ``add_subparsers()`` object of the main parser.
        common: Adds --config/--location/--collection/--profile/--device to a parser.
        config_fn: ``config_fn(args, **overrides)`` returns a :class:`~m3retriever.Config`.
    """
    from m3retriever.saved_defaults import SAVABLE

    p = sub.add_parser(
        "defaults",
        help="show, set or clear the collection's own search defaults",
        description=(
            "A collection can keep search defaults of its own (" + ", ".join(SAVABLE) + "): every "
            "retriever that opens it uses them unless it sets the setting itself (explicit > the "
            "collection's > the profile's > the default). `tune --save` writes some of them."
        ),
    )
    actions = p.add_subparsers(dest="action", required=True)
    q = actions.add_parser("show", help="the collection's own defaults, and each savable setting in force with its source")
    common(q)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=lambda args: _cmd_show(args, config_fn))
    q = actions.add_parser("set", help="save some defaults with the collection (the others it keeps stay)")
    common(q)
    q.add_argument("pairs", nargs="+", metavar="KEY=VALUE", help="e.g. oversampling=4 rescore=true hnsw_ef=256")
    q.set_defaults(func=lambda args: _cmd_change(args, config_fn))
    q = actions.add_parser("clear", help="remove some of the collection's defaults (all of them when none is named)")
    common(q)
    q.add_argument("keys", nargs="*", metavar="KEY")
    q.set_defaults(func=lambda args: _cmd_change(args, config_fn))


def _opened(args: argparse.Namespace, config_fn: Callable[..., Any]) -> tuple[Any, Any]:
    """The configuration and its store (the caller closes it)."""
    from m3retriever.opening import open_configured_store

    cfg = _config(args, config_fn)
    return cfg, open_configured_store(cfg, must_exist=True)


def _config(args: argparse.Namespace, config_fn: Callable[..., Any]) -> Any:
    if args.tenant:
        raise ConfigError("a collection's search defaults apply to all its tenants: leave --tenant out")
    return config_fn(args)


def _pairs(raw: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in raw:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"expected KEY=VALUE (such as oversampling=4), got {pair!r}")
        out[key.removeprefix("search.")] = value.strip()
    return out


def _cmd_change(args: argparse.Namespace, config_fn: Callable[..., Any]) -> int:
    from m3retriever.saved_defaults import SAVABLE, parse_saved, update_saved

    cfg, store = _opened(args, config_fn)
    try:
        if args.action == "set":
            values, remove = parse_saved(cfg.collection, _pairs(args.pairs)), ()
        else:
            values = {}
            remove = tuple(k.removeprefix("search.") for k in args.keys) or (*SAVABLE, *_present(store, cfg.collection))
        kept = update_saved(store, cfg.collection, values, remove)
    finally:
        store.close()
    _out(f"collection {cfg.collection!r} keeps: {json.dumps(kept) if kept else 'no search defaults of its own'}")
    return 0


def _present(store: Any, collection: str) -> list[str]:
    """Every key the collection keeps, known or not (so that clearing all removes all)."""
    stored = store.search_defaults(collection)
    return list(stored) if isinstance(stored, dict) else []


def _cmd_show(args: argparse.Namespace, config_fn: Callable[..., Any]) -> int:
    from m3retriever.built_settings import settings_in_force
    from m3retriever.opening import open_collection
    from m3retriever.saved_defaults import SAVABLE

    opened = open_collection(_config(args, config_fn), must_exist=True)
    opened.store.close()
    saved = dict(opened.saved)
    in_force = settings_in_force(opened.config, opened.settings, saved, dict(opened.built))
    rows = {name: in_force[name if name == "query_instruction" else "search." + name] for name in SAVABLE}
    if args.json:
        _out(json.dumps({"collection": opened.name, "saved": saved, "in_force": rows}, indent=2))
        return 0
    _out(f"collection {opened.name!r} keeps: {json.dumps(saved) if saved else 'no search defaults of its own'}")
    _out("in force (where each comes from: explicit, collection, profile, default):")
    for name, item in rows.items():
        _out(f"  {name:20} {json.dumps(item['value']):24} {item['source']}")
    return 0
