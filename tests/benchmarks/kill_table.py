"""kill -9 during every write command, many times: the table of docs/reliability.md.

    python tests/benchmarks/kill_table.py --kills 12 --seed 1

Runs the harness of tests/kill_harness.py (see its docstring for the method: real child
processes, SIGKILL alternately just before a seeded random write point and at a seeded random
time within the command's write window, then opening, reading and checking the stores, running
the command again and checking the result and the folders) with ``--kills`` faults per command
(``tune --save`` gets a third of them: each of its runs spends seconds on the sweep before its
one write), and prints one markdown table row per command. Exits 1 if any check failed, after
listing the failures.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the harness, tinymodels

from kill_checks import Tally  # noqa: E402
from kill_harness import COMMANDS, build_world, inject  # noqa: E402
from tinymodels import build_tiny_bge_m3  # noqa: E402


def table(tallies: list[Tally]) -> str:
    rows = [
        "| command | faults injected (SIGKILL) | lost | duplicated | unopenable | neither old nor new | leftovers after re-run | BM25 totals unlike a clean run's after re-run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in tallies:
        rows.append(
            f"| `{t.command}` | {t.faults} | {t.lost} | {t.duplicated} | {t.unopenable} | {t.mixed} | {t.leftovers} | {t.totals_off} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=12, help="faults per command (default 12)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", help="comma-separated command names (default: all)")
    args = parser.parse_args(argv)
    from m3retriever.export import export_onnx

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="m3r-kill-") as tmp:
        root = Path(tmp)
        onnx = export_onnx(str(build_tiny_bge_m3(root / "tiny-m3")), root / "m3-int8", int8=True)
        world = build_world(root / "world", Path(onnx))
        tallies = []
        for cmd in COMMANDS:
            if args.only and cmd.name not in args.only.split(","):
                continue
            kills = max(2, args.kills // 3) if cmd.name.startswith("tune") else args.kills
            tallies.append(inject(world, cmd, root / "runs" / cmd.name.replace(" ", "_"), kills, args.seed))
            print(f"{cmd.name}: {tallies[-1].faults} faults, {len(tallies[-1].problems)} problems", file=sys.stderr)
    print(table(tallies))
    print(f"\n({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    problems = [p for t in tallies for p in t.problems]
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
