"""Bad input through every surface, counted: what is refused with the library's own error, what
escapes as a raw exception, and whether a store was left unreadable.

    python tests/benchmarks/reliability.py --out docs/reliability.md        # ~2 minutes
    python tests/benchmarks/reliability.py --examples 20 --out /tmp/rel.md  # quicker

Each surface gets a curated list of the defects found by the hardening review plus random input
drawn from the fuzz strategies (tests/strategies.py). After each surface the store is closed,
reopened, counted and searched: a store that cannot be reopened, lost or gained documents on a
refused call, or fails to search counts as corrupted. Tiny random models: only the plumbing is
exercised, never ranking quality.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import math
import os
import shlex
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from strategies import any_text, documents, filters, options  # noqa: E402

CORPUS = [
    {"doc_id": f"seed{i}", "text": f"seed document {i} about vector databases and cats", "metadata": {"n": i, "flag": i % 2 == 0}}
    for i in range(8)
]


@dataclass
class Tally:
    """Outcomes of one surface."""

    tried: int = 0
    accepted: int = 0
    refused: int = 0
    raw: dict[str, int] = field(default_factory=dict)
    corrupted: int = 0
    seconds: float = 0.0

    def record(self, outcome: str) -> None:
        self.tried += 1
        if outcome == "accepted":
            self.accepted += 1
        elif outcome == "refused":
            self.refused += 1
        else:
            self.raw[outcome] = self.raw.get(outcome, 0) + 1


def _deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"k": value}
    return value


CURATED_DOCS: list[Any] = [
    [{"doc_id": "deep", "text": "t", "metadata": {"m": _deep(130)}}],
    [{"doc_id": "big", "text": "t", "metadata": {"n": 2**64}}],
    [{"doc_id": "nan", "text": "t", "metadata": {"n": math.nan}}],
    [{"doc_id": "key", "text": "t", "metadata": {"a b": 1}}],
    [{"doc_id": "k2", "text": "t", "metadata": {1: 1}}],
    [{"doc_id": "sur", "text": "bad \udcff"}],
    [{"doc_id": "\ud800", "text": "t"}],
    [{"doc_id": "big-text", "text": "word " * 500_000}],
    [{"doc_id": f"d{i}", "text": "" if i == 290 else f"t{i}"} for i in range(300)],
    [{"doc_id": "dup", "text": "a"}, {"doc_id": "dup", "text": "b"}],
    None,
    5,
    "a string",
    [None],
    [{"text": "no id"}],
]
CURATED_SEARCH: list[tuple[Any, Any, dict]] = [
    ("q", {"a b": 1}, {}), ("q", {"a:b": 1}, {}), ("q", {"🙂": 1}, {}), ("q", {"a.": 1}, {}),
    ("q", {"n": 2**64}, {}), ("q", {"n": {"gte": 10**400}}, {}), ("q", {"n": {"gte": math.nan}}, {}),
    ("q", None, {"top_k": 2.5}), ("q", None, {"top_k": math.nan}), ("q", None, {"top_k": 2**64}),
    ("q", None, {"top_k": True}), ("q", None, {"top_k": "5"}), ("q", None, {"hnsw_ef": -5}),
    ("q", None, {"rrf_k": 2.5}), ("q", None, {"rerank": "no"}), ("\udcff", None, {}),
    ("x" * 300_000, None, {}), (None, None, {}), ("q", {1: 2}, {}), ("q", {"flag": {"not": True}}, {}),
]


def classify(call: Callable[[], Any], library_error: type[BaseException]) -> str:
    try:
        call()
    except library_error:
        return "refused"
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - the point is to count these (engine panics too)
        return type(exc).__name__
    return "accepted"


def _random(strategy: Any, n: int, seed: int, each: Callable[[Any], None]) -> None:
    @settings(max_examples=n, database=None, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(value: Any) -> None:
        each(value)

    del seed
    run()


def python_surface(make: Callable[[], Any], n: int) -> Tally:
    """The Retriever API: ingest, search, count, delete."""
    from m3retriever.errors import M3RetrieverError

    tally = Tally()
    r = make()
    r.ingest(CORPUS)

    def ingest(docs: Any) -> None:
        before = r.count()
        outcome = classify(lambda: r.ingest(docs), M3RetrieverError)
        tally.record(outcome)
        if outcome != "accepted" and isinstance(docs, list) and r.count() != before:
            tally.corrupted += 1  # a refused list must write nothing

    def search(args: tuple[Any, Any, dict]) -> None:
        q, flt, opts = args
        tally.record(classify(lambda: r.search(q, filter=flt, **opts), M3RetrieverError))
        tally.record(classify(lambda: r.count(flt), M3RetrieverError))

    for docs in CURATED_DOCS:
        ingest(docs)
    for args in CURATED_SEARCH:
        search(args)
    _random(st.lists(documents, min_size=1, max_size=3), n, 1, ingest)
    _random(st.tuples(any_text, filters, options), n, 2, search)
    r.close()
    tally.corrupted += _check_store(make)
    return tally


def _check_store(make: Callable[[], Any]) -> int:
    """1 if the store cannot be reopened, counted and searched, else 0."""
    try:
        r = make()
        try:
            ok = r.count() >= len(CORPUS) and bool(r.search("vector databases", rerank=False).hits)
        finally:
            r.close()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # noqa: BLE001 - an engine panic is a corrupted store too
        return 1
    return 0 if ok else 1


def _run_cli(tally: Tally, argv: list[str]) -> None:
    """One command, in-process: exit 2 with ``error:`` is a refusal, a traceback is raw."""
    from m3retriever.cli import main

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
    except SystemExit as exc:  # argparse usage errors exit 2 with a message
        code = exc.code
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001
        tally.record(type(exc).__name__)
        return
    text = err.getvalue()
    if "Traceback" in text:
        tally.record("traceback")
    elif code == 0:
        tally.record("accepted")
    elif code == 2:
        tally.record("refused")
    else:
        tally.record(f"exit {code}")


BAD_NAMES = [".", "..", "../victim", "/tmp/m3r-victim", "a/b", "", " ", "a.b", "-x", "x" * 65, "\x00", "é", ".m3r-replace-docs"]


def collection_surface(config: Path, workdir: Path, n: int) -> Tally:
    """Collection names (curated and random) through every command that takes one, and
    snapshots with flipped bytes, truncations and hostile manifests restored over the seeded
    collection: each must be refused with one line, and nothing outside the store touched."""
    import random

    tally = Tally()
    common = ["--config", str(config)]
    victim = workdir / "victim"
    victim.mkdir(exist_ok=True)
    (victim / "keep").write_text("x")
    note = workdir / "note.txt"
    note.write_text("a note")

    def names(name: str) -> None:
        for argv in (["ingest", str(note), "--quiet"], ["search", "q"], ["collection", "info"], ["collection", "snapshot", str(workdir / "n.snap")],
                     ["collection", "copy", "--from", str(workdir / "store-collections"), "--to", str(workdir / "copy-target"),
                      "--to-collection", name]):
            _run_cli(tally, [*argv, *common, "--collection", name])

    for name in BAD_NAMES:
        names(name)
    _random(any_text, max(1, n // 10), 7, names)
    snap = workdir / "good.snap"
    _run_cli(tally, ["collection", "snapshot", str(snap), *common])
    good = snap.read_bytes()
    rng = random.Random(11)
    bad = workdir / "bad.snap"
    for _ in range(max(1, n // 4)):
        flipped = bytearray(good)
        flipped[rng.randrange(len(good))] ^= 1 << rng.randrange(8)
        bad.write_bytes(bytes(flipped))
        _run_cli(tally, ["collection", "restore", str(bad), "--overwrite", *common])
    for _ in range(max(1, n // 20)):
        bad.write_bytes(good[: rng.randrange(len(good))])
        _run_cli(tally, ["collection", "restore", str(bad), "--overwrite", *common])
    if (victim / "keep").read_text() != "x" or len(list(victim.iterdir())) != 1:
        tally.corrupted += 1
    return tally


def cli_surface(config: Path, workdir: Path, n: int) -> Tally:
    """The command line, in-process: exit 2 with ``error:`` is a refusal, a traceback is raw."""

    tally = Tally()

    def run(argv: list[str]) -> None:
        _run_cli(tally, argv)

    common = ["--config", str(config)]
    for i, content in enumerate(_bad_files()):
        path = workdir / f"bad{i}{content[0]}"
        path.write_bytes(content[1])
        run(["ingest", str(path), "--quiet", *common])
    for q, flt, opts in CURATED_SEARCH:
        argv = ["search", str(q), *common]
        if flt is not None:
            argv += ["--filter", json.dumps(flt, default=str)]
        if "top_k" in opts:
            argv += ["-k", str(opts["top_k"])]
        run(argv)
    file_loc = workdir / "a-file"
    file_loc.write_text("x")
    for location in (str(file_loc), str(file_loc / "under"), "/proc/version"):
        run(["collection", "info", *common, "--location", location])

    def random_search(args: tuple[str, Any]) -> None:
        q, flt = args
        try:
            flt_arg = json.dumps(flt, default=str)
        except (ValueError, TypeError):
            flt_arg = str(flt)
        run(["search", q or " ", "--filter", flt_arg, *common])

    _random(st.tuples(any_text, filters), n, 3, random_search)
    return tally


def _bad_files() -> list[tuple[str, bytes]]:
    import gzip

    good = b'{"doc_id": "ok", "text": "fine"}\n'
    return [
        (".jsonl", b"\xff\xfe not utf-8\n"),
        (".jsonl.gz", b"not gzip at all"),
        (".jsonl.gz", gzip.compress(good * 50)[:-20]),
        (".jsonl", b'{"doc_id": "x", "text": "t", "metadata": [1, 2]}\n'),
        (".jsonl", b'{"doc_id": "x", "text": "t", "metadata": {"a b": 1}}\n'),
        (".jsonl", b'{"doc_id": "x", "text": "t", "metadata": ' + b'{"k": ' * 200 + b"1" + b"}" * 201 + b"\n"),
        (".jsonl", b'{"doc_id": "x", "text": "t", "n": 1e999}\n'),
        (".jsonl", b'{"doc_id": "x", "text": "t", "n": 123456789012345678901234567890}\n'),
        (".jsonl", b"[1, 2, 3]\n"),
        (".jsonl", b"{not json\n"),
        (".jsonl", b'{"doc_id": "x", "text": "\\ud800"}\n'),
        (".jsonl", b"\xef\xbb\xbf" + good),
    ]


async def _mcp_session(config: Path, n: int) -> Tally:
    """The MCP server over stdio, with writes enabled: an isError result is a refusal."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    tally = Tally()
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "m3retriever.cli", "serve-mcp", "--config", str(config), "--allow-writes"],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    calls: list[tuple[str, dict]] = [
        ("search", {"query": "q", "top_k": "5"}), ("search", {"query": "q", "top_k": 2.5}),
        ("search", {"query": "q", "top_k": 10**30}), ("search", {"query": "x" * 100_001}),
        ("search", {"query": "q", "filter": {"a b": 1}}), ("search", {"query": "q", "filter": {"n": 2**70}}),
        ("search", {"query": "q", "filter": {"n": {"gte": "inf"}}}), ("search", {"query": ""}),
        ("search", {"query": "q", "filter": {"flag": True}}), ("search", {"query": "q", "min_score": 7}),
        ("ingest", {"documents": [{"doc_id": "deep", "text": "t", "metadata": {"m": _deep(200)}}]}),
        ("ingest", {"documents": [{"doc_id": "k", "text": "t", "metadata": {"a:b": 1}}]}),
        ("ingest", {"documents": [{"doc_id": "", "text": "t"}]}), ("ingest", {"documents": "nope"}),
        ("delete", {}), ("delete", {"filter": {"$x": 1}}), ("no_such_tool", {}),
    ]
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()

            async def call(name: str, args: dict) -> None:
                try:
                    result = await session.call_tool(name, args, read_timeout_seconds=60)
                except Exception as exc:  # noqa: BLE001 - a protocol error, not a tool result
                    tally.record(f"protocol {type(exc).__name__}")
                    print(f"[mcp] {name} {str(args)[:200]!r}: {exc!r:.300}", file=sys.stderr, flush=True)
                    return
                text = " ".join(getattr(c, "text", "") for c in result.content)
                if not result.is_error:
                    tally.record("accepted")
                elif "Error executing tool" in text and len(text) < 60:
                    tally.record("bare error")
                else:
                    tally.record("refused")

            for name, args in calls:
                await call(name, args)
            rnd: list[tuple[str, Any]] = []
            _random(st.tuples(any_text, filters, options), n, 4, rnd.append)
            for q, flt, opts in rnd:
                args = {"query": q, "filter": flt, **{k: v for k, v in opts.items() if k in ("top_k", "min_score")}}
                try:
                    json.dumps(args, allow_nan=False)
                except (ValueError, TypeError):
                    continue  # cannot be sent as JSON at all
                await call("search", args)
    return tally


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "docs" / "reliability.md"))
    ap.add_argument("--examples", type=int, default=200, help="random inputs per strategy and surface")
    ap.add_argument("--json", help="also write the tallies as JSON here")
    ap.add_argument("--before", help="tallies (JSON from --json) of an earlier version, shown beside")
    ap.add_argument("--before-label", default="before", help="what --before measured")
    args = ap.parse_args(argv)
    command = "python tests/benchmarks/reliability.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))

    from m3retriever import Retriever, load_config
    from tinymodels import build_tiny_bge_m3, build_tiny_reranker

    work = Path(tempfile.mkdtemp(prefix="m3r-reliability-"))
    settings_ = {
        "profile": "bge-m3", "dense_model": str(build_tiny_bge_m3(work / "m3")),
        "reranker_model": str(build_tiny_reranker(work / "rr")), "device": "cpu",
        "max_length": 128, "chunk_tokens": 48, "chunk_overlap": 8,
    }
    from m3retriever import Config

    if "max_document_chars" in Config.__dataclass_fields__:  # absent before the limit existed
        settings_["max_document_chars"] = 1_000_000
    results: dict[str, Tally] = {}
    for surface in ("python", "cli", "collections", "mcp"):
        location = str(work / f"store-{surface}")

        def make(loc: str = location) -> Any:
            return Retriever(load_config(env={}, location=loc, **settings_))

        config = work / f"{surface}.toml"
        config.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in {"location": location, **settings_}.items()) + "\n")
        t0 = time.perf_counter()
        if surface == "python":
            tally = python_surface(make, args.examples)
        else:
            seed = make()
            seed.ingest(CORPUS)
            seed.close()
            if surface == "cli":
                tally = cli_surface(config, work, args.examples)
            elif surface == "collections":
                tally = collection_surface(config, work, args.examples)
            else:
                tally = asyncio.run(_mcp_session(config, args.examples))
            tally.corrupted += _check_store(make)
        tally.seconds = time.perf_counter() - t0
        results[surface] = tally
        print(f"[{surface}] {tally}", file=sys.stderr, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({k: asdict(v) for k, v in results.items()}, indent=2))
    before = None
    if args.before:
        before = {k: Tally(**v) for k, v in json.loads(Path(args.before).read_text()).items()}
    out = Path(args.out)
    kept = out.read_text() if out.exists() else ""  # sections made by other scripts stay
    at = kept.find(KEPT_FROM)
    out.write_text(report(results, command, before, args.before_label) + (kept[at:] if at >= 0 else ""))
    return 0 if all(not t.raw and not t.corrupted for t in results.values()) else 1


