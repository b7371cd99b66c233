"""The ``m3retriever`` command line.

Everyday verbs at the top (``ingest``, ``search``, ``delete``, ``eval``, ``tune``,
``serve-mcp``, ``plugins``, ``demo``), operations on a stored collection under
``collection``, model work under ``model``. Every command is declared the same way
(:mod:`m3retriever.cli.registry`): the built-in modules in :data:`BUILTIN_MODULES` and the
plugins' ``register_commands`` hook. The spellings of the previous release (``m3retriever
info``...) are rewritten before parsing, with one deprecation line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from m3retriever.cli.registry import Command, CommandLine, command_config
from m3retriever.cli.tree import add_plugin_commands, build_tree
from m3retriever.display import format_hits
from m3retriever.errors import M3RetrieverError

__all__ = ["main", "build_parser", "format_hits", "Command", "CommandLine", "command_config", "RENAMED"]

logger = logging.getLogger("m3retriever.cli")

BUILTIN_MODULES = (
    "m3retriever.cli.everyday",
    "m3retriever.evaluation.cli",
    "m3retriever.cli.collection",
    "m3retriever.cli.transfer",
    "m3retriever.finetune.cli",
    "m3retriever.cli.warm_up",
    "m3retriever.cli.defaults",
    "m3retriever.export.cli",
)
"""The modules whose ``register_commands(cli)`` declare the built-in commands."""

RENAMED = {
    "info": "collection info",
    "copy": "collection copy",
    "snapshot": "collection snapshot",
    "restore": "collection restore",
    "renormalize": "collection renormalize",
    "add-branch": "collection add-branch",
    "warm-up": "collection warm-up",
    "defaults": "collection defaults",
    "finetune": "model finetune",
    "export-onnx": "model export-onnx",
}
"""The previous release's spellings, still accepted (with a deprecation line) for one release."""

DESCRIPTION = (
    "Hybrid retrieval (dense, sparse and BM25 vectors, fused, then reranked) over an embedded "
    "Qdrant store or a Qdrant server. Ingest documents, search them, measure and tune the "
    "quality on labelled data, and serve the collection to agents over MCP."
)
EPILOG = "Run `m3retriever COMMAND --help` for a command's options, `m3retriever collection --help` for its commands."


def builtin_commands() -> CommandLine:
    """The built-in commands and groups, declared by :data:`BUILTIN_MODULES`."""
    cli = CommandLine()
    for name in BUILTIN_MODULES:
        importlib.import_module(name).register_commands(cli)
    return cli


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: the built-in commands and the plugins' (exposed for docs and tests)."""
    parser = argparse.ArgumentParser(prog="m3retriever", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = builtin_commands().commands
    add_plugin_commands(commands)
    build_tree(parser, commands)
    return parser


def respell(argv: Sequence[str]) -> list[str]:
    """``argv`` with an old spelling of a command (``info``) rewritten to its new one
    (``collection info``), saying so once on stderr."""
    words = list(argv)
    for i, word in enumerate(words):
        if word.startswith("-"):  # -v before the command
            continue
        new = RENAMED.get(word)
        if new is not None:
            sys.stderr.write(
                f"`m3retriever {word}` is now `m3retriever {new}`; the old spelling goes away in the next release\n"
            )
            words[i : i + 1] = new.split()
        break
    return words


def _verbose(words: Sequence[str]) -> bool:
    """Whether -v/--verbose comes before the command (where the main parser takes it)."""
    for word in words:
        if not word.startswith("-"):
            return False
        if word in ("-v", "--verbose"):
            return True
    return False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    words = respell(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(  # before the plugins load (their commands are parsed): their warnings too
        level=logging.DEBUG if _verbose(words) else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    args = build_parser().parse_args(words)
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
