"""Ingest with encoding on Ray against the plain ingest: the same SciFact documents, the small
profile, a fresh embedded store each run.

Modes: ``plain`` (``Retriever.ingest_path``), ``ray1`` and ``ray2`` (``ray_ingest`` on a local
Ray cluster of ``--cpus`` CPUs with 1 or 2 encoding actors sharing them). Each run is a child
process of its own (so that peak memory is the run's); the modes take turns, run after run.
Timed: the ingest call, with the retriever opened and, for Ray, the cluster started; the
actors start inside the timed call (each loads the models once), and every encoder's first
call is slow (the ONNX graph is optimised), so the table gives the rate after the first write
("steady") beside the rate of the whole call.
Memory: peak RSS of the driver and of each actor process, sampled every 0.1 s.

Run: ``nice -n 10 python tests/benchmarks/bench_ray_ingest.py --docs 200 --runs 3``;
``--table A.json B.json`` prints the table of saved runs together; ``--scifact-subset DIR``
writes the SciFact subset of the eval check (docs/benchmarks.md, "Ingest on Ray").
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
sys.path.insert(0, str(SRC))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)

SCIFACT = Path("/work/shared/data/scifact")
MODES = ("plain", "ray1", "ray2")
GROUP_DOCS = 16  # documents per encoding call: a few seconds of work, as the plain ingest's writes


class PeakRss:
    """Peak RSS (MiB) of this process and of each encoding actor of its own Ray cluster (its
    descendants), sampled in a thread."""

    def __init__(self) -> None:
        import psutil

        self.psutil = psutil
        self.driver = 0.0
        self.actors: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = self.psutil.Process()
        while not self._stop.is_set():
            self.driver = max(self.driver, me.memory_info().rss / 2**20)
            for proc in me.children(recursive=True):  # this run's cluster only
                try:
                    if "ray::EncodeWorker" in " ".join(proc.cmdline()):
                        rss = proc.memory_info().rss / 2**20
                        self.actors[proc.pid] = max(self.actors.get(proc.pid, 0.0), rss)
                except self.psutil.Error:
                    continue  # gone meanwhile
            self._stop.wait(0.1)


def child(mode: str, corpus: Path, location: Path, cpus: int) -> dict[str, Any]:
    from m3retriever import Retriever, load_config

    if mode != "plain":
        import ray

        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    r = Retriever(load_config(env={}, profile="small", location=str(location), collection="bench"))
    first: list[float] = []  # seconds and chunks at the first write
    start = time.perf_counter()

    def progress(report: Any) -> None:
        if report.chunks_written and not first:
            first.extend((time.perf_counter() - start, report.chunks_written))

    with PeakRss() as peak:
        if mode == "plain":
            report = r.ingest(_docs(corpus), on_progress=progress)
        else:
            from m3retriever.distributed import RayOptions, ray_ingest

            actors = int(mode.removeprefix("ray"))
            options = RayOptions(actors=actors, cpus=cpus / actors, group_docs=GROUP_DOCS)
            report = ray_ingest(r, corpus, options, on_progress=progress)
        seconds = time.perf_counter() - start
    r.close()
    return {
        "mode": mode,
        "docs": report.documents,
        "chunks": report.chunks_written,
        "seconds": seconds,
        "first_write": first[0],
        # after the first write: the models are loaded and their first call (ONNX graph
        # optimisation) is over, in the driver as in each actor
        "steady": (report.chunks_written - first[1]) / max(1e-9, seconds - first[0]),
        "driver_mib": peak.driver,
        "actor_mib": sorted(peak.actors.values()),
    }


def _docs(corpus: Path) -> Any:
    from m3retriever.ingest.sources import read_jsonl

    return read_jsonl(corpus)


def subset(n: int, out: Path) -> Path:
    """The first ``n`` SciFact documents as a JSONL file (``_id`` and ``title`` as BEIR)."""
    with gzip.open(SCIFACT / "corpus.jsonl.gz", "rt") as fh, out.open("w") as dst:
        for i, line in enumerate(fh):
            if i >= n:
                break
            dst.write(line)
    return out


def scifact_subset(out: Path, queries: int = 100, docs: int = 200, seed: int = 0) -> None:
    """A BEIR folder for the eval check: SciFact's first ``queries`` test queries, the documents
    judged for them and others drawn at random up to ``docs``."""
    import random

    rows = gzip.open(SCIFACT / "qrels" / "test.tsv.gz", "rt").read().splitlines(keepends=True)
    header, body = rows[0], rows[1:]
    picked = list(dict.fromkeys(line.split("\t")[0] for line in body))[:queries]
    qrels = [line for line in body if line.split("\t")[0] in picked]
    judged = {line.split("\t")[1] for line in qrels}
    corpus = [json.loads(line) for line in gzip.open(SCIFACT / "corpus.jsonl.gz", "rt")]
    others = [d["_id"] for d in corpus if d["_id"] not in judged]
    random.Random(seed).shuffle(others)
    keep = judged | set(others[: docs - len(judged)])
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    (out / "qrels" / "test.tsv").write_text(header + "".join(qrels))
    with (out / "corpus.jsonl").open("w") as fh:
        fh.writelines(json.dumps(d) + "\n" for d in corpus if d["_id"] in keep)
    with gzip.open(SCIFACT / "queries.jsonl.gz", "rt") as fh, (out / "queries.jsonl").open("w") as dst:
        dst.writelines(line for line in fh if json.loads(line)["_id"] in picked)


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def table(results: list[dict[str, Any]]) -> str:
    plain = [r for r in results if r["mode"] == "plain"]
    base = _median(plain, "steady")
    lines = [
        "| mode | docs | chunks | median s | chunks/s | first write s | steady chunks/s | steady ratio to plain "
        "| driver peak MiB | actor peak MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode in MODES:
        rows = [r for r in results if r["mode"] == mode]
        if not rows:
            continue
        rate = _median(rows, "chunks") / _median(rows, "seconds")
        steady = _median(rows, "steady")
        n = int(mode.removeprefix("ray")) if mode != "plain" else 0
        # the n largest: a worker process Ray starts and retitles meanwhile can be sampled too
        actors = (
            " + ".join(f"{m:.0f}" for m in max((sorted(r["actor_mib"])[-n:] for r in rows if n), key=sum, default=[]))
            or "-"
        )
        lines.append(
            f"| {mode} | {rows[0]['docs']} | {rows[0]['chunks']} | {_median(rows, 'seconds'):.1f} | {rate:.2f} | "
            f"{_median(rows, 'first_write'):.1f} | {steady:.2f} | {steady / base:.3f} | "
            f"{max(r['driver_mib'] for r in rows):.0f} | {actors} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--docs", type=int, default=200)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--json", help="write every run's figures here")
    p.add_argument("--table", nargs="+", help="print the table of these --json files (no run)")
    p.add_argument("--scifact-subset", metavar="DIR", help="write the eval check's SciFact subset to DIR (no run)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--corpus", help=argparse.SUPPRESS)
    p.add_argument("--location", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.scifact_subset:
        scifact_subset(Path(args.scifact_subset))
        return
    if args.table:
        print(table([row for path in args.table for row in json.loads(Path(path).read_text())]))
        return
    if args.child:
        print(json.dumps(child(args.child, Path(args.corpus), Path(args.location), args.cpus)))
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="m3r-ray-bench-") as tmp:
        corpus = subset(args.docs, Path(tmp) / "corpus.jsonl")
        for run in range(args.runs):
            for mode in args.modes.split(","):
                location = Path(tmp) / f"{mode}-{run}"
                cmd = [sys.executable, __file__, "--child", mode, "--corpus", str(corpus), "--location", str(location)]
                out = subprocess.run([*cmd, "--cpus", str(args.cpus)], capture_output=True, text=True, check=True)
                row = json.loads(out.stdout.strip().splitlines()[-1])
                results.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print(table(results))


if __name__ == "__main__":
    main()
