"""The everyday commands: ``ingest``, ``search``, ``delete``, ``serve-mcp``, ``plugins`` and
``demo`` (``eval`` and ``tune`` are in :mod:`m3retriever.evaluation.cli`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from m3retriever.cli.registry import CommandLine, command_config
from m3retriever.display import format_hits
from m3retriever.display import out as _out
from m3retriever.errors import ConfigError, InputError
from m3retriever.validation import check_string

if TYPE_CHECKING:
    from m3retriever.ingest import IngestReport
    from m3retriever.types import SearchResult

__all__ = ["register_commands", "format_hits"]

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
    from m3retriever.distributed.arguments import check_ray_arguments, ingest_path_with_ray
    from m3retriever.ingest import IngestInterrupted
    from m3retriever.ingest.globs import FileFilter
    from m3retriever.ingest.sources import source_kind
    from m3retriever.retriever import Retriever

    saved = 0  # documents of the paths already done
    try:
        cfg = command_config(args, show_progress=not args.quiet, max_document_chars=args.max_document_chars)
        for path in args.paths:  # a typo in a path is reported before the store is opened or created
            if source_kind(path) != "folder" and (args.include or args.exclude or args.sync):
                raise InputError(f"{path}: --include, --exclude and --sync apply to folders; pass a folder")
        FileFilter.of(args.include, args.exclude)  # a bad pattern too
        check_ray_arguments(args)
        with Retriever(cfg) as r:
            for path in args.paths:
                if args.ray is not None:
                    report = ingest_path_with_ray(r, path, args)
                else:
                    report = r.ingest_path(
                        path, strict=args.strict, include=args.include, exclude=args.exclude, sync=args.sync
                    )
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
    removed = f", {report.removed} removed (their file left the folder)" if report.removed else ""
    _out(
        f"{path}: {report.documents} documents ({report.added} added, {report.updated} "
        f"updated, {report.skipped} unchanged{removed}), {report.chunks_written} chunks written, "
        f"{report.chunks_deleted} stale chunks removed in {report.seconds:.1f}s"
    )
    if report.files:
        _out(f"{path}: files by suffix:")
        for count in report.files:
            why = "; ".join(f"{n} {reason}" for reason, n in count.reasons)
            skipped = f", {count.skipped} skipped ({why})" if count.skipped else ""
            _out(f"  {count.suffix or '(no suffix)'}: {count.read} read{skipped}")
    listed = [entry for entry in report.skipped_files if not _summarised(entry)]
    if listed:
        _out(f"{path}: skipped {len(listed)} files:")
        for entry in listed:
            _out(f"  {entry}")
    for note in report.notes:
        _out(f"{path}: note: {note}")


def _summarised(entry: str) -> bool:
    """Whether a skipped file's reason is one the per-suffix counts say in full (no reader,
    left out by a pattern): those files are not listed one by one."""
    return any(f": {reason}" in entry for reason in ("no reader for ", "excluded by '", "matches no --include"))


def cmd_search(args: argparse.Namespace) -> int:
    from m3retriever.retriever import Retriever

    options: dict[str, Any] = {}
    if args.no_rerank:
        options["rerank"] = False
    for name in ("min_score", "max_per_doc", "mmr", "diversity_depth", "expand"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    _check_utf8("query", args.query)
    flt = _parse_filter_arg(args.filter)  # the arguments first, then the store
    with Retriever(command_config(args), must_exist=True) as r:
        result = r.search(args.query, top_k=args.top_k, filter=flt, **options)
    if args.json:
        _out(
            json.dumps(
                result.as_dict(),
                indent=2,
                ensure_ascii=False,
            )
        )
    else:
        _out(format_hits(result))
        for line in _context_lines(result):
            _out(line)
    return 0


def _context_lines(result: SearchResult) -> list[str]:
    """Each hit's context (``--expand``): a heading naming its chunks, then the passage,
    indented."""
    lines: list[str] = []
    for h in result.hits:
        c = h.context
        if c is None:
            continue
        first, last = c.chunks[0].chunk_index, c.chunks[-1].chunk_index
        where = f"the hit's chunk {h.chunk_index} at {c.start}-{c.end}"
        lines += ["", f"#{h.scores.final_rank} {h.doc_id}: chunks {first}-{last}, {where}"]
        lines += ["  " + line for line in c.text.splitlines()]
    return lines


def cmd_delete(args: argparse.Namespace) -> int:
    from m3retriever.retriever import Retriever

    flt = _parse_filter_arg(args.filter)
    if not args.doc_id and flt is None:  # the arguments first, then the store
        raise InputError("delete needs --doc-id or --filter; refusing to delete everything")
    with Retriever(command_config(args), must_exist=True) as r:
        n = r.delete(args.doc_id or None, filter=flt)
    _out(f"deleted {n} chunks")
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

    config = command_config(args)
    names = _served_collections(args, config.collection)
    configs = [replace(config, collection=name) for name in names]
    if not args.allow_writes:  # a read-only server of a collection that is not there: say so
        for cfg in configs:
            open_configured_store(cfg, must_exist=True).close()
    retriever = Retriever.shared(configs[0])
    # The other collections borrow its store (an embedded store opens once per process).
    more = [Retriever(cfg, store=retriever.store) for cfg in configs[1:]]
    for r in (retriever, *more) if args.warm_up else ():
        r.warm_up()  # logged (-v); stdout is the MCP channel on stdio
    adapter = get_adapter(
        "mcp",
        retriever,
        writes=args.allow_writes,
        description=args.description,
        token=args.token or os.environ.get("M3R_MCP_TOKEN"),
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        max_connections=args.max_connections or None,
        collections=more,
        descriptions=_descriptions(args.collection_description),
    )
    adapter.serve(transport="http" if args.http else "stdio", host=args.host, port=args.port)
    return 0


def _served_collections(args: argparse.Namespace, configured: str) -> list[str]:
    """serve-mcp's allow-list: ``--collections`` (the first the default), else the one collection."""
    if not args.collections:
        return [configured]
    if args.collection:
        raise ConfigError("give --collection (one collection) or --collections (several), not both")
    names = [n.strip() for n in args.collections.split(",")]
    if any(not n for n in names) or len(set(names)) != len(names):
        raise ConfigError(f"--collections takes distinct names separated by commas, such as 'docs,notes'; got {args.collections!r}")
    return names


