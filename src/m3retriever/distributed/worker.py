"""The encoding worker of a Ray ingest: one per actor, holding the collection's encoders
(loaded once, when the actor starts) and, for a Qdrant server, its own connection.

Each call takes a group of new or changed documents (with their content hashes), chunks and
encodes them with the same :class:`~m3retriever.ingest.points.PointBuilder` a local ingest
uses, and either returns the points (an embedded store: the driver is its one writer) or
upserts them itself in Qdrant-sized batches, retried on transient errors, and returns only
what the driver needs to finish the group (chunk counts and length totals). A call can run
twice (Ray retries it when an actor dies): both outcomes are the same points, by id.
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from m3retriever.config.settings import Settings
from m3retriever.ingest.points import PointBuilder
from m3retriever.store.schema import StoredPoint
from m3retriever.types import Document, LengthStats

__all__ = ["WorkerJob", "GroupResult", "EncodeWorker", "detached"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerJob:
    """What every worker of one ingest needs (sent to each actor once).

    Attributes:
        settings: The collection's settings in force (the encoders are built from them).
        builder: The driver's point builder without its encoders (:func:`detached`): every
            actor chunks and builds points exactly as the driver's ingestor would.
        server: The Qdrant server's URL when workers upsert themselves (``None``: they
            return the points to the driver).
        api_key: The server's API key.
        upsert_batch: Points per upsert request.
        upsert_attempts: Tries per upsert request (transient errors).
    """

    settings: Settings
    builder: PointBuilder
    server: str | None = None
    api_key: str | None = field(default=None, repr=False)
    upsert_batch: int = 256
    upsert_attempts: int = 5


@dataclass
class GroupResult:
    """What a worker hands back for one group.

    Attributes:
        docs: ``(doc id, n_chunks)`` of each document, in order.
        lengths: The group's own length totals per branch.
        points: The points (empty when the worker upserted them).
        upserted: The worker wrote the points to the server.
        pid: The worker's process id.
    """

    docs: list[tuple[str, int]]
    lengths: dict[str, LengthStats]
    points: list[StoredPoint]
    upserted: bool
    pid: int


def detached(builder: PointBuilder) -> PointBuilder:
    """A copy of ``builder`` without its encoders (what is sent to the actors, which load
    their own)."""
    shell = copy.copy(builder)
    shell.__dict__["encoders"] = None
    return shell


class EncodeWorker:
    """One encoding worker (a Ray actor's body; usable in-process, as the tests do)."""

    def __init__(self, job: WorkerJob) -> None:
        from m3retriever.components import encoders_for

        self.job = job
        self.builder = copy.copy(job.builder)
        self.builder.encoders = encoders_for(job.settings)
        self.store: Any = None
        if job.server is not None:
            from m3retriever.store import open_store

            self.store = open_store(job.server, api_key=job.api_key)

    def pid(self) -> int:
        """The worker's process id."""
        return os.getpid()

    def encode(
        self, docs: Sequence[tuple[Document, str]], totals: Mapping[str, LengthStats], root: str | None
    ) -> GroupResult:
        """Chunk and encode a group; upsert it too when the worker writes to a server.

        Args:
            docs: ``(document, content hash)`` of each document.
            totals: The length totals to normalise with (the collection's, as the driver last
                knew them).
            root: The folder the documents were read from (``None``: not a folder).
        """
        from m3retriever.store.batched_upsert import upsert_batches

        todo = self.builder.chunked(docs)
        points, lengths = self.builder.encode(todo, totals, root)
        counts = [(doc.doc_id, len(chunks)) for doc, _, chunks in todo]
        if self.store is None:
            return GroupResult(counts, lengths, points, upserted=False, pid=os.getpid())
        upsert_batches(
            self.store, self.builder.collection, points, batch=self.job.upsert_batch, attempts=self.job.upsert_attempts
        )
        return GroupResult(counts, lengths, [], upserted=True, pid=os.getpid())
