"""The MCP server under load: throughput, latency and memory of ``m3retriever serve-mcp --http``.

A real server process (the CLI, streamable HTTP on localhost, bearer token) over an embedded
store of a few hundred documents (SciFact's first ones, or synthetic text without SciFact), with
the ``small`` profile when its models are installed, else the tiny random models of
``tests/tinymodels.py`` (then only the plumbing is timed, not real models). Real ``mcp`` client
sessions, one per simulated client, all in this process:

- throughput and latency with 1, 4 and 8 concurrent clients, each calling ``search`` in a loop;
- the server's RSS (psutil) at a steady state, after 1,000 more searches, during and after a
  burst of maximum-size queries (``MAX_QUERY_CHARS`` characters each), and after a few normal
  searches once more: it should come back near the steady level.

Client and server share the machine's cores: on a small machine the figures are a lower bound.

Run alone: ``python tests/benchmarks/bench_mcp.py [--smoke]``; in the report:
``python tests/benchmarks/run_all.py --only mcp``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Callable

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
DATA = TESTS.parents[1] / "shared" / "data" / "scifact"
CONCURRENCY = (1, 4, 8)
FULL = {"docs": 300, "calls_per_client": 25, "memory_calls": 1000, "burst": 32, "settle": 50}
SMOKE = {"docs": 40, "calls_per_client": 3, "memory_calls": 60, "burst": 8, "settle": 10}
CALL_TIMEOUT = 120.0


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))] if v else float("nan")


# -- setup -----------------------------------------------------------------------------------


def small_models_installed() -> bool:
    """Whether the ``small`` profile's wheel models are installed (no download is attempted)."""
    from m3retriever.runtime import wheels as models

    try:
        for find in (models.bge_small_onnx_dir, models.msmarco_reranker_onnx_dir, models.splade_tiny_dir):
            find()
    except Exception:  # noqa: BLE001 - any failure means "not usable here"
        return False
    return True


def model_settings(workdir: Path) -> tuple[str, dict[str, Any]]:
    """The profile's name for the report and the config settings (tiny models built if needed)."""
    if small_models_installed():
        return "small", {"profile": "small", "device": "cpu"}
    sys.path.insert(0, str(TESTS))
    from tinymodels import build_tiny_bge_m3, build_tiny_reranker

    settings = {
        "profile": "bge-m3",
        "dense_model": str(build_tiny_bge_m3(workdir / "tiny-bge-m3")),
        "reranker_model": str(build_tiny_reranker(workdir / "tiny-reranker")),
        "device": "cpu",
        "max_length": 128,
        "chunk_tokens": 48,
        "chunk_overlap": 8,
    }
    return "tiny random models (small profile not installed)", settings


def corpus(n: int, data: Path = DATA) -> tuple[list[dict[str, Any]], list[str], str]:
    """``n`` documents, queries to send, and where they come from (SciFact in ``data`` if there)."""
    if (data / "corpus.jsonl.gz").is_file():
        from m3retriever.ingest.sources import read_beir_corpus
        from m3retriever.labelled.data import load_beir

        docs = []
        for doc in read_beir_corpus(data):
            docs.append({"doc_id": doc.doc_id, "text": doc.text[:2000], "metadata": dict(doc.metadata)})
            if len(docs) >= n:
                break
        queries = list(load_beir(data, "test", max_queries=200).queries.values())
        return docs, queries, f"the first {len(docs)} SciFact documents (cut to 2,000 characters)"
    sys.path.insert(0, str(TESTS))
    from tinymodels import TRAINING_TEXT

    rng = random.Random(7)
    docs = [{"doc_id": f"d{i}", "text": " ".join(rng.sample(TRAINING_TEXT, 4))} for i in range(n)]
    return docs, [t.split(",")[0] for t in TRAINING_TEXT], f"{n} synthetic documents (SciFact not found)"


def seed_store(location: Path, settings: dict[str, Any], docs: list[dict[str, Any]], log: Callable[[str], None]) -> None:
    """Ingest ``docs`` (a re-run skips unchanged ones) and close the store for the server."""
    from m3retriever import FingerprintMismatchError, Retriever, load_config, open_collection, renormalize

    t = time.perf_counter()
    config = load_config(env={}, location=str(location), **settings)
    try:
        retriever = Retriever(config)
    except FingerprintMismatchError:  # a cached store from before the BM25 parameters were recorded
        with open_collection(config) as collection:
            log(f"[mcp] store: {renormalize(collection)}")
        retriever = Retriever(config)
    with retriever as r:
        report = r.ingest(docs, show_progress=False)
    log(f"[mcp] store: {report} in {time.perf_counter() - t:.0f}s")