KEPT_FROM = "\n## Killed mid-write"
"""Where the section written by tests/benchmarks/kill_table.py starts; kept when this report is
written again."""


def _rows(results: dict[str, Tally]) -> list[str]:
    return [
        f"| {name} | {t.tried} | {t.accepted} | {t.refused} | "
        f"{sum(t.raw.values())}{' (' + ', '.join(f'{k}: {v}' for k, v in t.raw.items()) + ')' if t.raw else ''} | "
        f"{t.corrupted} | {t.seconds:.0f} |"
        for name, t in results.items()
    ]


def report(results: dict[str, Tally], command: str, before: dict[str, Tally] | None = None, label: str = "before") -> str:
    header = "| surface | inputs tried | accepted | refused | raw exceptions | stores corrupted | seconds |"
    rows = _rows(results)
    if before:
        rows += [
            "",
            f"The same script and inputs against {label}:",
            "",
            header,
            "|---|---|---|---|---|---|---|",
            *_rows(before),
        ]
    return "\n".join(
        [
            "# Reliability",
            "",
            "Bad and random input through every surface (curated cases from the hardening review plus",
            "random input from the fuzz strategies in `tests/strategies.py`), on a real embedded store",
            "with tiny random models. *Refused* means the library's own error with its message",
            "(Python: an `M3RetrieverError`; CLI: `error: ...` and exit 2; MCP: an `isError` tool",
            "result carrying the message). *Raw* is anything else: a dependency's exception, a",
            "traceback, a bare MCP error or a protocol error. *Corrupted* counts stores that could not",
            "be reopened, counted and searched afterwards, or whose count changed on a refused list.",
            "The *collections* surface sends bad collection names (curated: `.`, `..`, `../victim`,",
            "absolute paths, dots, NUL...; and random text) through every command that takes one, and",
            "snapshots with a flipped byte or truncated anywhere to `collection restore --overwrite` over",
            "a live collection; a folder beside the store is checked to be untouched.",
            "",
            f"Generated by `{command}`.",
            "",
            header,
            "|---|---|---|---|---|---|---|",
            *rows,
            "",
            "The same properties are asserted in `make test` by `tests/test_fuzz.py` (Python API),",
            "`tests/test_congruence.py` (Edge and qdrant-client return the same ids as a reference of",
            "the filter rules), `tests/test_hardening.py`, `tests/test_cli_errors.py` and the MCP tests.",
            "",
            "The MCP server under load (calls/s with 1, 4 and 8 clients, memory before and after 1,000",
            "calls and after a burst of maximum-size queries) is measured in",
            "[benchmarks.md](benchmarks.md#mcp-server-under-load-streamable-http-small).",
            "",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