def _descriptions(values: list[str] | None) -> dict[str, str]:
    """``--collection-description NAME=TEXT`` values by name."""
    out: dict[str, str] = {}
    for value in values or ():
        name, sep, text = value.partition("=")
        if not sep or not name.strip() or not text.strip():
            raise ConfigError(f"--collection-description takes NAME=TEXT, such as 'docs=Our handbook'; got {value!r}")
        out[name.strip()] = text.strip()
    return out


def cmd_demo(args: argparse.Namespace) -> int:
    from m3retriever.demo import run_demo

    return run_demo(
        profile=args.profile or "small",
        location=args.location,
        corpus=args.corpus,
        queries=args.query or None,
        out=_out,
    )


def register_commands(cli: CommandLine) -> None:
    """Declare ``ingest``, ``search``, ``delete``, ``serve-mcp``, ``plugins`` and ``demo``."""
    data = ("store", "model", "tenant")
    cli.command(
        "ingest", cmd_ingest, help="ingest folders of documents (text, Markdown, HTML, PDF, Word, notebooks, "
        "reStructuredText), JSONL files or BEIR corpora",
        options=(*data, "index"), arguments=_ingest_arguments,
    )
    cli.command("search", cmd_search, help="search and print hits with per-stage scores", options=data,
                arguments=_search_arguments)
    cli.command("delete", cmd_delete, help="delete documents by id or filter", options=data, arguments=_delete_arguments)
    cli.command("serve-mcp", cmd_serve_mcp, help="serve the collection as an MCP tool (stdio or HTTP)", options=data,
                arguments=_serve_mcp_arguments)
    cli.command("plugins", cmd_plugins, help="list loaded plugins with versions and hooks", arguments=_json_argument)
    cli.command("demo", cmd_demo, help="ingest the project's docs and run a few queries", arguments=_demo_arguments)


def _json_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")


def _ingest_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+")
    p.add_argument(
        "--include", action="append", metavar="GLOB",
        help="folders: take only files matching GLOB (repeatable; '*.md' matches at any depth, 'docs/**/*.pdf' "
        "a path relative to the folder)",
    )
    p.add_argument("--exclude", action="append", metavar="GLOB", help="folders: leave out files matching GLOB (repeatable)")
    p.add_argument(
        "--sync", action="store_true",
        help="folders: make the collection equal the folder: also delete the documents read from this folder "
        "earlier whose file is gone or left out (safe to interrupt and re-run)",
    )
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
    from m3retriever.distributed.arguments import add_ray_arguments

    add_ray_arguments(p)


def _search_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("query")
    p.add_argument("-k", "--top-k", type=int, default=None)
    p.add_argument("--filter", help='JSON filter, e.g. \'{"lang": "en", "year": {"gte": 2020}}\'')
    p.add_argument("--no-rerank", action="store_true")
    p.add_argument("--min-score", type=float, default=None, help="minimum calibrated rerank score")
    p.add_argument("--max-per-doc", type=int, default=None, help="at most N chunks per document")
    p.add_argument("--mmr", type=float, default=None, help="MMR diversity, 0 (relevance) to 1")
    p.add_argument("--diversity-depth", type=int, default=None, help="candidates --max-per-doc/--mmr pick from")
    p.add_argument(
        "--expand", type=int, default=None, help="show each hit with N neighbouring chunks on each side, merged"
    )
    p.add_argument("--json", action="store_true")


def _delete_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--doc-id", action="append", help="document id (repeatable)")
    p.add_argument("--filter", help="JSON filter")


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", help="profile (default: small)")
    p.add_argument("--location", help="store directory (default: a fresh temporary directory)")
    p.add_argument("--corpus", help="folder to ingest (default: the project's docs/ and README)")
    p.add_argument("--query", action="append", help="query to run (repeatable)")


def _serve_mcp_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--http", action="store_true", help="streamable HTTP instead of stdio")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--token", help="bearer token required on HTTP (or M3R_MCP_TOKEN)")
    p.add_argument("--allow-writes", action="store_true", help="also expose ingest and delete tools")
    p.add_argument("--description", help="what the collection holds, for the agent")
    p.add_argument("--collections", metavar="NAME,NAME...",
                   help="serve these collections of the store (the allow-list; the first is the default)")
    p.add_argument("--collection-description", action="append", metavar="NAME=TEXT",
                   help="what a served collection holds, for the agent (repeatable)")
    p.add_argument("--warm-up", action="store_true", help="read the vectors and indexes into the page cache first")
    p.add_argument("--header-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="HTTP: a request's head must arrive within this many seconds (default: 10)")
    p.add_argument("--body-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="HTTP: a request's body must arrive within this many seconds after its head (default: 30)")
    p.add_argument("--max-connections", type=int, default=200, metavar="N",
                   help="HTTP: connections served at once, more get 503 (default: 200; 0: no cap)")
