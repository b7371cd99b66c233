"""kill -9 during every write command of the embedded store, with real child processes: the
method is described in tests/kill_harness.py; here each command gets a few seeded faults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kill_checks import Outcome, Seen, Tally, check_killed, check_rerun
from kill_harness import COLLECTION, COMMANDS, Command, World, build_world, inject

pytestmark = pytest.mark.slow  # real child processes

KILLS = 2  # per command here; tests/benchmarks/kill_table.py runs more
SEED = 20240607


@pytest.fixture(scope="module")
def world(tiny_bge_m3_path: Path, tmp_path_factory: pytest.TempPathFactory) -> World:
    from m3retriever.export import export_onnx

    onnx = export_onnx(str(tiny_bge_m3_path), tmp_path_factory.mktemp("onnx") / "m3-int8", int8=True)
    return build_world(tmp_path_factory.mktemp("kill-world"), Path(onnx))


@pytest.mark.parametrize("cmd", COMMANDS, ids=[c.name for c in COMMANDS])
def test_kill_9_mid_write_leaves_old_or_new_and_a_rerun_converges(world: World, cmd: Command, tmp_path: Path) -> None:
    tally = inject(world, cmd, tmp_path, KILLS, SEED)
    assert tally.faults >= 1, f"{cmd.name}: no run was killed"
    assert not tally.problems, "\n".join(tally.problems)


def test_the_checks_see_a_mix_a_loss_and_a_leftover() -> None:
    """The harness itself: a collection half old and half new, one missing a kept point, and a
    folder with a build left over are each counted."""
    old = {f"p{i}": ({"doc_id": f"d{i}", "chunk_index": 0, "v": 1}, {"dense": [1.0, float(i)]}) for i in range(4)}
    new = {k: ({**p, "v": 2}, v) for k, (p, v) in old.items()}
    pair = ("store", COLLECTION)

    def outcome(points: dict[str, Any] | None, entries: set[str]) -> Outcome:
        seen = Seen(points, {"search_defaults": {}}) if points is not None else None
        return Outcome(0, 0, 0.0, "", {pair: seen}, {"store": entries})

    before, clean = outcome(old, {"docs"}), outcome(new, {"docs"})
    half = {**dict(list(old.items())[:2]), **dict(list(new.items())[2:])}
    whole = Command("replace", COMMANDS[4].args, (pair,), True)
    pointwise = Command("write", COMMANDS[0].args, (pair,), False)
    tally = Tally("t")
    check_killed(whole, before, clean, outcome(half, {"docs"}), tally, "half")
    check_killed(pointwise, before, clean, outcome(half, {"docs"}), tally, "half")  # allowed point by point
    check_killed(pointwise, before, clean, outcome(dict(list(new.items())[1:]), {"docs"}), tally, "one gone")
    check_killed(whole, before, clean, outcome({}, {"docs"}), tally, "emptied")
    check_rerun(whole, clean, clean, outcome(new, {"docs", ".m3r-replace-docs"}), tally, "left")
    assert (tally.mixed, tally.lost, tally.leftovers, tally.duplicated) == (1, 2, 1, 0), tally.problems
