"""The collections one server serves: an allow-list fixed at start, each collection opened once.

Several collections in one store location share that store (an embedded store can be opened
only once per process): the first collection's retriever opens it and the others borrow it.
A tool call names a collection of the allow-list, or none for the default (the first); any
other name is refused with the names it may use. The server's read-only mode and tenant hold
for every collection alike.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterator, Mapping, Sequence

from m3retriever import CollectionNotFoundError, Config, ConfigError, InputError, Retriever

__all__ = ["Served", "ServedCollections", "open_collections", "parse_collection_list"]


@dataclass(frozen=True)
class Served:
    """One served collection: its retriever and what it holds (shown to the agent)."""

    retriever: Retriever
    description: str | None = None

    @property
    def name(self) -> str:
        """The collection's name."""
        return self.retriever.collection


class ServedCollections:
    """The allow-list: the served collections by name, the first one the default.

    Args:
        served: The collections, the default first; names must be unique.

    Raises:
        ConfigError: for an empty list or a name given twice.
    """

    def __init__(self, served: Sequence[Served]) -> None:
        if not served:
            raise ConfigError("an MCP server needs at least one collection to serve; pass a retriever")
        by_name: dict[str, Served] = {}
        for s in served:
            if s.name in by_name:
                raise ConfigError(f"collection {s.name!r} is listed twice; list each served collection once")
            by_name[s.name] = s
        self._by_name = by_name
        self.default = served[0]

    @property
    def names(self) -> list[str]:
        """The served collections' names, the default first."""
        return list(self._by_name)

    def __iter__(self) -> Iterator[Served]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def get(self, name: str | None) -> Served:
        """The collection ``name`` (``None``: the default one).

        Raises:
            InputError: ``name`` is not on the allow-list (the message lists the names).
        """
        if name is None:
            return self.default
        served = self._by_name.get(name)
        if served is None:
            shown = name if len(name) <= 80 else name[:80] + "..."
            raise InputError(
                f"collection {shown!r} is not served here; this server serves {', '.join(map(repr, self.names))} "
                f"(see list_collections): pass one of those, or leave collection out for {self.default.name!r}"
            )
        return served


def parse_collection_list(value: str) -> list[str]:
    """``"a,b, c"`` as ``["a", "b", "c"]`` (the ``--collections`` option).

    Raises:
        ConfigError: for an empty list or an empty name.
    """
    names = [n.strip() for n in value.split(",")]
    if not value.strip() or any(not n for n in names):
        raise ConfigError(f"--collections takes names separated by commas, such as 'docs,notes'; got {value!r}")
    return names


def parse_descriptions(values: Sequence[str] | None) -> dict[str, str]:
    """``["docs=Our handbook"]`` as ``{"docs": "Our handbook"}`` (``--collection-description``).

    Raises:
        ConfigError: for a value without ``=`` or with an empty name or text.
    """
    out: dict[str, str] = {}
    for value in values or ():
        name, sep, text = value.partition("=")
        if not sep or not name.strip() or not text.strip():
            raise ConfigError(
                f"--collection-description takes NAME=TEXT, such as 'docs=Our engineering handbook'; got {value!r}"
            )
        out[name.strip()] = text.strip()
    return out


def open_collections(config: Config, names: Sequence[str], *, must_exist: bool) -> list[Retriever]:
    """Open the collections ``names`` of ``config``'s store, sharing one store.

    The first retriever owns the store; the others borrow it, so close them first (or let the
    process end). ``config``'s tenant and every other setting apply to each collection.

    Args:
        config: The configuration (its ``collection`` is replaced by each name).
        names: The collections, the default first.
        must_exist: Refuse a collection that does not exist (a read-only server), creating
            nothing.

    Raises:
        ConfigError: for an invalid or repeated name.
        CollectionNotFoundError: ``must_exist`` and a collection is missing.
    """
    if len(set(names)) != len(names):
        raise ConfigError(f"--collections lists a name twice ({', '.join(names)}); list each collection once")
    first = Retriever(replace(config, collection=names[0]), must_exist=must_exist)
    opened = [first]
    try:
        for name in names[1:]:
            cfg = replace(config, collection=name)
            if must_exist and not first.store.has_collection(name):
                raise CollectionNotFoundError(name, first.store.where)
            opened.append(Retriever(cfg, store=first.store))
    except BaseException:
        close_all(opened)
        raise
    return opened


def close_all(retrievers: Sequence[Retriever]) -> None:
    """Close ``retrievers``, the borrowers before the store's owner (the first)."""
    for r in reversed(retrievers):
        r.close()


def describe(served: Sequence[Retriever], description: str | None, descriptions: Mapping[str, str]) -> list[Served]:
    """``served`` with their descriptions: ``descriptions[name]``, else ``description`` for the
    first (the default) collection."""
    unknown = set(descriptions) - {r.collection for r in served}
    if unknown:
        raise ConfigError(
            f"a description names {', '.join(sorted(map(repr, unknown)))}, which is not served; "
            "describe only the served collections"
        )
    out = []
    for i, r in enumerate(served):
        text = descriptions.get(r.collection, description if i == 0 else None)
        out.append(Served(r, text.strip() if text and text.strip() else None))
    return out
