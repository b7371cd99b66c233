"""The driver of a Ray ingest.

The driver reads documents in batches (from a Ray Dataset, or a path read in a Ray task),
validates them and decides what to write exactly as a local ingest does
(:meth:`Ingestor.select <m3retriever.ingest.Ingestor.select>`: one ``retrieve`` of the chunks
0 and the content-hash skip), then hands the new and changed documents to a pool of encoding
actors in groups of ``group_docs``, at most ``in_flight`` groups per actor at a time (the
back-pressure that bounds what the driver holds). Each finished group is written with the
local ingest's own :meth:`Ingestor.write_group <m3retriever.ingest.Ingestor.write_group>`:

* an embedded store, which has one writer: the actor returns the points and the driver
  upserts them, adds their length totals and deletes stale chunks;
* a Qdrant server: the actor upserts the points itself, in Qdrant-sized batches retried on
  transient errors, and returns their chunk counts and length totals, which only the driver
  adds to the collection's (and tenant's) totals, so parallel writers never lose an update.

A group is counted only once all of that is done, so everything reported is in the store:
an actor killed mid-group is restarted and its group encoded again (Ray retries the call, and
an upsert by id overwrites), a driver killed mid-way leaves whole groups, and the same ingest
run again skips what is stored and writes the rest.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from m3retriever.distributed.cluster import ActorPlan, RayOptions, connect, plan_actors
from m3retriever.distributed.read import dataset_documents, read_path
from m3retriever.distributed.worker import EncodeWorker, GroupResult, WorkerJob, detached
from m3retriever.errors import InputError, M3RetrieverError
from m3retriever.ingest import IngestInterrupted, Ingestor, IngestReport, batched
from m3retriever.ingest.roots import ingest_root, record_root
from m3retriever.ingest.run import IngestRun, sigint_deferred
from m3retriever.ingest.sources import source_kind

if TYPE_CHECKING:
    from m3retriever.retriever import Retriever

__all__ = ["ray_ingest", "RayIngestError"]

logger = logging.getLogger(__name__)

Source = str | PathLike[str] | Iterable[str | PathLike[str]] | Any


class RayIngestError(M3RetrieverError):
    """An encoding actor failed for a reason that is not the input's (it died more often than
    Ray restarts it, or its node left the cluster); what was reported written is stored."""


def ray_ingest(
    retriever: Retriever,
    source: Source,
    options: RayOptions | None = None,
    *,
    show_progress: bool | None = None,
    on_progress: Callable[[IngestReport], None] | None = None,
) -> IngestReport:
    """Ingest with encoding spread over a Ray cluster; the collection is the one
    :meth:`Retriever.ingest_path <m3retriever.Retriever.ingest_path>` (a path) or
    :meth:`Retriever.ingest <m3retriever.Retriever.ingest>` (a dataset) builds.

    Args:
        retriever: The retriever whose collection is written (its store: embedded or a server).
        source: A folder, JSONL file or BEIR folder (read on the cluster), a list of them, or a
            Ray Dataset whose rows are documents (``text``, ``doc_id``, optional ``metadata``
            and ``source``).
        options: Cluster, actors and batching (default: :class:`RayOptions`).
        show_progress: Show a progress bar (default: the configuration's ``show_progress``).
        on_progress: Called with the report so far after each write, in the driver.

    Raises:
        MissingDependencyError: Ray is not installed (the ``ray`` extra).
        InputError: a document is invalid (those before it are written; a re-run skips them).
        RayIngestError: an actor failed for good.
        IngestInterrupted: Ctrl-C; its report counts the documents saved.
    """
    options = options or RayOptions()
    show = retriever.config.show_progress if show_progress is None else show_progress
    if isinstance(source, (str, PathLike)):
        return _ingest_path(retriever, Path(source), options, show, on_progress)
    if isinstance(source, (list, tuple)):
        total = IngestReport()
        for path in source:
            total = total + _ingest_path(retriever, Path(path), options, show, on_progress)
        return total
    if not hasattr(source, "iter_batches"):
        raise InputError(f"ray_ingest() takes a path, a list of paths or a Ray Dataset, got {type(source).__name__}")
    ray = connect(options.address)
    return _Driver(retriever, ray, options, None).run(
        dataset_documents(source, retriever._ingestor.doc_batch), show, on_progress
    )


def _ingest_path(
    retriever: Retriever,
    path: Path,
    options: RayOptions,
    show: bool,
    on_progress: Callable[[IngestReport], None] | None,
) -> IngestReport:
    kind = source_kind(path)  # a typo fails before the cluster is joined
    ray = connect(options.address)
    root = ingest_root(path, kind)  # the folder the sources are relative to
    dataset = read_path(ray, path.resolve(), retriever.config.max_document_chars)
    driver = _Driver(retriever, ray, options, str(root) if kind == "folder" else None)
    report = driver.run(dataset_documents(dataset, retriever._ingestor.doc_batch), show, on_progress)
    if retriever.store.has_collection(retriever.collection):
        tenant = retriever.scope.tenant if retriever.scope is not None else None
        record_root(retriever.store, retriever.collection, root, kind, tenant)
    return report


def _job(retriever: Retriever, ingestor: Ingestor, options: RayOptions) -> WorkerJob:
    """What the actors need; they write to a Qdrant server themselves, else return points."""
    location = retriever.config.location
    from m3retriever.store.remote import QdrantClientStore

    server = (
        location
        if isinstance(retriever.store, QdrantClientStore) and location.startswith(("http://", "https://"))
        else None
    )
    return WorkerJob(
        settings=retriever.settings,
        builder=detached(ingestor.builder),
        server=server,
        api_key=retriever.config.api_key,
        upsert_batch=options.upsert_batch,
    )


class _Driver:
    """One Ray ingest of one source into the retriever's collection."""

    def __init__(self, retriever: Retriever, ray: Any, options: RayOptions, root: str | None) -> None:
        self.retriever = retriever
        self.ingestor: Ingestor = retriever._ingestor
        self.ray = ray
        self.options = options
        self.root = root
        self.plan: ActorPlan = plan_actors(options, ray.cluster_resources())
        self.updated: set[str] = set()  # changed documents of the groups not yet written
        self.actors: list[Any] = []

    def run(
        self, batches: Iterator[list[Any]], show: bool, on_progress: Callable[[IngestReport], None] | None
    ) -> IngestReport:
        start = time.perf_counter()
        run = IngestRun(IngestReport(), total=None, show=show, on_progress=on_progress)
        finished = False
        try:
            with self.retriever.opened.write_lock:
                self._run(batches, run)
            finished = True
        except KeyboardInterrupt as exc:
            raise IngestInterrupted(replace(run.report, seconds=time.perf_counter() - start)) from exc
        finally:
            for actor in self.actors:
                self.ray.kill(actor)
            run.close(finished)
            if run.report.documents:
                self.ingestor.store.flush(self.ingestor.collection)
        return replace(run.report, seconds=time.perf_counter() - start)

    def _start(self) -> Any:
        """The actor pool (started with the first group to encode)."""
        from ray.util import ActorPool

        job = _job(self.retriever, self.ingestor, self.options)
        remote = self.ray.remote(num_cpus=self.plan.cpus, num_gpus=self.plan.gpus, max_restarts=3, max_task_retries=3)(
            EncodeWorker
        )
        self.actors = [remote.remote(job) for _ in range(self.plan.actors)]
        logger.info(
            "encoding with %d Ray actors (%g CPUs, %g GPUs each)", self.plan.actors, self.plan.cpus, self.plan.gpus
        )
        return ActorPool(self.actors)

    def _run(self, batches: Iterator[list[Any]], run: IngestRun) -> None:
        pool: Any = None
        pending = 0
        limit = self.plan.actors * self.options.in_flight
        seen: set[str] = set()
        read = 0
        for batch in self._unwrapped(batches):
            docs = self.ingestor.coerce_batch(batch, read, seen)
            read += len(docs)
            if pool is None and not self.ingestor.store.has_collection(self.ingestor.collection):
                self.retriever._ensure_collection()
            todo, updated, skipped = self.ingestor.select(docs, self.root)
            self.updated |= updated
            if skipped:
                run.add(IngestReport(documents=skipped, skipped=skipped))
            for group in batched(todo, self.options.group_docs):
                if pool is None:
                    pool = self._start()
                while pending >= limit:
                    self._write(self._next(pool), run)
                    pending -= 1
                totals = self.ingestor.length_totals()
                pool.submit(lambda actor, g: actor.encode.remote(*g), (group, totals, self.root))
                pending += 1
        while pending:
            self._write(self._next(pool), run)
            pending -= 1

    def _unwrapped(self, batches: Iterator[list[Any]]) -> Iterator[list[Any]]:
        """``batches``, with a read task's error of ours (a malformed JSONL line) raised as
        itself."""
        try:
            yield from batches
        except self.ray.exceptions.RayTaskError as exc:
            _raise_ours(exc)
            raise

    def _next(self, pool: Any) -> GroupResult:
        """The next finished group, with an actor's error turned into the library's."""
        exceptions = self.ray.exceptions
        try:
            result: GroupResult = pool.get_next_unordered()
            return result
        except exceptions.RayTaskError as exc:
            _raise_ours(exc)
            raise RayIngestError(f"an encoding actor failed: {exc}; {_RESUME}") from exc
        except exceptions.RayActorError as exc:
            raise RayIngestError(f"an encoding actor died more often than it is restarted ({exc}); {_RESUME}") from exc

    def _write(self, result: GroupResult, run: IngestRun) -> None:
        with sigint_deferred():  # Ctrl-C waits until the group is written and counted
            report = self.ingestor.write_group(
                result.points, result.lengths, result.docs, self.updated, upserted=result.upserted
            )
            self.updated -= {doc_id for doc_id, _ in result.docs}
            run.add(report)


_RESUME = "what was reported written is stored: run the same ingest again to resume"


def _raise_ours(exc: BaseException) -> None:
    """Raise the library's own error a Ray task failed with (its ``cause``), as itself; return
    when the task failed with something else."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, M3RetrieverError):
        raise cause from None
