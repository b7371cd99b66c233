"""``ingest FOLDER --sync`` / ``ingest_path(..., sync=True)``: after renaming, editing, adding
and deleting files the collection holds exactly the folder's documents (the same chunks a fresh
ingest builds), other folders' and JSONL documents untouched; an interrupted sync, re-run, ends
the same."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from m3retriever.cli import main
from m3retriever.ingest import IngestInterrupted
from m3retriever.ingest import sync as sync_module
from m3retriever.ingest.sync import ROOT_FIELD
from test_readers import make_docx, make_notebook, page


def make_folder(root: Path) -> Path:
    (root / "guide").mkdir(parents=True)
    (root / "guide" / "intro.md").write_text("# Intro\n\nZebrafish swim in the intro guide.\n")
    (root / "guide" / "setup.md").write_text("# Setup\n\nInstall with pip and check the version.\n")
    (root / "page.html").write_text(page("<h1>Walruses</h1><p>The walrus page explains tusks.</p>"))
    make_docx(root / "ops.docx")
    make_notebook(root / "tutorial.ipynb")
    (root / "notes.txt").write_text("Plain notes about rank fusion.\n")
    return root


def stored(r) -> dict[str, tuple[str, int, str | None]]:
    """doc id -> (source, chunks, ingest root) of everything in the collection."""
    out: dict[str, list] = {}
    for p in r.store.scroll(r.collection, None):
        entry = out.setdefault(p.payload["doc_id"], [p.payload["source"], 0, set()])
        entry[1] += 1
        entry[2].add(p.payload.get(ROOT_FIELD))
    return {doc_id: (src, n, roots.pop() if len(roots) == 1 else str(roots)) for doc_id, (src, n, roots) in out.items()}


def change(folder: Path) -> None:
    """Rename one file, edit one, delete two, add one."""
    (folder / "guide" / "intro.md").rename(folder / "guide" / "welcome.md")
    (folder / "notes.txt").write_text("Plain notes about rank fusion, now with reciprocal ranks.\n")
    (folder / "ops.docx").unlink()
    (folder / "tutorial.ipynb").unlink()
    (folder / "faq.md").write_text("# FAQ\n\nQuestions people ask about narwhals.\n")


def expected(make_retriever, tmp_path: Path, folder: Path, other: Path, jsonl: Path, name: str) -> dict:
    """What a fresh collection of the same inputs holds."""
    clean = make_retriever(location=str(tmp_path / name))
    for path in (folder, other, jsonl):
        clean.ingest_path(path)
    return stored(clean)


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path, Path]:
    folder = make_folder(tmp_path / "docs")
    other = tmp_path / "other"
    other.mkdir()
    (other / "elsewhere.md").write_text("# Elsewhere\n\nAnother folder's document about otters.\n")
    jsonl = tmp_path / "records.jsonl"
    jsonl.write_text('{"doc_id": "rec-1", "text": "A record about herons."}\n')
    return folder, other, jsonl


def test_sync_after_renaming_editing_adding_and_deleting_leaves_exactly_the_folder(
    tmp_path: Path, make_retriever, inputs
):
    folder, other, jsonl = inputs
    r = make_retriever()
    for path in (folder, other, jsonl):
        r.ingest_path(path)
    change(folder)
    report = r.ingest_path(folder, sync=True)
    assert (report.added, report.updated, report.skipped, report.removed) == (2, 1, 2, 3)
    want = expected(make_retriever, tmp_path, folder, other, jsonl, "clean")
    assert stored(r) == want
    root = str(folder.resolve())
    assert {doc_id: entry[2] for doc_id, entry in want.items()} == {
        "guide/welcome.md": root,
        "guide/setup.md": root,
        "page.html": root,
        "notes.txt": root,
        "faq.md": root,
        "elsewhere.md": str(other.resolve()),
        "rec-1": None,
    }
    assert r.count() == sum(n for _, n, _ in want.values())
    assert report.chunks_deleted >= 3  # the three removed documents' chunks, at least one each
    again = r.ingest_path(folder, sync=True)
    assert (again.documents, again.skipped, again.removed, again.chunks_written) == (5, 5, 0, 0)


def test_sync_deletes_what_the_patterns_now_leave_out_and_keeps_an_unreadable_file_s_documents(make_retriever, inputs):
    folder, _, _ = inputs
    r = make_retriever()
    r.ingest_path(folder)
    (folder / "page.html").write_bytes(b"")  # still there, but no longer readable
    report = r.ingest_path(folder, sync=True, exclude=["guide/**"])
    assert report.removed == 2
    assert list(report.skipped_files) == [
        f"{folder / 'guide' / 'intro.md'}: excluded by 'guide/**'",
        f"{folder / 'guide' / 'setup.md'}: excluded by 'guide/**'",
        f"{folder / 'page.html'}: empty file",
    ]
    assert sorted(stored(r)) == ["notes.txt", "ops.docx", "page.html", "tutorial.ipynb"]


def test_an_interrupted_sync_keeps_everything_and_its_re_run_finishes_it(
    tmp_path: Path, make_retriever, inputs, monkeypatch: pytest.MonkeyPatch
):
    folder, other, jsonl = inputs
    r = make_retriever()
    for path in (folder, other, jsonl):
        r.ingest_path(path)
    before = stored(r)
    change(folder)
    encode = r.encoders.encode_document

    def ctrl_c(texts, lengths=None):
        raise KeyboardInterrupt

    r.encoders.encode_document = ctrl_c  # Ctrl-C while the new files are encoded
    with pytest.raises(IngestInterrupted):
        r.ingest_path(folder, sync=True)
    assert stored(r) == before  # nothing written, nothing deleted: the renamed file is still found
    r.encoders.encode_document = encode

    monkeypatch.setattr(sync_module, "DELETE_BATCH", 1)
    delete = r.store.delete_by_filter
    calls = []

    def ctrl_c_after_the_first(name, flt):
        delete(name, flt)
        calls.append(flt)
        if len(calls) == 1:
            raise KeyboardInterrupt  # pressed while the first deletion ran

    r.store.delete_by_filter = ctrl_c_after_the_first
    with pytest.raises(KeyboardInterrupt):
        r.ingest_path(folder, sync=True)
    assert len(stored(r)) == len(before) + 2 - 1  # the new files written, one of the three deletions done
    report = r.ingest_path(folder, sync=True)
    assert (report.added, report.removed) == (0, 2)
    assert stored(r) == expected(make_retriever, tmp_path, folder, other, jsonl, "clean")


def test_sync_claims_documents_written_before_roots_and_follows_a_moved_folder(tmp_path: Path, make_retriever):
    from m3retriever.ingest.folder import read_folder

    folder = make_folder(tmp_path / "docs")
    r = make_retriever()
    r.ingest(list(read_folder(folder)))  # as an older version wrote them: no root with the chunks
    from m3retriever.ingest.roots import record_root

    record_root(r.store, r.collection, folder.resolve(), "folder")
    assert {e[2] for e in stored(r).values()} == {None}
    (folder / "notes.txt").unlink()
    report = r.ingest_path(folder, sync=True)
    assert (report.updated, report.removed) == (5, 1)  # rewritten to carry the root, the gone file deleted
    assert {e[2] for e in stored(r).values()} == {str(folder.resolve())}
    moved = tmp_path / "moved"
    shutil.move(folder, moved)
    (moved / "page.html").unlink()
    report = r.ingest_path(moved, sync=True)
    # what is still there is claimed (rewritten to carry the new root); the file removed after the
    # move came from the old folder, which a sync of the new one does not touch: it says so
    assert (report.updated, report.removed) == (4, 0)
    old = str(folder.resolve())
    assert report.notes == (
        f"{old}: 1 stored documents came from this folder, which no longer exists (moved or deleted?); a sync "
        "deletes only what came from the folder it syncs, so they stay: delete them with "
        "'m3retriever delete --doc-id ID' (page.html)",
    )
    roots = {doc_id: e[2] for doc_id, e in stored(r).items()}
    assert roots == {
        **dict.fromkeys(["guide/intro.md", "guide/setup.md", "ops.docx", "tutorial.ipynb"], str(moved.resolve())),
        "page.html": old,
    }
    r.delete(["page.html"])
    assert r.ingest_path(moved, sync=True).notes == ()


def test_cli_sync_reports_the_removed_documents(tmp_path: Path, config_file: Path, capsys):
    folder = make_folder(tmp_path / "docs")
    argv = ["ingest", str(folder), "--config", str(config_file), "--quiet"]
    assert main(argv) == 0
    change(folder)
    capsys.readouterr()
    assert main([*argv, "--sync"]) == 0
    out = capsys.readouterr().out
    assert f"{folder}: 5 documents (2 added, 1 updated, 2 unchanged, 3 removed (their file left the folder))" in out


def test_a_tenant_s_sync_deletes_only_that_tenant_s_documents(tmp_path: Path, make_retriever, tiny_settings):
    folder = make_folder(tmp_path / "docs")
    r = make_retriever(**{**tiny_settings, "tenant_field": "tenant"})
    acme, globex = r.scoped("acme"), r.scoped("globex")
    acme.ingest_path(folder)
    globex.ingest_path(folder)  # the same folder, the same doc ids, another tenant
    (folder / "notes.txt").unlink()
    report = acme.ingest_path(folder, sync=True)
    assert (report.skipped, report.removed) == (5, 1)
    tenants = {}
    for p in r.store.scroll(r.collection, None):
        tenants.setdefault(p.payload["metadata"]["tenant"], set()).add(p.payload["doc_id"])
    assert "notes.txt" not in tenants["acme"] and "notes.txt" in tenants["globex"]
    assert tenants["globex"] - tenants["acme"] == {"notes.txt"}
