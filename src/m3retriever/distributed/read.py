"""Documents for a Ray ingest: a path read in a Ray task (the project's own readers, so the
documents are those a local ingest reads), or a Ray Dataset given by the caller, handed to the
driver in batches."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any, Iterator

from m3retriever.types import Document

__all__ = ["read_path", "dataset_documents", "READ_BATCH"]

READ_BATCH = 256
"""Documents per block a read task yields."""


def _as_row(doc: Document) -> bytes:
    # Pickled whole: every field a reader fills (a Markdown file's heading structure too)
    # reaches the driver as a local ingest's reader gives it. Only our own read tasks write it.
    return pickle.dumps(doc, protocol=pickle.HIGHEST_PROTOCOL)


def _read_blocks(batch: dict[str, Any], max_chars: int | None) -> Iterator[dict[str, Any]]:
    """A Ray Data generator: the documents of each path in ``batch["path"]``, pickled, in
    blocks of :data:`READ_BATCH`."""
    import numpy as np

    from m3retriever.ingest.sources import read_beir_corpus, read_folder, read_jsonl, source_kind

    for path in batch["path"]:
        kind = source_kind(path)
        docs = (
            read_beir_corpus(path)
            if kind == "beir"
            else read_folder(path, max_chars=max_chars)
            if kind == "folder"
            else read_jsonl(path)
        )
        rows: list[bytes] = []
        for doc in docs:
            rows.append(_as_row(doc))
            if len(rows) >= READ_BATCH:
                yield {"doc": np.array(rows, dtype=object)}
                rows = []
        if rows:
            yield {"doc": np.array(rows, dtype=object)}


def read_path(ray: Any, path: str | Path, max_chars: int | None) -> Any:
    """A Ray Dataset of the documents at ``path`` (a folder, a JSONL file or a BEIR folder),
    read in a Ray task on the cluster (the path must be readable there: a shared file system),
    one pickled :class:`~m3retriever.types.Document` per row in column ``doc``. The read task asks for no CPU, so that it runs
    beside encoding actors that take every CPU."""
    items = ray.data.from_items([{"path": str(path)}])
    return items.map_batches(_read_blocks, fn_kwargs={"max_chars": max_chars}, batch_size=1, num_cpus=0)


def dataset_documents(dataset: Any, batch: int) -> Iterator[list[Any]]:
    """The rows of a Ray Dataset in lists of ``batch``: mappings with ``text``, ``doc_id`` (or
    ``id``/``_id``) and optional ``metadata``/``source``, or a ``doc`` column of JSON strings
    of such mappings (or of pickled documents: what :func:`read_path` gives)."""
    for block in dataset.iter_batches(batch_size=batch, batch_format="pandas"):
        yield [_document(r) for r in block.to_dict("records")]


def _document(record: dict[str, Any]) -> Any:
    if set(record) == {"doc"}:
        if isinstance(record["doc"], bytes):
            return pickle.loads(record["doc"])  # noqa: S301 - written by read_path's own tasks
        if isinstance(record["doc"], str):
            return json.loads(record["doc"])
    return _plain(record)


def _plain(record: dict[str, Any]) -> dict[str, Any]:
    """A row with numpy values made plain Python (what the validation accepts)."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        out[str(key)] = value.tolist() if hasattr(value, "tolist") else value
    return out
