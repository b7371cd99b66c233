"""Sources relative to the ingested folder: a folder's files are stored as ``tutorial/a.md``
however the folder was typed (relative, with ``..``, through a symbolic link, unicode names);
a JSONL record without a source gets the file's name; the folder is recorded once per ingest
(bounded); and a collection ingested before, whose sources are the typed paths, is re-ingested
without a document encoded, written or given another id."""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from m3retriever.cli import main
from m3retriever.ingest.roots import INGEST_ROOTS, MAX_ROOTS, ingest_roots, record_root
from m3retriever.ingest.sources import read_folder, read_jsonl
from m3retriever.types import Document

# File and folder names: letters of any script, digits, spaces, dots and dashes (no separators,
# nothing a file system refuses), NFC so that the name read back is the name written.
_NAME = (
    st.text(
        st.characters(categories=("L", "N"), include_characters=" .-_", exclude_characters="/\\\x00"),
        min_size=1,
        max_size=12,
    )
    .map(lambda s: unicodedata.normalize("NFC", s))
    .filter(lambda s: s.strip(" .") == s and s not in {".", ".."})
)
_PATHS = st.lists(st.lists(_NAME, min_size=1, max_size=3), min_size=1, max_size=5)


def _write_tree(root: Path, paths: list[list[str]]) -> set[str]:
    """Write one ``.md`` file per path under ``root``; the relative names written."""
    written: set[str] = set()
    for parts in paths:
        rel = Path(*parts[:-1], parts[-1] + ".md")
        target = root / rel
        if any(p.is_file() for p in [*target.parents, target] if root in p.parents) or target.is_dir():
            continue  # a name already used as a file (or a folder)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(f"text of {rel.as_posix()}", encoding="utf-8")
        except OSError:  # pragma: no cover - a name this file system refuses
            continue
        written.add(rel.as_posix())
    return written


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(paths=_PATHS, typed=st.sampled_from(["plain", "dotdot", "symlink", "relative"]))
def test_folder_sources_are_relative_to_the_folder(tmp_path_factory: pytest.TempPathFactory, paths, typed) -> None:
    base = tmp_path_factory.mktemp("tree")
    root = base / "corpus" / "docs"
    root.mkdir(parents=True)
    written = _write_tree(root, paths)
    if not written:
        return
    if typed == "dotdot":
        (base / "elsewhere").mkdir()
        folder: str | Path = base / "elsewhere" / ".." / "corpus" / "docs"
    elif typed == "symlink":
        folder = base / "link"
        folder.symlink_to(root, target_is_directory=True)
    elif typed == "relative":
        folder = os.path.relpath(root)
    else:
        folder = root
    docs = list(read_folder(folder))
    assert {d.source for d in docs} == written
    for doc in docs:
        assert doc.source == doc.doc_id  # the doc id is unchanged: it was already relative
        assert doc.source is not None and not doc.source.startswith("/") and ".." not in doc.source.split("/")
        assert "\\" not in doc.source


def test_jsonl_source_is_the_record_s_own_or_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "corpus.jsonl"
    path.parent.mkdir()
    rows = [{"doc_id": "a", "text": "alpha"}, {"doc_id": "b", "text": "beta", "source": "https://example.org/b"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    typed = tmp_path / "sub" / ".." / "sub" / "corpus.jsonl"
    assert [d.source for d in read_jsonl(typed)] == ["corpus.jsonl", "https://example.org/b"]


def test_roots_are_recorded_once_each_and_bounded(make_retriever, tmp_path: Path) -> None:
    r = make_retriever()
    r.add_texts(["a text to create the collection"], ids=["x"])
    for i in range(MAX_ROOTS + 5):
        record_root(r.store, r.collection, tmp_path / f"root{i % (MAX_ROOTS + 2)}", "folder")
    roots = ingest_roots(r.store, r.collection)
    assert len(roots) == MAX_ROOTS
    assert len({e["path"] for e in roots}) == MAX_ROOTS  # one entry per root
    assert roots[-1]["path"] == str(tmp_path / f"root{(MAX_ROOTS + 4) % (MAX_ROOTS + 2)}")  # the latest last
    assert all(e["kind"] == "folder" and e["at"].endswith("+00:00") for e in roots)


def _corpus(root: Path) -> Path:
    (root / "tutorial").mkdir(parents=True)
    (root / "tutorial" / "query-params.md").write_text("Query parameters are read from the URL.\n")
    (root / "tutorial" / "body.md").write_text("A request body is sent by the client.\n")
    (root / "intro.md").write_text("An introduction to the framework and its cats.\n")
    return root


def test_ingest_path_stores_relative_sources_and_records_the_root(make_retriever, tmp_path: Path) -> None:
    root = _corpus(tmp_path / "corpus" / "docs" / "en" / "docs")
    (tmp_path / "work").mkdir()
    typed = tmp_path / "work" / ".." / "corpus" / "docs" / "en" / "docs"
    r = make_retriever()
    report = r.ingest_path(typed)
    assert report.added == 3
    hits = r.search("query parameters URL", top_k=3, rerank=False)
    assert {h.source for h in hits} == {"tutorial/query-params.md", "tutorial/body.md", "intro.md"}
    assert [(e["path"], e["kind"]) for e in r.store.metadata(r.collection)[INGEST_ROOTS]] == [(str(root), "folder")]
    again = r.ingest_path(root)  # the same folder typed another way: unchanged, recorded once
    assert (again.skipped, again.added, again.updated) == (3, 0, 0)
    assert len(ingest_roots(r.store, r.collection)) == 1


def test_a_collection_with_typed_paths_is_not_rewritten(make_retriever, tmp_path: Path) -> None:
    """Before sources were relative, a folder's documents were stored with the path as typed;
    re-ingesting the folder skips them all (same ids, nothing encoded), and a changed file is
    rewritten with its relative source."""
    root = _corpus(tmp_path / "corpus")
    typed = tmp_path / "corpus" / ".." / "corpus"
    files = sorted(p for p in root.rglob("*.md"))
    old_style = [  # exactly what read_folder produced before
        Document(
            text=p.read_text(),
            doc_id=p.relative_to(root).as_posix(),
            metadata={"file_name": p.name, "suffix": p.suffix},
            source=str(typed / p.relative_to(root)),
        )
        for p in files
    ]
    r = make_retriever()
    r.ingest(old_style)
    chunks = r.count()
    report = r.ingest_path(typed)
    assert (report.skipped, report.added, report.updated, report.chunks_written) == (3, 0, 0, 0)
    assert r.count() == chunks
    (root / "intro.md").write_text("An introduction, rewritten: now about dogs and cats.\n")
    report = r.ingest_path(typed)
    assert (report.skipped, report.added, report.updated) == (2, 0, 1)
    sources = {h.doc_id: h.source for h in r.search("introduction dogs request query", top_k=10, rerank=False)}
    assert sources["intro.md"] == "intro.md"  # rewritten: relative
    assert sources["tutorial/body.md"] == str(typed / "tutorial" / "body.md")  # unchanged: as it was
    assert set(sources) == {"intro.md", "tutorial/body.md", "tutorial/query-params.md"}


def test_cli_search_prints_the_relative_source(tmp_path: Path, config_file: Path, capsys) -> None:
    _corpus(tmp_path / "corpus")
    typed = tmp_path / "corpus" / "tutorial" / ".." / ".."
    assert main(["ingest", str(typed / "corpus"), "--config", str(config_file), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["search", "query parameters", "--config", str(config_file), "--json", "--no-rerank"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert {h["source"] for h in hits} <= {"tutorial/query-params.md", "tutorial/body.md", "intro.md"} and hits
