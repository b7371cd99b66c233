"""Ingest with encoding on Ray (``m3retriever.distributed``): a local Ray cluster of two CPUs
(started once for the module), the tiny models, a folder of 48 documents. The collection a Ray
ingest builds equals the one a local ingest builds (points, payloads, vectors, metadata and
length totals; BM25 weights equal once both are renormalised, as they follow the order of the
writes), and an actor killed with SIGKILL mid-way loses nothing: the run goes on or a re-run
finishes it, to the same collection."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kill_checks import Seen, read_collection, same_collection
from m3retriever import Retriever, load_config
from m3retriever.distributed import RayIngestError, RayOptions, ray_ingest
from m3retriever.distributed.cluster import plan_actors
from m3retriever.errors import ConfigError, MissingDependencyError
from m3retriever.ingest import IngestReport
from m3retriever.maintenance.renormalize import renormalize

pytestmark = pytest.mark.slow  # a Ray cluster and its worker processes

ray = pytest.importorskip("ray")

N_DOCS = 48


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Any:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ray") / "docs"
    root.mkdir()
    for i in range(N_DOCS):
        words = " ".join(f"term{(i * 7 + j) % 89} item{i}" for j in range(20 + (i % 5) * 25))
        (root / f"doc{i:03d}.md").write_text(f"# Document {i}\n\n{words}\n")
    return root


def _retriever(location: Path, tiny_settings: dict) -> Retriever:
    # The lexical branch on: its length totals and length-normalised weights are compared too.
    return Retriever(load_config(env={}, location=str(location), collection="c", bm25=True, **tiny_settings))


def _plain(tmp_path: Path, folder: Path, tiny_settings: dict) -> Seen:
    with _retriever(tmp_path / "plain", tiny_settings) as r:
        r.ingest_path(folder)
    seen = read_collection(tmp_path / "plain", "c")
    assert seen is not None
    return seen


def _bm25_renormalized(location: Path, tiny_settings: dict) -> dict[str, Any]:
    with _retriever(location, tiny_settings) as r:
        renormalize(r.opened)
    seen = read_collection(location, "c")
    assert seen is not None
    return {pid: vectors["bm25"] for pid, (_, vectors) in seen.points.items()}


def _same_bm25(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(
        list(v.indices) == list(b[k].indices) and np.allclose(v.values, b[k].values, atol=1e-6) for k, v in a.items()
    )


def test_a_ray_ingest_builds_the_collection_a_local_ingest_builds(
    tmp_path: Path, folder: Path, tiny_settings: dict
) -> None:
    plain = _plain(tmp_path, folder, tiny_settings)
    with _retriever(tmp_path / "ray", tiny_settings) as r:
        report = ray_ingest(r, folder, RayOptions(actors=2, cpus=1, group_docs=5))
        assert (report.documents, report.added, report.chunks_written) == (N_DOCS, N_DOCS, len(plain.points))
        again = ray_ingest(r, folder, RayOptions(actors=1, group_docs=5))
        assert (again.skipped, again.chunks_written) == (N_DOCS, 0)  # the content-hash skip
    built = read_collection(tmp_path / "ray", "c")
    assert built is not None and len(built.points) > N_DOCS  # documents of several chunks
    assert built.meta["lengths"] == plain.meta["lengths"]  # every chunk counted once
    assert same_collection(built, plain)  # ids, payloads, vectors (BM25 by terms), metadata
    assert _same_bm25(
        _bm25_renormalized(tmp_path / "ray", tiny_settings), _bm25_renormalized(tmp_path / "plain", tiny_settings)
    )


def _encode_workers() -> list[int]:
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "ray::EncodeWorker" in cmdline:
            found.append(proc.info["pid"])
    return found


def test_an_actor_killed_mid_ingest_loses_nothing_and_a_rerun_finishes(
    tmp_path: Path, folder: Path, tiny_settings: dict
) -> None:
    plain = _plain(tmp_path, folder, tiny_settings)
    killed: list[int] = []
    reported: list[IngestReport] = []
    at_kill: list[int] = []

    def kill_one(report: IngestReport) -> None:
        reported.append(report)
        if not killed and report.chunks_written:
            workers = _encode_workers()
            assert workers, "no encoding actor process found"
            os.kill(workers[0], signal.SIGKILL)
            killed.append(workers[0])
            at_kill.append(report.documents)

    location = tmp_path / "ray"
    with _retriever(location, tiny_settings) as r:
        try:
            first = ray_ingest(r, folder, RayOptions(actors=2, cpus=1, group_docs=2, in_flight=1), on_progress=kill_one)
            assert first.documents == N_DOCS  # Ray restarted the actor and ran its group again
        except RayIngestError:
            pass  # the actor died for good: the re-run below finishes the job
        assert at_kill and 0 < at_kill[0] < N_DOCS  # killed mid-way
        saved = read_in(r)
        assert saved >= reported[-1].documents  # every document reported written is stored
        rerun = ray_ingest(r, folder, RayOptions(actors=1, group_docs=8))
        assert rerun.documents == N_DOCS and rerun.skipped >= reported[-1].documents
    assert killed and not _alive(killed[0])
    built = read_collection(location, "c")
    assert same_collection(built, plain, lengths=False)


def read_in(r: Retriever) -> int:
    """Documents stored whole (their chunk 0 is there)."""
    return sum(1 for p in r.store.scroll("c") if p.payload.get("chunk_index") == 0)


def _alive(pid: int) -> bool:
    import psutil

    return psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE


def test_actors_are_sized_from_the_cluster() -> None:
    assert plan_actors(RayOptions(), {"CPU": 16.0}) == plan_actors(RayOptions(actors=4, cpus=4), {"CPU": 16.0})
    gpus = plan_actors(RayOptions(), {"CPU": 32.0, "GPU": 8.0})
    assert (gpus.actors, gpus.cpus, gpus.gpus) == (8, 1.0, 1.0)
    half = plan_actors(RayOptions(gpus=0.5), {"CPU": 32.0, "GPU": 2.0})
    assert (half.actors, half.gpus) == (4, 0.5)
    with pytest.raises(ConfigError, match="lower --ray-actors or --ray-gpus"):
        plan_actors(RayOptions(actors=3), {"CPU": 8.0, "GPU": 2.0})
    with pytest.raises(ConfigError, match="at least 1"):
        RayOptions(actors=0)


def test_without_ray_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from m3retriever.distributed.cluster import ray_module

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingDependencyError, match=r"m3retriever\[ray\]"):
        ray_module()


def test_a_jsonl_file_is_read_on_the_cluster_as_a_plain_ingest_reads_it(tmp_path: Path, tiny_settings: dict) -> None:
    corpus = tmp_path / "docs.jsonl"  # not corpus.jsonl: its folder would read as a BEIR corpus
    lines = [
        f'{{"_id": "d{i}", "title": "Title {i}", "text": "Body of document {i}.", "year": {2000 + i}}}'
        for i in range(6)
    ]
    corpus.write_text("\n".join(lines) + "\n")
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": "not a document"}\n')  # beside it, not read
    with _retriever(tmp_path / "plain", tiny_settings) as r:
        r.ingest_path(corpus)
    with _retriever(tmp_path / "ray", tiny_settings) as r:
        assert ray_ingest(r, [corpus], RayOptions(actors=1)).documents == 6
    plain, built = read_collection(tmp_path / "plain", "c"), read_collection(tmp_path / "ray", "c")
    assert built is not None and same_collection(built, plain)


def test_a_ray_dataset_of_documents_is_ingested_as_the_same_list_is(tmp_path: Path, tiny_settings: dict) -> None:
    docs = [
        {"doc_id": f"d{i}", "text": f"Document {i} about item{i} and term{i % 3}.", "metadata": {"i": i}, "source": "s"}
        for i in range(6)
    ]
    with _retriever(tmp_path / "plain", tiny_settings) as r:
        r.ingest(docs)
    with _retriever(tmp_path / "ray", tiny_settings) as r:
        assert ray_ingest(r, ray.data.from_items(docs), RayOptions(actors=1)).documents == 6
    plain, built = read_collection(tmp_path / "plain", "c"), read_collection(tmp_path / "ray", "c")
    assert built is not None and same_collection(built, plain)
