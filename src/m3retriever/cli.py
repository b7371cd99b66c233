"""The ``m3retriever`` command line: ingest, search, delete, info, renormalize, plugins, demo
and serve-mcp here; eval and tune, copy/snapshot/restore, finetune/add-branch, defaults,
warm-up and export-onnx come from their own modules (``add_commands``)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import TYPE_CHECKING, Any, Sequence

from m3retriever.config import Config, load_config
from m3retriever.display import format_hits
from m3retriever.display import out as _out
from m3retriever.errors import InputError, M3RetrieverError
from m3retriever.index_cli import add_index_arguments, index_overrides
from m3retriever.validation import check_string

if TYPE_CHECKING:
    from m3retriever.ingest import IngestReport

__all__ = ["main", "format_hits"]

logger = logging.getLogger("m3retriever.cli")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML configuration file (M3R_* variables override it)")
    p.add_argument("--location", help="store: a directory (embedded), ':memory:' or a Qdrant URL")
    p.add_argument("--collection", help="collection name")
    p.add_argument("--profile", help="'bge-m3' (production), 'bge-m3-cpu' (int8 ONNX exports) or 'small' (offline English models)")
    p.add_argument("--device", help="'auto', 'cpu' or 'cuda'")
    p.add_argument("--tenant", help="confine the command to this tenant (value of tenant_field)")
    p.add_argument("--tenant-field", help="metadata key that holds the tenant")


def _config(args: argparse.Namespace, **extra: Any) -> Config:
    return load_config(
        args.config,
        location=args.location,
        collection=args.collection,
        profile=args.profile,
        device=args.device,
        tenant=args.tenant,
        tenant_field=args.tenant_field,
        **index_overrides(args),  # the commands that take them: --quantization...
        **extra,
    )


def _check_utf8(name: str, value: str) -> str:
    """Refuse an argument holding bytes that were not UTF-8 before any model loads."""
    return check_string(value, f"the {name}")


def _parse_filter_arg(raw: str | None) -> Any:
    if not raw:
        return None
    _check_utf8("--filter", raw)
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"--filter must be JSON such as '{{\"lang\": \"en\", \"year\": {{\"gte\": 2020}}}}' ({exc.msg})"
        ) from None


def cmd_ingest(args: argparse.Namespace) -> int:
    from m3retriever.ingest import IngestInterrupted
    from m3retriever.retriever import Retriever
    from m3retriever.sources import source_kind

    saved = 0  # documents of the paths already done
    try:
        cfg = _config(args, show_progress=not args.quiet, max_document_chars=args.max_document_chars)
        for path in args.paths:  # a typo in a path is reported before the store is opened or created
            source_kind(path)
        with Retriever(cfg) as r:
            for path in args.paths:
                report = r.ingest_path(path, strict=args.strict)
                saved += report.documents
                _print_ingest_report(path, report)
            r.optimize()
            _out(f"collection {r.collection!r}: {r.count()} chunks")
    except KeyboardInterrupt as exc:  # Ctrl-C: what was written stays, and a re-run resumes
        if isinstance(exc, IngestInterrupted):
            saved += exc.report.documents
        sys.stdout.flush()
        sys.stderr.write(f"interrupted: {saved} documents saved; run the same command to resume\n")
        return 130
    return 0


def _print_ingest_report(path: str, report: IngestReport) -> None:
    _out(
        f"{path}: {report.documents} documents ({report.added} added, {report.updated} "
        f"updated, {report.skipped} unchanged), {report.chunks_written} chunks written, "
        f"{report.chunks_deleted} stale chunks removed in {report.seconds:.1f}s"
    )
    if report.skipped_files:
        _out(f"{path}: skipped {len(report.skipped_files)} files:")
        for entry in report.skipped_files:
            _out(f"  {entry}")


def cmd_search(args: argparse.Namespace) -> int:
    from m3retriever.retriever import Retriever

    options: dict[str, Any] = {}
    if args.no_rerank:
        options["rerank"] = False
    for name in ("min_score", "max_per_doc", "mmr", "diversity_depth"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    _check_utf8("query", args.query)
    flt = _parse_filter_arg(args.filter)  # the arguments first, then the store
    with Retriever(_config(args), must_exist=True) as r:
        result = r.search(args.query, top_k=args.top_k, filter=flt, **options)
    if args.json:
        _out(
            json.dumps(
                {
                    "query": result.query,
                    "no_confident_match": result.no_confident_match,
                    "timings_ms": dict(result.timings_ms),
                    "hits": [h.as_dict() for h in result.hits],
                },
                indent=2,
                ensure_ascii=False,
            )
        )
    else:
        _out(format_hits(result))
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from m3retriever.retriever import Retriever

    flt = _parse_filter_arg(args.filter)
    if not args.doc_id and flt is None:  # the arguments first, then the store
        raise InputError("delete needs --doc-id or --filter; refusing to delete everything")
    with Retriever(_config(args), must_exist=True) as r:
        n = r.delete(args.doc_id or None, filter=flt)
    _out(f"deleted {n} chunks")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from m3retriever.retriever import Retriever

    with Retriever(_config(args), must_exist=True) as r:
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


def cmd_plugins(args: argparse.Namespace) -> int:
    from m3retriever.plugins import list_plugins

    plugins = list_plugins()
    if args.json:
        _out(
            json.dumps(
                [
                    {
                        "name": p.name,
                        "distribution": p.distribution,
                        "version": p.version,
                        "status": "failed" if p.failed else "loaded",
                        "error": p.error,
                        "hooks": list(p.hooks),
                        "components": {k: list(v) for k, v in p.components.items()},
                    }
                    for p in plugins
                ],
                indent=2,
            )
        )
        return 0
    for p in plugins:
        _out(f"{p.name}  ({p.distribution or '?'} {p.version or ''})".rstrip())
        if p.error:
            _out(f"    FAILED: {p.error}")
        for hook, names in p.components.items():
            _out(f"    {hook}: {', '.join(names) or '-'}")
    return 0


def cmd_serve_mcp(args: argparse.Namespace) -> int:
    from m3retriever.opening import open_configured_store
    from m3retriever.plugins import get_adapter
    from m3retriever.retriever import Retriever

    config = _config(args)
    if not args.allow_writes:  # a read-only server of a collection that is not there: say so
        open_configured_store(config, must_exist=True).close()
    retriever = Retriever.shared(config)
    if args.warm_up:
        retriever.warm_up()  # logged (-v); stdout is the MCP channel on stdio
    adapter = get_adapter(
        "mcp",
        retriever,
        writes=args.allow_writes,
        description=args.description,
        token=args.token or os.environ.get("M3R_MCP_TOKEN"),
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        max_connections=args.max_connections or None,
    )
    adapter.serve(transport="http" if args.http else "stdio", host=args.host, port=args.port)
    return 0


def cmd_renormalize(args: argparse.Namespace) -> int:
    from m3retriever.renormalize import renormalize

    # --tenant without --tenant-field follows the tenant field recorded with the collection.
    tenant, args.tenant = args.tenant, None
    cfg = _config(args)
    report = renormalize(cfg, tenant=tenant)
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


def cmd_demo(args: argparse.Namespace) -> int:
    from m3retriever.demo import run_demo

    return run_demo(
        profile=args.profile or "small",
        location=args.location,
        corpus=args.corpus,
        queries=args.query or None,
        out=_out,
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(prog="m3retriever", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_collection_commands(sub)
    _add_tool_commands(sub)
    _add_eval_commands(sub)
    from m3retriever.export.cli import add_commands as add_export_commands

    add_export_commands(sub)
    return parser


def _add_collection_commands(sub: Any) -> None:
    """``ingest``, ``search``, ``delete``, ``info`` and ``renormalize``: one collection's data."""
    p = sub.add_parser("ingest", help="ingest folders of .txt/.md, JSONL files or BEIR corpora")
    _common(p)
    p.add_argument("paths", nargs="+")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--strict",
        action="store_true",
        help="check every file of a folder first and fail, writing nothing of it, on one that cannot "
        "be read or is longer than --max-document-chars (default: skip such files and list them)",
    )
    p.add_argument(
        "--max-document-chars",
        type=int,
        metavar="N",
        help="longest document accepted, in characters (default: max_document_chars of the configuration, "
        "2000000; also M3R_MAX_DOCUMENT_CHARS)",
    )
    add_index_arguments(p)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("search", help="search and print hits with per-stage scores")
    _common(p)
    p.add_argument("query")
    p.add_argument("-k", "--top-k", type=int, default=None)
    p.add_argument("--filter", help='JSON filter, e.g. \'{"lang": "en", "year": {"gte": 2020}}\'')
    p.add_argument("--no-rerank", action="store_true")
    p.add_argument("--min-score", type=float, default=None, help="minimum calibrated rerank score")
    p.add_argument("--max-per-doc", type=int, default=None, help="at most N chunks per document")
    p.add_argument("--mmr", type=float, default=None, help="MMR diversity, 0 (relevance) to 1")
    p.add_argument("--diversity-depth", type=int, default=None, help="candidates --max-per-doc/--mmr pick from")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("delete", help="delete documents by id or filter")
    _common(p)
    p.add_argument("--doc-id", action="append", help="document id (repeatable)")
    p.add_argument("--filter", help="JSON filter")
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("info", help="counts, models and sizes of the collection")
    _common(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "renormalize",
        help="recount document lengths and rewrite the BM25 vectors with the exact average",
        description=(
            "BM25 normalises each chunk by the collection's average length as it was when the "
            "chunk was written. Recount the lengths from the stored texts and rewrite every BM25 "
            "vector with the current average (no model runs; other vectors are copied). Also "
            "upgrades a collection built before the BM25 parameters were recorded. With "
            "--tenant, that tenant's chunks with the tenant's own average; without, on a "
            "collection partitioned by tenant, each tenant's chunks with its own average."
        ),
    )
    _common(p)
    p.set_defaults(func=cmd_renormalize)


