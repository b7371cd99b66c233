"""``python -m m3retriever_mcp``: serve a collection over MCP without the core CLI.

Usage::

    python -m m3retriever_mcp --config m3r.toml                 # stdio
    python -m m3retriever_mcp --config m3r.toml --http --port 8000 --token SECRET
    python -m m3retriever_mcp --config m3r.toml --allow-writes --description "Our HR policies"
    python -m m3retriever_mcp --config m3r.toml --tenant acme   # one tenant's documents only
    python -m m3retriever_mcp --config m3r.toml --collections docs,notes \
        --collection-description "docs=Engineering handbook"      # several collections
    python -m m3retriever_mcp --config m3r.toml --http --header-timeout 5 --max-connections 50

The token may also be given in the ``M3R_MCP_TOKEN`` environment variable (it then does not
show in the process list).
"""

from __future__ import annotations

import argparse
import os
import sys

TOKEN_ENV = "M3R_MCP_TOKEN"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m m3retriever_mcp",
        description="Serve an m3retriever collection as MCP tools (stdio by default).",
    )
    p.add_argument("--config", help="TOML config file (M3R_* environment variables also apply)")
    p.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    p.add_argument("--host", default="127.0.0.1", help="HTTP interface to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="HTTP port (default: 8000)")
    p.add_argument(
        "--token",
        default=None,
        help=f"bearer token HTTP clients must send (default: ${TOKEN_ENV} if set)",
    )
    p.add_argument(
        "--allow-writes", action="store_true", help="also expose the ingest and delete tools"
    )
    p.add_argument("--description", default=None, help="what the collection holds (shown to the agent)")
    p.add_argument(
        "--warm-up", action="store_true", help="read the vectors and indexes into the page cache first"
    )
    p.add_argument(
        "--tenant",
        default=None,
        help="confine the server to this tenant (needs tenant_field; no tool argument can change it)",
    )
    p.add_argument(
        "--collections",
        default=None,
        metavar="NAME,NAME...",
        help="serve these collections of the configured store (the allow-list; the first is the default)",
    )
    p.add_argument(
        "--collection-description",
        action="append",
        metavar="NAME=TEXT",
        help="what a collection holds, shown to the agent (repeatable)",
    )
    limits = p.add_argument_group("HTTP limits (slow or too many clients)")
    limits.add_argument(
        "--header-timeout", type=float, default=10.0, metavar="SECONDS",
        help="a request's headers must arrive within this many seconds (default: 10)",
    )
    limits.add_argument(
        "--body-timeout", type=float, default=30.0, metavar="SECONDS",
        help="a request's body must arrive within this many seconds after its headers (default: 30)",
    )
    limits.add_argument(
        "--max-connections", type=int, default=200, metavar="N",
        help="connections served at once; more get 503 (default: 200; 0: no cap)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from m3retriever import M3RetrieverError, Retriever, load_config
    from m3retriever_mcp.httplimits import HTTPLimits
    from m3retriever_mcp.served import close_all, open_collections, parse_collection_list, parse_descriptions
    from m3retriever_mcp.server import create_server

    token = args.token if args.token is not None else (os.environ.get(TOKEN_ENV) or None)
    try:
        http_limits = HTTPLimits(args.header_timeout, args.body_timeout, args.max_connections or None)
        descriptions = parse_descriptions(args.collection_description)
        config = load_config(args.config, tenant=args.tenant)
        names = parse_collection_list(args.collections) if args.collections else [config.collection]
        retrievers: list[Retriever] = open_collections(config, names, must_exist=not args.allow_writes)
    except M3RetrieverError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    try:
        if args.warm_up:
            for r in retrievers:
                r.warm_up()  # logged; stdout is the MCP channel on stdio
        adapter = create_server(
            retrievers[0], writes=args.allow_writes, description=args.description, token=token,
            http_limits=http_limits, collections=retrievers[1:], descriptions=descriptions,
        )
        adapter.serve("http" if args.http else "stdio", host=args.host, port=args.port)
    except M3RetrieverError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        close_all(retrievers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
