"""Cold command-line search: process start to printed hits, small profile.

Each run is a new process (``python -m m3retriever.cli search ...``), timed from outside with
``time.perf_counter`` around ``subprocess.run``, pinned to ``--cores`` (default the first two);
medians of ``--runs`` runs after one uncounted run that fills the page cache and the cache of
optimised ONNX graphs. A second table splits one process's time (also medians of new
processes): imports, opening the collection, the first search (with the search's own
encode / search / rerank timings), a second search, and closing the store.

The collection is built once from ``--corpus`` (default: the project's ``docs/``) in
``--location`` with the small profile, unless it exists. ``--before SRC`` times another
source tree too (``PYTHONPATH=SRC``: e.g. ``git archive <commit> src | tar -x -C /tmp/old``),
run for run in turn with this one.

Run alone: ``python tests/benchmarks/bench_cold_search.py --runs 10``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
QUERY = "how do I ingest a folder of markdown files"
SECOND_QUERY = "which reranker does the small profile use"

# Run in a new process: the phases of one command-line search, as JSON on stdout.
PHASES = """
import json, sys, time
t0 = time.perf_counter()
from m3retriever.config import Config
from m3retriever.retriever import Retriever
t1 = time.perf_counter()
r = Retriever(Config(location=sys.argv[1], profile="small"), must_exist=True)
t2 = time.perf_counter()
first = r.search(sys.argv[2])
t3 = time.perf_counter()
r.search(sys.argv[3])
t4 = time.perf_counter()
r.close()
t5 = time.perf_counter()
heavy = sorted(m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules)
print(json.dumps({"import": t1 - t0, "open": t2 - t1, "first search": t3 - t2, "second search": t4 - t3,
                  "close": t5 - t4, "stages": {k: v / 1000 for k, v in first.timings_ms.items()}, "heavy": heavy}))
"""


def _env(src: Path | None) -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if src is not None:
        env["PYTHONPATH"] = str(src)
    return env


def _pin(cores: set[int] | None) -> Callable[[], None] | None:
    if not cores:
        return None
    return lambda: os.sched_setaffinity(0, cores)


def build(location: Path, corpus: Path) -> None:
    """Ingest ``corpus`` into ``location`` with the small profile (once)."""
    if location.exists():
        return
    cmd = [
        sys.executable,
        "-m",
        "m3retriever.cli",
        "ingest",
        str(corpus),
        "--profile",
        "small",
        "--location",
        str(location),
        "--quiet",
    ]
    subprocess.run(cmd, check=True, env=_env(ROOT / "src"), stdout=subprocess.DEVNULL)


def time_process(cmd: list[str], env: dict[str, str], cores: set[int] | None) -> float:
    """Seconds from start to exit of one process (its output is read and dropped)."""
    began = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, preexec_fn=_pin(cores))
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr.decode(errors='replace')}")
    return seconds


def phases(location: Path, env: dict[str, str], cores: set[int] | None) -> dict[str, Any]:
    cmd = [sys.executable, "-c", PHASES, str(location), QUERY, SECOND_QUERY]
    done = subprocess.run(cmd, env=env, capture_output=True, preexec_fn=_pin(cores), check=True)
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


def _stats(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s ({min(values):.2f}–{max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--location", default="/tmp/m3r-bench/cold-search", help="the small-profile store")
    ap.add_argument("--corpus", default=str(ROOT / "docs"), help="folder ingested when the store is missing")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--cores", default="0,1", help="CPUs to pin each process to ('' for no pinning)")
    ap.add_argument("--before", type=Path, help="another source tree to time alongside")
    args = ap.parse_args(argv)
    location = Path(args.location)
    build(location, Path(args.corpus))
    cores = {int(c) for c in args.cores.split(",") if c.strip()} or None
    trees: dict[str, Path | None] = {"now": ROOT / "src"}
    if args.before is not None:
        trees["before"] = args.before
    search = [
        sys.executable,
        "-m",
        "m3retriever.cli",
        "search",
        QUERY,
        "--profile",
        "small",
        "--location",
        str(location),
    ]
    walls: dict[str, list[float]] = {name: [] for name in trees}
    split: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for src in trees.values():  # uncounted: page cache, optimised graphs
        time_process(search, _env(src), cores)
    for _ in range(args.runs):
        for name, src in trees.items():
            walls[name].append(time_process(search, _env(src), cores))
            split[name].append(phases(location, _env(src), cores))
    print(f"cold `m3retriever search`, small profile, {args.runs} runs, cores {args.cores or 'all'}\n")
    print("| source | process start to printed hits, median (min–max) |\n|---|---|")
    for name in trees:
        print(f"| {name} | {_stats(walls[name])} |")
    keys = ["import", "open", "first search", "second search", "close"]
    stages = sorted({k for runs in split.values() for run in runs for k in run["stages"]})
    print("\n| phase (one process, medians) | " + " | ".join(trees) + " |\n|---|" + "---|" * len(trees))
    for key in keys:
        print(f"| {key} | " + " | ".join(f"{statistics.median(r[key] for r in split[n]):.2f} s" for n in trees) + " |")
    for stage in stages:
        cells = [f"{statistics.median(r['stages'].get(stage, 0.0) for r in split[n]):.2f} s" for n in trees]
        print(f"| first search: {stage} | " + " | ".join(cells) + " |")
    print(
        "| torch/transformers imported | " + " | ".join(", ".join(split[n][0]["heavy"]) or "no" for n in trees) + " |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
