"""File readers: a file's suffix -> the reader that turns it into documents with text, title,
metadata and structure (:class:`ReadDocument`).

Readers are plugins (the ``register_readers`` hook); the built-ins read plain text and
Markdown (always), HTML (``html`` extra), PDF (``pdf``), Word .docx (``docx``), Jupyter
notebooks (always: JSON) and reStructuredText (``rst``); the ``readers`` extra installs them
all. :func:`read_file` reads one file the way a folder ingest does.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from m3retriever.errors import InputError
from m3retriever.readers.base import ReadDocument, Reader, ReaderFactory, Section, TextBuilder, UnreadableFile

__all__ = [
    "ReadDocument",
    "Reader",
    "ReaderFactory",
    "Section",
    "TextBuilder",
    "UnreadableFile",
    "reader_suffixes",
    "get_reader",
    "read_file",
]

logger = logging.getLogger(__name__)


def reader_suffixes() -> dict[str, str]:
    """Every suffix a loaded plugin registers a reader for (lower case, with its dot) -> the
    plugin that registers it."""
    from m3retriever.plugins import reader_owners

    return dict(sorted(reader_owners().items()))


def get_reader(suffix: str) -> Reader:
    """The reader for files ending in ``suffix`` (``".pdf"``; any case).

    Raises:
        InputError: no loaded plugin reads such files (the message lists those read).
        MissingDependencyError: the reader's library is missing (the message names the extra).
    """
    from m3retriever.plugins import reader_factories

    factories = reader_factories()
    factory = factories.get(suffix.lower())
    if factory is None:
        raise InputError(
            f"no reader for {suffix or 'files without a suffix'}; readers exist for {', '.join(sorted(factories))}"
        )
    reader: Reader = factory()
    return reader


def read_file(path: str | Path) -> Sequence[ReadDocument]:
    """Read one file with the reader for its suffix.

    Raises:
        InputError: no reader for its suffix.
        MissingDependencyError: the reader's library is missing.
        Exception: whatever the reader raises for a file it cannot read.
    """
    p = Path(path)
    return get_reader(p.suffix)(p)