def write_config(path: Path, location: Path, settings: dict[str, Any]) -> Path:
    def toml(v: Any) -> str:
        return repr(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    values = {"location": str(location), **settings}
    path.write_text("".join(f"{k} = {toml(v)}\n" for k, v in values.items()))
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(config: Path, port: int, token: str, log_path: Path) -> subprocess.Popen:
    """``m3retriever serve-mcp --http`` in a subprocess; returns once it listens."""
    script = Path(sys.executable).with_name("m3retriever")
    cli = [str(script)] if script.is_file() else [sys.executable, "-c", "import sys; from m3retriever.cli import main; sys.exit(main())"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("M3R_")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", M3R_MCP_TOKEN=token)
    with open(log_path, "w") as out:
        proc = subprocess.Popen(
            [*cli, "serve-mcp", "--config", str(config), "--http", "--port", str(port)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server did not listen on port {port}: {log_path.read_text()[-2000:]}")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=20)


# -- measuring -------------------------------------------------------------------------------


class RSSSampler:
    """The server's resident memory, now and at its peak while :meth:`watch` runs."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def now_mb(self) -> float:
        return self.proc.memory_info().rss / 2**20

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def watch(self) -> None:
        self.peak = self.proc.memory_info().rss
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> float:
        """Stop watching; the peak in MiB."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.peak / 2**20


@asynccontextmanager
async def mcp_session(url: str, token: str) -> AsyncIterator[Any]:
    """One client: its own HTTP connection pool and MCP session."""
    import httpx2
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30, read=CALL_TIMEOUT))
    async with http, streamable_http_client(url, http_client=http) as (read, write):
        async with ClientSession(read, write, read_timeout_seconds=CALL_TIMEOUT) as session:
            await session.initialize()
            yield session


async def load(url: str, token: str, clients: int, calls: int, queries: list[str], top_k: int = 10) -> dict[str, Any]:
    """``clients`` sessions calling ``search`` ``calls`` times each, at once.

    Returns:
        Calls, errors, wall seconds (sessions opened beforehand), calls/s and per-call latencies.
    """
    import anyio

    latencies: list[float] = []
    errors: list[str] = []
    ready = anyio.Event()

    async def client(i: int, opened: Any) -> None:
        async with mcp_session(url, token) as session:
            opened.append(i)
            await ready.wait()
            for k in range(calls):
                t = time.perf_counter()
                result = await session.call_tool("search", {"query": queries[(i * calls + k) % len(queries)], "top_k": top_k})
                latencies.append((time.perf_counter() - t) * 1000)
                if result.is_error:
                    errors.append(str(result.content[0].text)[:200])

    opened: list[int] = []
    async with anyio.create_task_group() as tg:
        for i in range(clients):
            tg.start_soon(client, i, opened)
        while len(opened) < clients:
            await anyio.sleep(0.01)
        start = time.perf_counter()
        ready.set()
    wall = time.perf_counter() - start
    n = len(latencies)
    return {"clients": clients, "calls": n, "errors": errors[:3], "n_errors": len(errors), "wall_s": wall,
            "calls_per_s": n / wall, "p50_ms": statistics.median(latencies), "p95_ms": pct(latencies, 0.95)}


def max_size_queries(n: int, words: list[str]) -> list[str]:
    """``n`` different queries of exactly ``MAX_QUERY_CHARS`` characters."""
    from m3retriever.validation import MAX_QUERY_CHARS

    rng = random.Random(11)
    out = []
    for _ in range(n):
        text = " ".join(rng.choice(words) for _ in range(MAX_QUERY_CHARS // 4))
        out.append((text * 2)[:MAX_QUERY_CHARS])
    return out


async def measure(url: str, token: str, rss: RSSSampler, queries: list[str], sizes: dict[str, int], log: Callable[[str], None]) -> dict[str, Any]:
    """Every measurement against a running server (see the module)."""
    await load(url, token, 1, 5, queries)  # warm-up: the first search loads the models
    res: dict[str, Any] = {"load": []}
    for clients in CONCURRENCY:
        r = await load(url, token, clients, sizes["calls_per_client"], queries)
        res["load"].append(r)
        log(f"[mcp] {clients} client(s): {r['calls_per_s']:.1f} calls/s, p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms")
    mem = {"steady": rss.now_mb()}
    rss.watch()
    r = await load(url, token, 4, sizes["memory_calls"] // 4, queries)
    mem.update(peak_searches=rss.stop(), after_searches=rss.now_mb(), search_calls=r["calls"], search_errors=r["n_errors"])
    words = [w for q in queries for w in q.split()] or ["word"]
    rss.watch()
    burst = await load(url, token, 8, max(1, sizes["burst"] // 8), max_size_queries(sizes["burst"], words))
    mem.update(peak_burst=rss.stop(), after_burst=rss.now_mb())
    await load(url, token, 4, max(1, sizes["settle"] // 4), queries)
    mem["after_settle"] = rss.now_mb()
    log(f"[mcp] memory (MiB): {mem}; burst: {burst}")
    res.update(memory=mem, burst=burst)
    return res


def _store_location(profile: str, tmp: Path, n_docs: int) -> Path:
    # The small profile's store is cached across runs (unchanged documents are skipped); the
    # tiny models are rebuilt in a new folder each run, so their store is too.
    return Path(f"/tmp/m3r-bench/mcp-small-{n_docs}") if profile == "small" else tmp / "store"


def missing_packages() -> list[str]:
    """The packages this benchmark needs that are not installed."""
    import importlib.util

    return [m for m in ("m3retriever_mcp", "mcp", "httpx2", "psutil") if importlib.util.find_spec(m) is None]


def run(smoke: bool, command: str, log: Callable[[str], None], data: Path = DATA) -> tuple[str, dict[str, Any]]:
    """Seed a store, serve it with ``m3retriever serve-mcp --http`` and measure (see the module).

    Returns:
        The markdown section and the raw results.
    """
    missing = missing_packages()
    if missing:
        msg = f"skipped: {', '.join(missing)} not installed (pip install -e plugins/m3retriever-mcp psutil)"
        return f"## MCP server under load\n\n{msg}\n", {"skipped": msg}
    import anyio

    sizes = SMOKE if smoke else FULL
    tmp = Path(tempfile.mkdtemp(prefix="m3r-bench-mcp-"))
    try:
        profile, settings = model_settings(tmp)
        docs, queries, source = corpus(sizes["docs"], data)
        location = _store_location(profile, tmp, len(docs))
        seed_store(location, settings, docs, log)
        config = write_config(tmp / "m3r.toml", location, settings)
        port, token = free_port(), os.urandom(8).hex()
        t = time.perf_counter()
        proc = start_server(config, port, token, tmp / "server.log")
        try:
            rss = RSSSampler(proc.pid)
            res = anyio.run(measure, f"http://127.0.0.1:{port}/mcp", token, rss, queries, sizes, log)
        finally:
            stop_server(proc)
        res.update(profile=profile, source=source, docs=len(docs), sizes=sizes, seconds=time.perf_counter() - t)
        return markdown(res, command), res
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def markdown(res: dict[str, Any], command: str) -> str:
    """The report's section."""
    from m3retriever.validation import MAX_QUERY_CHARS

    mem, burst, sizes = res["memory"], res["burst"], res["sizes"]
    lines = [
        f"## MCP server under load (streamable HTTP, {res['profile']})",
        "",
        f"Reproduce: `{command}`",
        "",
        f"`m3retriever serve-mcp --http` in its own process (bearer token, localhost) over {res['source']}; "
        "each client is its own `mcp` ClientSession (own HTTP connection pool) in the benchmark process, "
        f"calling `search` (top_k 10) {sizes['calls_per_client']} times back to back, all clients at once, "
        "after a warm-up. Client and server share this machine's cores. Latency is per call, seen by the client.",
        "",
        "| concurrent clients | calls | calls/s | p50 ms | p95 ms | errors |",
        "|---|---|---|---|---|---|",
    ]
    for r in res["load"]:
        lines.append(f"| {r['clients']} | {r['calls']} | {r['calls_per_s']:.1f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['n_errors']} |")
    lines += [
        "",
        f"Server RSS (psutil), MiB. Burst: {burst['calls']} queries of {MAX_QUERY_CHARS:,} characters from 8 "
        f"clients at once (p50 {burst['p50_ms']:.0f} ms, p95 {burst['p95_ms']:.0f} ms, {burst['n_errors']} errors; "
        "each is cut to the tokens the models read before they run).",
        "",
        "| point | RSS MiB |",
        "|---|---|",
        f"| steady (after the runs above) | {mem['steady']:.0f} |",
        f"| peak during {mem['search_calls']:,} more searches (4 clients) | {mem['peak_searches']:.0f} |",
        f"| after them | {mem['after_searches']:.0f} |",
        f"| peak during the burst of maximum-size queries | {mem['peak_burst']:.0f} |",
        f"| after the burst | {mem['after_burst']:.0f} |",
        f"| after {sizes['settle']} more normal searches | {mem['after_settle']:.0f} |",
        "",
        f"Growth over the steady level: {mem['after_searches'] - mem['steady']:+.0f} MiB after the searches, "
        f"{mem['after_settle'] - mem['steady']:+.0f} MiB at the end.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (well under two minutes)")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    command = "python tests/benchmarks/bench_mcp.py" + (" --smoke" if args.smoke else "")
    md, _ = run(args.smoke, command, lambda m: sys.stderr.write(m + "\n"))
    sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
