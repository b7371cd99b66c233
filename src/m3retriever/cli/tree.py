"""The argparse tree of the declared commands, and the plugins' commands added to them.

A plugin's command that cannot be added (its name is taken, its group does not exist, its
``arguments`` fail) is skipped with a logged warning naming the plugin: a broken plugin is a
warning, not an outage.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from m3retriever.cli.registry import OPTION_GROUPS, Command

__all__ = ["build_tree", "add_plugin_commands", "TOP_ORDER"]

logger = logging.getLogger("m3retriever.cli")

TOP_ORDER = ("ingest", "search", "delete", "eval", "tune", "serve-mcp", "collection", "model", "plugins", "demo")
"""The order of the top-level entries of ``m3retriever --help`` (plugins' commands come last)."""


def add_plugin_commands(commands: dict[str, Command]) -> None:
    """Add every loaded plugin's commands to ``commands`` (the built-in ones), skipping with a
    warning the ones that cannot be added."""
    from m3retriever.plugins import plugin_commands

    for name, (owner, command) in plugin_commands().items():
        problem = _problem(command, commands)
        if problem is not None:
            logger.warning(
                "plugin %r: command %r skipped: %s. Fix or uninstall the plugin, or leave it out of M3R_LOAD_PLUGINS",
                owner,
                name,
                problem,
            )
            continue
        commands[name] = command


def _problem(command: Command, commands: dict[str, Command]) -> str | None:
    if command.name in commands:
        return "a command of that name exists already"
    parent = " ".join(command.path[:-1])
    if parent and (parent not in commands or commands[parent].run is not None):
        groups = sorted(name for name, c in commands.items() if c.run is None)
        return f"there is no group {parent!r} (the groups: {groups})"
    try:
        _configure(argparse.ArgumentParser(add_help=False), command)  # a trial run: it must not fail
    except Exception as exc:  # a broken plugin is a warning, not an outage
        return f"its arguments failed: {type(exc).__name__}: {exc}"
    return None


def build_tree(parser: argparse.ArgumentParser, commands: dict[str, Command]) -> None:
    """Add ``commands`` (groups and commands, by their paths) to ``parser``."""
    _add_children(parser, (), commands)


def _add_children(parser: argparse.ArgumentParser, prefix: tuple[str, ...], commands: dict[str, Command]) -> None:
    children = [c for c in commands.values() if c.path[:-1] == prefix]
    if not prefix:
        children.sort(key=lambda c: TOP_ORDER.index(c.name) if c.name in TOP_ORDER else len(TOP_ORDER))
    sub: Any = parser.add_subparsers(dest="_".join((*prefix, "command")), required=True, metavar="COMMAND")
    for command in children:
        p = sub.add_parser(command.path[-1], help=command.help, description=command.description or command.help)
        if command.run is None:
            _add_children(p, command.path, commands)
        else:
            _configure(p, command)
            p.set_defaults(func=command)


def _configure(p: argparse.ArgumentParser, command: Command) -> None:
    if command.arguments is not None:
        command.arguments(p)
    for group in command.options:
        OPTION_GROUPS[group](p)
