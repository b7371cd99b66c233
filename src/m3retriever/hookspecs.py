"""Plugin hook specifications for m3retriever.

Third-party plugins are found through the ``m3retriever`` entry-point group (the built-ins,
:mod:`m3retriever.builtin`, are registered by import). A plugin module implements one or more
of the hooks below with ``@m3retriever.hookimpl``; each hook receives a ``register`` callback
and calls it once per component it provides. Built-in encoders and rerankers and the adapters
use exactly these hooks. See :mod:`m3retriever.plugins` for loading, ``M3R_LOAD_PLUGINS`` and
what happens to a broken plugin.

Example (a third-party package's ``pyproject.toml``)::

    [project.entry-points.m3retriever]
    my_encoder = "my_package.plugin"

and in ``my_package/plugin.py``::

    from m3retriever import hookimpl

    @hookimpl
    def register_encoders(register):
        register("my-encoder", MyEncoder)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

import pluggy

from m3retriever.readers.base import ReaderFactory

if TYPE_CHECKING:
    from m3retriever.cli.registry import CommandLine
    from m3retriever.encoders.base import Encoder, EncoderOptions
    from m3retriever.rerankers.base import Reranker, RerankerOptions

__all__ = [
    "hookspec",
    "hookimpl",
    "EncoderFactory",
    "RerankerFactory",
    "AdapterFactory",
    "QueryGeneratorFactory",
    "ReaderFactory",
    "register_encoders",
    "register_rerankers",
    "register_adapters",
    "register_query_generators",
    "register_readers",
    "register_commands",
]

hookspec = pluggy.HookspecMarker("m3retriever")
hookimpl = pluggy.HookimplMarker("m3retriever")


class EncoderFactory(Protocol):
    """Builds an encoder from :class:`~m3retriever.encoders.base.EncoderOptions`."""

    def __call__(self, options: "EncoderOptions") -> "Encoder": ...


class RerankerFactory(Protocol):
    """Builds a reranker from :class:`~m3retriever.rerankers.base.RerankerOptions`."""

    def __call__(self, options: "RerankerOptions") -> "Reranker": ...


class AdapterFactory(Protocol):
    """Presents a retriever to another framework (LlamaIndex, LangChain, MCP...).

    Called with the shared :class:`~m3retriever.retriever.Retriever` and adapter-specific
    keyword options; returns the framework's object.
    """

    def __call__(self, retriever: Any, **options: Any) -> Any: ...


class QueryGeneratorFactory(Protocol):
    """Builds a synthetic query generator from keyword options: a callable that takes
    ``(doc_id, chunk text)`` items and returns ``(query, doc_id)`` pairs."""

    def __call__(self, **options: Any) -> Callable[[Sequence[tuple[str, str]]], Sequence[tuple[str, str]]]: ...


@hookspec
def register_encoders(register: Callable[[str, "EncoderFactory"], None]) -> None:
    """Register encoders.

    Args:
        register: Call ``register(name, factory)`` once per encoder. ``name`` is what
            configurations and profiles refer to (for example ``"bge-m3"``); ``factory``
            takes an :class:`~m3retriever.encoders.base.EncoderOptions` and returns an
            :class:`~m3retriever.encoders.base.Encoder`. Factories must not load models:
            encoders load lazily on first use.
    """


@hookspec
def register_rerankers(register: Callable[[str, "RerankerFactory"], None]) -> None:
    """Register rerankers.

    Args:
        register: Call ``register(name, factory)`` once per reranker; ``factory`` takes a
            :class:`~m3retriever.rerankers.base.RerankerOptions` and returns a
            :class:`~m3retriever.rerankers.base.Reranker`.
    """


@hookspec
def register_adapters(register: Callable[[str, "AdapterFactory"], None]) -> None:
    """Register framework adapters.

    Args:
        register: Call ``register(name, factory)`` once per adapter (for example
            ``"llamaindex"``). ``factory(retriever, **options)`` returns the framework's
            object wrapping the shared retriever.
    """


@hookspec
def register_query_generators(register: Callable[[str, "QueryGeneratorFactory"], None]) -> None:
    """Register synthetic query generators (used by ``m3retriever model finetune --generate NAME``
    to make training pairs for a collection without labels).

    Args:
        register: Call ``register(name, factory)`` once per generator. ``factory(**options)``
            returns a callable that takes a sequence of ``(doc_id, chunk text)`` and returns
            a sequence of ``(query, doc_id)`` pairs (an LLM that writes a question a chunk
            answers, for example). m3retriever ships none: a generator that needs a network
            or a large model belongs in its own plugin.
    """


@hookspec
def register_readers(register: Callable[[str, ReaderFactory], None]) -> None:
    """Register file readers (what ``m3retriever ingest FOLDER`` reads each file with).

    Args:
        register: Call ``register(suffix, factory)`` once per file suffix read, the suffix
            lower case with its dot (``".pdf"``). ``factory()`` returns the reader: a callable
            that takes the file's :class:`~pathlib.Path` and returns a sequence of
            :class:`~m3retriever.readers.base.ReadDocument` (text, title, metadata,
            structure), raising an exception naming the problem for a file it cannot read.
            Import the reader's libraries in the factory, not at the top of the plugin module.
    """


@hookspec
def register_commands(cli: "CommandLine") -> None:
    """Add commands to the ``m3retriever`` command line.

    Args:
        cli: A :class:`~m3retriever.cli.registry.CommandLine`: call ``cli.command(path, run,
            help=..., options=(...), arguments=...)`` once per command, the way the built-in
            commands are declared. ``path`` is the words typed (``"hello"``, or ``"collection
            stats"`` within the ``collection`` group); ``run(args)`` runs it on the parsed
            arguments and returns the exit status; ``options`` names the shared option groups
            it takes (``"store"``, ``"model"``, ``"tenant"``, ``"index"``) and ``arguments(parser)``
            adds its own. ``cli.group(path, help=...)`` declares a group of commands. A command
            whose name is taken is skipped with a warning.
    """