def _add_tool_commands(sub: Any) -> None:
    """``plugins``, ``demo`` and ``serve-mcp``: the loaded plugins, a demo, the MCP server."""
    p = sub.add_parser("plugins", help="list loaded plugins with versions and hooks")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("demo", help="ingest the project's docs and run a few queries")
    p.add_argument("--profile", help="profile (default: small)")
    p.add_argument("--location", help="store directory (default: a fresh temporary directory)")
    p.add_argument("--corpus", help="folder to ingest (default: the project's docs/ and README)")
    p.add_argument("--query", action="append", help="query to run (repeatable)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("serve-mcp", help="serve the collection as an MCP tool (stdio or HTTP)")
    _common(p)
    p.add_argument("--http", action="store_true", help="streamable HTTP instead of stdio")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--token", help="bearer token required on HTTP (or M3R_MCP_TOKEN)")
    p.add_argument("--allow-writes", action="store_true", help="also expose ingest and delete tools")
    p.add_argument("--description", help="what the collection holds, for the agent")
    p.add_argument("--warm-up", action="store_true", help="read the vectors and indexes into the page cache first")
    p.add_argument("--header-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="HTTP: a request's head must arrive within this many seconds (default: 10)")
    p.add_argument("--body-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="HTTP: a request's body must arrive within this many seconds after its head (default: 30)")
    p.add_argument("--max-connections", type=int, default=200, metavar="N",
                   help="HTTP: connections served at once, more get 503 (default: 200; 0: no cap)")
    p.set_defaults(func=cmd_serve_mcp)


def _add_eval_commands(sub: Any) -> None:
    """``eval`` and ``tune`` live in :mod:`m3retriever.evaluation` (their heavy imports are
    deferred until they run)."""
    from m3retriever.evaluation.cli import add_commands
    from m3retriever.transfer_cli import add_commands as add_transfer_commands

    add_commands(sub, _common, _config)
    add_transfer_commands(sub, _common, _config)
    from m3retriever.finetune.cli import add_commands as add_finetune_commands

    add_finetune_commands(sub, _common, _config)
    from m3retriever.defaults_cli import add_commands as add_defaults_commands

    add_defaults_commands(sub, _common, _config)
    from m3retriever.warmup_cli import add_commands as add_warmup_commands

    add_warmup_commands(sub, _common, _config)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except M3RetrieverError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except OSError as exc:  # last line of defence: a file or disk problem we did not foresee
        logger.debug("unexpected OS error", exc_info=True)
        sys.stderr.write(f"error: {exc} (run with -v for details)\n")
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
