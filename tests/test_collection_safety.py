"""Collection names, crafted and damaged snapshots, interrupted replaces, and read commands on a
store that is not there: nothing outside the store is touched, nothing stored is lost, and
nothing is created by a read.

Each test names the defect it pins (numbers of the data-safety review)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import shutil
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m3retriever import Config, DamagedSnapshotError, open_collection, restore_snapshot, snapshot_collection
from m3retriever.cli import main
from m3retriever.errors import CollectionNotFoundError, ConfigError, InputError, StoreError
from m3retriever.store import open_store
from m3retriever.store import replace as replace_journal
from m3retriever.store.collection_names import check_name, is_valid_name, path_in
from test_transfer import _all, _filled, _points, _rankings, opened

RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


# -- 1. the name rule, and paths derived from names ---------------------------------------
@given(st.text(max_size=80))
@settings(max_examples=300, deadline=None)
def test_name_rule_accepts_exactly_the_rule(name: str) -> None:
    assert is_valid_name(name) == (RULE.fullmatch(name) is not None)
    if not is_valid_name(name):
        with pytest.raises(ConfigError, match="letters, digits"):
            check_name(name)


@given(st.lists(st.sampled_from([*"ab./\\-_ ~", "..", "/etc", "\x00"]), max_size=8).map("".join))
@settings(max_examples=300, deadline=None)
def test_a_path_from_any_name_stays_directly_inside_the_store(tmp_path_factory, name: str) -> None:
    root = tmp_path_factory.mktemp("root", numbered=True)
    try:
        path = path_in(root, name)
    except StoreError:
        return
    assert path.resolve().parent == root.resolve() and path.name not in (".", "..")


@pytest.mark.parametrize("name", [".", "..", "../x", "/tmp/x", "a.b", "", "-x", "a" * 65, "a b", "a\x1eb"])
def test_config_refuses_names_outside_the_rule(name: str) -> None:
    with pytest.raises(ConfigError, match="not allowed"):
        Config(collection=name)


def test_cli_collection_dot_dot_deletes_nothing(tmp_path, capsys, monkeypatch) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.txt").write_text("an input note that must survive")
    store = tmp_path / "store"
    _filled(open_store(store), n=5, name="docs").close()
    monkeypatch.chdir(tmp_path)
    for name in ("..", "."):
        assert main(["ingest", "notes", "--location", "./store", "--collection", name, "--quiet"]) == 2
        assert "not allowed" in capsys.readouterr().err
    assert (notes / "a.txt").read_text() == "an input note that must survive"
    assert main(["ingest", "notse", "--location", "./new-store", "--quiet"]) == 2  # a typo creates nothing
    assert "notse does not exist" in capsys.readouterr().err and not (tmp_path / "new-store").exists()
    with open_store(store) as s:
        assert s.count("docs") == 5
    snap = tmp_path / "docs.snap"
    with open_store(store) as s:
        snapshot_collection(open_collection(Config(collection="docs"), store=s), snap)
    assert main(["collection", "restore", str(snap), "--location", "./store", "--collection", ".."]) == 2
    assert main(["collection", "copy", "--from", "./store", "--to", "./other", "--collection", "docs", "--to-collection", ".."]) == 2
    err = capsys.readouterr().err
    assert err.count("not allowed") == 2 and "Traceback" not in err
    assert (notes / "a.txt").exists() and not (tmp_path / "other").exists()


# -- 2, 4, 9. snapshots are untrusted input ------------------------------------------------
def _snapshot(tmp_path: Path, n: int = 30) -> Path:
    path = tmp_path / "c.snap"
    with _filled(open_store(tmp_path / "src"), n=n) as s:
        snapshot_collection(open_collection(Config(collection="c"), store=s), path)
    return path


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def _write(path: Path, members: dict[str, bytes], manifest_edit=None, *, rehash: bool = True, ustar: bool = True) -> Path:
    """A crafted snapshot: ``members`` with the manifest edited and, as an attacker would,
    its checksums recomputed so that they match."""
    manifest = json.loads(members["manifest.json"])
    if manifest_edit:
        manifest_edit(manifest)
    if rehash:
        for name, data in members.items():
            if name in manifest["members"]:
                manifest["members"][name]["sha256"] = hashlib.sha256(data).hexdigest()
                manifest["members"][name]["size"] = len(data)
                manifest["members"][name]["full"] = max(len(data), manifest["members"][name].get("full", 0))
    raw = json.dumps(manifest).encode()
    members = {**members, "manifest.json": raw, "manifest.sha256": hashlib.sha256(raw).hexdigest().encode()}
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT if ustar else tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.mkdir(exist_ok=True)
    (victim / "precious.txt").write_text("keep me")
    return victim


@pytest.mark.parametrize("hostile", ["../victim", "VICTIM_ABS", "..", ".", "a/b", ".m3r-replace-c"])
def test_a_hostile_manifest_name_is_refused_before_anything_changes(tmp_path, hostile: str) -> None:
    victim = _victim(tmp_path)
    name = str(victim) if hostile == "VICTIM_ABS" else hostile
    crafted = _write(tmp_path / "evil.snap", _members(_snapshot(tmp_path)), lambda m: m.update(collection=name))
    store = tmp_path / "store"
    with pytest.raises(DamagedSnapshotError, match="collection name"):
        restore_snapshot(store, crafted)
    assert (victim / "precious.txt").read_text() == "keep me"
    assert not store.exists()  # refused before the store was even opened


@pytest.mark.parametrize(
    "member", ["shard/../../victim/x", "/abs/file", "shard/ok/../../../x", "collection.m3r.json/../x", "shard/.hidden"]
)
def test_hostile_member_names_are_refused(tmp_path, member: str) -> None:
    victim = _victim(tmp_path)
    members = _members(_snapshot(tmp_path))
    members[member] = b"payload"

    def list_it(m: dict) -> None:
        m["members"][member] = {"size": 7, "sha256": "0" * 64}

    crafted = _write(tmp_path / "evil.snap", members, list_it)
    with pytest.raises(DamagedSnapshotError):
        restore_snapshot(tmp_path / "store", crafted)
    assert sorted(p.name for p in victim.iterdir()) == ["precious.txt"]
    assert not (tmp_path / "abs").exists() and not Path("/abs/file").exists()


def test_a_link_member_is_refused(tmp_path) -> None:
    members = _members(_snapshot(tmp_path))
    path = _write(tmp_path / "evil.snap", members)
    with tarfile.open(path, "a") as tar:
        link = tarfile.TarInfo("shard/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(DamagedSnapshotError):
        restore_snapshot(tmp_path / "store", path)


def _existing(tmp_path: Path) -> tuple[Path, list]:
    """A store whose collection 'c' holds 50 other points, and its rankings."""
    with _filled(open_store(tmp_path / "dest"), n=50) as s:
        s.upsert("c", _points(50, seed=9))
        return tmp_path / "dest", _rankings(s, "c")


def _unchanged(dest: Path, before: list) -> None:
    with open_store(dest) as s:
        assert s.count("c") == 50 and _rankings(s, "c") == before
    leftovers = [p.name for p in dest.iterdir() if p.name.startswith(".m3r-") or p.name.endswith(".partial")]
    assert leftovers == []


def test_every_flipped_byte_and_truncation_is_refused_and_the_original_kept(tmp_path) -> None:
    good = _snapshot(tmp_path).read_bytes()
    dest, before = _existing(tmp_path)
    rng = random.Random(17)
    meta_at = good.find(b'"fingerprint"')
    positions = sorted({*rng.sample(range(len(good)), 60), 0, 100, 148, 257, 511, 512, meta_at, len(good) - 1})
    bad = tmp_path / "bad.snap"
    for pos in positions:
        flipped = bytearray(good)
        flipped[pos] ^= 1 << rng.randrange(8)
        bad.write_bytes(bytes(flipped))
        with pytest.raises(InputError):  # DamagedSnapshotError, one line
            restore_snapshot(dest, bad, overwrite=True)
    for cut in sorted({*rng.sample(range(1, len(good)), 20), len(good) - 512, len(good) - 1}):
        bad.write_bytes(good[:cut])
        with pytest.raises(InputError):
            restore_snapshot(dest, bad, overwrite=True)
    _unchanged(dest, before)


def test_a_wrong_point_count_is_found_before_the_original_goes(tmp_path) -> None:
    dest, before = _existing(tmp_path)
    crafted = _write(tmp_path / "x.snap", _members(_snapshot(tmp_path)), lambda m: m.update(points=m["points"] + 1))
    with pytest.raises(DamagedSnapshotError, match="holds 30 points, its manifest lists 31"):
        restore_snapshot(dest, crafted, overwrite=True)
    _unchanged(dest, before)


def test_restore_overwrite_replaces_with_verified_data(tmp_path) -> None:
    path = _snapshot(tmp_path)
    dest, _ = _existing(tmp_path)
    assert restore_snapshot(dest, path, overwrite=True).points == 30
    with open_store(dest) as s, open_store(tmp_path / "src") as src:
        assert s.count("c") == 30 and _all(s, "c").keys() == _all(src, "c").keys()


def test_damaged_snapshot_errors_are_one_line_in_the_cli(tmp_path, capsys) -> None:
    good = _snapshot(tmp_path).read_bytes()
    meta_at = good.find(b'"fingerprint"')
    bad = tmp_path / "bad.snap"
    bad.write_bytes(good[:meta_at] + b"\xff\xfe" + good[meta_at + 2 :])  # not UTF-8 in the metadata
    assert main(["collection", "restore", str(bad), "--location", str(tmp_path / "dest")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: snapshot") and "damaged" in err and err.count("\n") == 1
    assert "Traceback" not in err and "UnicodeDecodeError" not in err and not (tmp_path / "dest").exists()


# -- 3. a replace cut short is finished by whoever opens the store next -----------------------
@pytest.mark.parametrize("steps_done", [0, 1, 2, 3, 4])
def test_an_interrupted_swap_is_finished_on_the_next_open(tmp_path, steps_done: int) -> None:
    """The swap's renames, stopped after each of them: opening the store (with no collection
    named) finishes it; the collection is all new, never a mix or empty, with no leftovers."""
    path = _snapshot(tmp_path)
    dest, _ = _existing(tmp_path)
    with open_store(dest) as s:
        folder = s.build_folder("c")  # type: ignore[attr-defined]
        from m3retriever.maintenance.snapshot import _unpack, _verify

        _unpack(path, _verify(path), folder, "c")
        assert s.open_build("c") == 30  # type: ignore[attr-defined]
    # Decided (journal written), then the renames stop after `steps_done` of them, as a kill would.
    (folder / replace_journal.JOURNAL).write_text(json.dumps({"replace": "c"}))
    old = dest / (replace_journal.OLD_PREFIX + "c")
    old.mkdir()
    moves = [
        (dest / "c.m3r.json", old / "meta.json"),
        (dest / "c", old / "shard"),
        (folder / "shard", dest / "c"),
        (folder / "meta.json", dest / "c.m3r.json"),
    ]
    for src, dst in moves[:steps_done]:
        os.replace(src, dst)
    with open_store(dest) as s:
        assert s.count("c") == 30
    assert sorted(p.name for p in dest.iterdir()) == [".m3retriever.lock", "c", "c.m3r.json"]


def test_an_unfinished_build_is_deleted_and_the_original_kept(tmp_path) -> None:
    dest, before = _existing(tmp_path)
    with open_store(dest) as s:
        folder = s.build_folder("c")  # type: ignore[attr-defined]
        (folder / "shard").mkdir()
        (folder / "shard" / "half-written").write_bytes(b"\0" * 100)
    _unchanged(dest, before)  # opening deleted the build folder (no journal: never decided)


# -- 10. read commands on a store or collection that is not there ---------------------------
@pytest.mark.parametrize("command", [["search", "hello"], ["collection", "info"], ["delete", "--doc-id", "x"], ["collection", "snapshot", "out.snap"],
                                     ["collection", "defaults", "show"], ["collection", "warm-up"], ["serve-mcp"]])
def test_read_commands_create_nothing_and_say_so(tmp_path, capsys, monkeypatch, command: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "nostore"
    assert main([*command, "--location", str(missing), "--collection", "notes"]) == 2
    err = capsys.readouterr().err
    assert f"no collection 'notes' at {missing}: ingest documents first" in err
    assert not missing.exists() and not (tmp_path / "out.snap").exists()
    existing = tmp_path / "store"
    _filled(open_store(existing), n=3, name="docs").close()
    before = sorted(p.name for p in existing.iterdir())
    assert main([*command, "--location", str(existing), "--collection", "notes"]) == 2
    assert "no collection 'notes' at" in capsys.readouterr().err
    assert sorted(p.name for p in existing.iterdir()) == before


def test_collection_not_found_is_one_error_type() -> None:
    exc = CollectionNotFoundError("docs", "/data")
    assert isinstance(exc, StoreError) and isinstance(exc, InputError)
    assert str(exc).startswith("no collection 'docs' at /data: ingest documents first")


def test_the_removed_old_version_never_lingers(tmp_path) -> None:
    path = _snapshot(tmp_path)
    dest, _ = _existing(tmp_path)
    restore_snapshot(dest, path, overwrite=True)
    assert not any(p.name.startswith(".m3r-") for p in dest.iterdir())
    shutil.rmtree(tmp_path / "src")


# -- commands on the whole collection refuse a tenant instead of ignoring it ------------------
@pytest.mark.parametrize("command", [["collection", "snapshot", "out.snap"], ["collection", "restore", "in.snap"],
                                     ["collection", "add-branch", "--dense2-model", "x"]])
def test_whole_collection_commands_refuse_a_tenant(tmp_path, capsys, monkeypatch, command: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("M3R_TENANT", "acme")  # these commands take no --tenant: a configured one is refused
    monkeypatch.setenv("M3R_TENANT_FIELD", "org")
    assert main([*command, "--location", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "acts on the whole collection" in err and "every tenant" in err
    assert not (tmp_path / "s").exists()


def test_copy_refuses_a_tenant(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("M3R_TENANT", "acme")
    monkeypatch.setenv("M3R_TENANT_FIELD", "org")
    assert main(["collection", "copy", "--from", str(tmp_path / "a"), "--to", str(tmp_path / "b"), "--collection", "c"]) == 2
    assert "acts on the whole collection" in capsys.readouterr().err


# -- 9. a half-copied target says what it is ---------------------------------------------------
def test_a_half_copied_target_is_named_as_such(tmp_path, capsys) -> None:
    from m3retriever import copy_collection

    with _filled(open_store(tmp_path / "a"), n=40) as src, open_store(tmp_path / "b") as dst:
        report = copy_collection(opened(src, "c"), dst, batch=10, max_batches=0)  # killed before its first page
        assert not report.complete and dst.metadata("c")["copy"]["offset"] is None
    for command in (["collection", "info"], ["search", "q"], ["collection", "warm-up"], ["collection", "defaults", "show"]):
        assert main([*command, "--location", str(tmp_path / "b"), "--collection", "c"]) == 2
        err = capsys.readouterr().err
        assert "is an unfinished copy of" in err and "run the same `m3retriever collection copy` again" in err
    assert main(["collection", "copy", "--from", str(tmp_path / "a"), "--to", str(tmp_path / "b"), "--collection", "c"]) == 0
    assert main(["collection", "warm-up", "--location", str(tmp_path / "b"), "--collection", "c"]) == 0
    with open_store(tmp_path / "b") as dst:
        assert dst.count("c") == 40 and "copy" not in dst.metadata("c")


def test_a_restore_finished_by_the_next_open_is_not_refused_on_its_rerun(tmp_path) -> None:
    """A restore killed after its swap was decided is finished when the store next opens; the
    same command run again then reports it done instead of asking for --overwrite."""
    path = _snapshot(tmp_path)
    dest = tmp_path / "dest"
    assert restore_snapshot(dest, path).points == 30
    assert restore_snapshot(dest, path).points == 30  # the re-run: nothing to do
    with open_store(dest) as s:
        s.upsert("c", _points(31)[30:])
    with pytest.raises(StoreError, match="holds 31 points"):
        restore_snapshot(dest, path)


def test_a_dotted_collection_of_an_earlier_version_can_be_renamed_and_opened(tmp_path) -> None:
    store = tmp_path / "store"
    _filled(open_store(store), n=4, name="old-notes").close()
    with pytest.raises(ConfigError, match="rename its folder and its old.notes.m3r.json file"):
        Config(collection="old.notes")
    # What the message says works: the data opens under the new name.
    (store / "old-notes").rename(store / "old-notes2")
    (store / "old-notes.m3r.json").rename(store / "old-notes2.m3r.json")
    with open_store(store) as s:
        assert s.count("old-notes2") == 4 and s.stored_spec("old-notes2").name == "old-notes2"
