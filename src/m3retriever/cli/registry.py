"""How a command of the ``m3retriever`` command line is declared, built-in or a plugin's.

Every command, the built-in ones and those a plugin adds through the ``register_commands``
hook, is declared the same way: ``cli.command(path, run, help=..., options=(...),
arguments=...)`` on a :class:`CommandLine`. ``path`` is the words typed (``"ingest"``,
``"collection info"``), ``options`` names the shared option groups it takes (declared once,
in :data:`OPTION_GROUPS`), ``arguments`` adds its own. :func:`command_config` turns the
parsed options into a :class:`~m3retriever.config.Config`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from m3retriever.cli.index_options import add_index_arguments, index_overrides
from m3retriever.config import Config, load_config
from m3retriever.errors import PluginError

__all__ = ["Command", "CommandLine", "OPTION_GROUPS", "command_config"]

Run = Callable[[argparse.Namespace], int]
Arguments = Callable[[argparse.ArgumentParser], object]


def _store_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("collection", "which stored collection (default: the configuration's)")
    g.add_argument("--config", help="TOML configuration file (M3R_* variables override it)")
    g.add_argument("--location", help="store: a directory (embedded), ':memory:' or a Qdrant URL")
    g.add_argument("--collection", help="collection name")


def _model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("models")
    g.add_argument(
        "--profile", help="'bge-m3' (production), 'bge-m3-cpu' (int8 ONNX exports) or 'small' (offline English models)"
    )
    g.add_argument("--device", help="'auto', 'cpu' or 'cuda'")


def _tenant_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("tenant")
    g.add_argument("--tenant", help="confine the command to this tenant (value of tenant_field)")
    g.add_argument("--tenant-field", help="metadata key that holds the tenant")


OPTION_GROUPS: dict[str, Arguments] = {
    "store": _store_options,  # --config, --location, --collection
    "model": _model_options,  # --profile, --device: commands that load models
    "tenant": _tenant_options,  # --tenant, --tenant-field: commands that honour a tenant
    "index": add_index_arguments,  # a new collection's index settings: commands that may create one
}
"""The shared option groups, by the name a command gives in ``options``."""


def command_config(args: argparse.Namespace, **extra: Any) -> Config:
    """The configuration a command's parsed options ask for (options it does not take: unset).

    Args:
        args: The parsed command line.
        extra: Further settings (``load_config`` overrides), such as ``show_progress=False``.
    """
    given = {name: getattr(args, name, None) for name in ("location", "collection", "profile", "device")}
    return load_config(
        getattr(args, "config", None),
        **given,
        tenant=getattr(args, "tenant", None),
        tenant_field=getattr(args, "tenant_field", None),
        **index_overrides(args),
        **extra,
    )


@dataclass(frozen=True)
class Command:
    """One command (``run`` set) or group of commands (``run`` ``None``) of the command line.

    Attributes:
        path: The words typed, such as ``("collection", "info")``.
        help: One line for the listing of ``--help``.
        run: Runs the command on the parsed arguments; returns the exit status.
        description: The longer text of the command's own ``--help``.
        options: Shared option groups it takes (keys of :data:`OPTION_GROUPS`).
        arguments: Adds its own arguments to its parser.
    """

    path: tuple[str, ...]
    help: str
    run: Run | None = None
    description: str | None = None
    options: tuple[str, ...] = ()
    arguments: Arguments | None = None

    @property
    def name(self) -> str:
        """The path as typed: ``"collection info"``."""
        return " ".join(self.path)

    def __call__(self, args: argparse.Namespace) -> int:
        if self.run is None:  # pragma: no cover - argparse asks for a sub-command first
            raise PluginError(f"{self.name!r} is a group: name one of its commands")
        return int(self.run(args) or 0)


class CommandLine:
    """What ``register_commands(cli)`` receives: declare commands and groups on it."""

    def __init__(self) -> None:
        self.commands: dict[str, Command] = {}

    def group(self, path: str, *, help: str, description: str | None = None) -> None:
        """Declare a group of commands such as ``"collection"`` (its commands: ``"collection info"``...)."""
        self._add(Command(self._path(path), help, None, description))

    def command(
        self,
        path: str,
        run: Run,
        *,
        help: str,
        description: str | None = None,
        options: Sequence[str] = (),
        arguments: Arguments | None = None,
    ) -> None:
        """Declare a command.

        Args:
            path: The words typed: ``"hello"``, or ``"collection stats"`` within a group.
            run: ``run(args) -> int`` runs it (``args``: the parsed ``argparse.Namespace``;
                :func:`command_config` turns its shared options into a configuration).
            help: One line for the listing of ``--help``.
            description: The longer text of its own ``--help``.
            options: Shared option groups it takes: ``"store"`` (--config, --location,
                --collection), ``"model"`` (--profile, --device), ``"tenant"`` (--tenant,
                --tenant-field), ``"index"`` (a new collection's index settings).
            arguments: ``arguments(parser)`` adds its own arguments.
        """
        if not callable(run):
            raise PluginError(f"command {path!r}: run must be callable, got {run!r}")
        unknown = sorted(set(options) - set(OPTION_GROUPS))
        if unknown:
            raise PluginError(f"command {path!r}: unknown option groups {unknown}; they are {sorted(OPTION_GROUPS)}")
        self._add(Command(self._path(path), help, run, description, tuple(options), arguments))

    @staticmethod
    def _path(path: str) -> tuple[str, ...]:
        words = tuple(path.split()) if isinstance(path, str) else ()
        if not words or any(w.startswith("-") for w in words):
            raise PluginError(f"a command needs a name of words such as 'hello' or 'collection stats', got {path!r}")
        return words

    def _add(self, command: Command) -> None:
        if command.name in self.commands:
            raise PluginError(f"command {command.name!r} is declared twice")
        self.commands[command.name] = command
