"""A folder of documents as people have them (Markdown, HTML, PDF, Word, a notebook, an image, a
binary, a corrupt PDF) ingests with every file accounted for per suffix, every readable file
searchable, and user errors reported as skips, never as a traceback; ``--include``/``--exclude``
globs pick the files."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from m3retriever.cli import main
from m3retriever.errors import InputError
from m3retriever.ingest.folder import FolderTally, read_folder
from m3retriever.ingest.globs import FileFilter, glob_regex, matches
from test_readers import make_docx, make_notebook, make_pdf, page

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da6360000002000154a24f5d0000000049454e44ae426082"
)


def mixed_folder(root: Path) -> Path:
    """One file per format, each with a word found nowhere else."""
    (root / "guide").mkdir(parents=True)
    (root / "guide" / "intro.md").write_text("# Intro\n\nThe zebrafish paragraph opens the guide.\n")
    (root / "page.html").write_text(page("<h1>Walruses</h1><p>The walrus page explains tusks.</p>"))
    make_pdf(root / "notes.pdf")
    make_docx(root / "ops.docx")
    make_notebook(root / "tutorial.ipynb")
    (root / "logo.png").write_bytes(PNG)
    (root / "data.bin").write_bytes(bytes(range(256)) * 4)
    (root / "broken.pdf").write_bytes(b"%PDF-1.4\n" + b"\x00garbage" * 50)
    return root


EXPECTED_IDS = ["guide/intro.md", "notes.pdf", "ops.docx", "page.html", "tutorial.ipynb"]


def test_a_mixed_folder_ingests_with_a_report_per_suffix_and_every_readable_file_searchable(
    tmp_path: Path, make_retriever
):
    folder = mixed_folder(tmp_path / "docs")
    r = make_retriever()
    report = r.ingest_path(folder)
    assert (report.documents, report.added) == (5, 5)
    counts = {c.suffix: (c.read, c.skipped, dict(c.reasons)) for c in report.files}
    assert counts == {
        ".bin": (0, 1, {"no reader for .bin": 1}),
        ".docx": (1, 0, {}),
        ".html": (1, 0, {}),
        ".ipynb": (1, 0, {}),
        ".md": (1, 0, {}),
        ".pdf": (1, 1, {"unreadable": 1}),
        ".png": (0, 1, {"no reader for .png": 1}),
    }
    assert sum(c.read + c.skipped for c in report.files) == len([p for p in folder.rglob("*") if p.is_file()])
    assert [e.rsplit("/", 1)[1] for e in report.skipped_files] == [
        "broken.pdf: not a readable PDF (PdfStreamError: Stream has ended unexpectedly); re-create or re-download it",
        "data.bin: no reader for .bin",
        "logo.png: no reader for .png",
    ]
    assert report.notes == (
        f"{folder / 'notes.pdf'}: page 3 has no text layer (a scanned image?); run OCR on it "
        "(for example ocrmypdf) to make it searchable",
    )
    for word, doc_id in [
        ("zebrafish", "guide/intro.md"),
        ("walrus", "page.html"),
        ("reranker", "notes.pdf"),
        ("snapshot", "ops.docx"),
        ("corpus", "tutorial.ipynb"),
    ]:
        hits = r.search(word, top_k=10, filter={"doc_id": doc_id}, rerank=False)
        assert hits.hits and all(h.doc_id == doc_id and h.source == doc_id for h in hits.hits), word
        assert any(word in h.text.lower() for h in hits.hits), (word, [h.text for h in hits.hits])
    stored = {
        p.payload["doc_id"]: p.payload for p in r.store.scroll(r.collection, None) if p.payload["chunk_index"] == 0
    }
    assert sorted(stored) == EXPECTED_IDS
    assert stored["notes.pdf"]["metadata"] == {
        "file_name": "notes.pdf",
        "suffix": ".pdf",
        "pages": 4,
        "title": "Retrieval notes",
        "folders": [],
    }
    assert stored["guide/intro.md"]["metadata"] == {
        "file_name": "intro.md",
        "suffix": ".md",
        "folders": ["guide"],
        "title": "Intro",
    }  # an earlier version's collection gets folders and title in place (test_document_filters)
    again = r.ingest_path(folder)
    assert (again.documents, again.skipped, again.chunks_written) == (5, 5, 0)


def test_the_cli_prints_the_suffix_counts_and_lists_errors_without_a_traceback(
    tmp_path: Path, config_file: Path, capsys
):
    folder = mixed_folder(tmp_path / "docs")
    (folder / "locked.md").write_text("# Locked\n")
    (folder / "locked.md").chmod(0)
    try:
        assert main(["ingest", str(folder), "--config", str(config_file), "--quiet"]) == 0
    finally:
        (folder / "locked.md").chmod(0o644)
    captured = capsys.readouterr()
    out = captured.out
    assert "Traceback" not in out + captured.err
    assert f"{folder}: files by suffix:\n  .bin: 0 read, 1 skipped (1 no reader for .bin)\n" in out
    assert "  .pdf: 1 read, 1 skipped (1 unreadable)\n" in out
    assert "  .png: 0 read, 1 skipped (1 no reader for .png)\n" in out
    listed = re.search(r"skipped (\d+) files:\n((?:  .*\n)+)", out)
    assert listed is not None and "broken.pdf: not a readable PDF" in listed.group(2)
    assert "logo.png" not in listed.group(2)  # said once, in the counts
    assert f"note: {folder / 'notes.pdf'}: page 3 has no text layer" in out
    import os

    if os.geteuid() != 0:  # root reads any file
        assert "locked.md: permission denied" in listed.group(2)


def test_include_and_exclude_pick_files_and_say_why_the_others_were_left_out(tmp_path: Path, config_file: Path, capsys):
    folder = mixed_folder(tmp_path / "docs")
    argv = ["ingest", str(folder), "--config", str(config_file), "--quiet"]
    assert main([*argv, "--include", "*.md", "--include", "*.pdf", "--exclude", "broken*"]) == 0
    out = capsys.readouterr().out
    assert "2 documents (2 added" in out
    assert "  .png: 0 read, 1 skipped (1 matches no --include pattern)\n" in out
    assert "  .pdf: 1 read, 1 skipped (1 excluded by 'broken*')\n" in out
    assert main([*argv, "--include", "[oops"]) == 2
    assert "opens a '[' set it does not close" in capsys.readouterr().err
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text('{"doc_id": "1", "text": "x"}\n')
    assert main(["ingest", str(jsonl), "--config", str(config_file), "--sync"]) == 2
    assert "apply to folders" in capsys.readouterr().err


def test_a_broken_link_is_counted_not_ignored(tmp_path: Path):
    (tmp_path / "a.md").write_text("# A\n\nText.\n")
    (tmp_path / "gone.md").symlink_to(tmp_path / "nowhere.md")
    tally = FolderTally()
    assert [d.doc_id for d in read_folder(tmp_path, tally=tally)] == ["a.md"]
    assert tally.skipped == [f"{tmp_path / 'gone.md'}: a symbolic link to nothing"]
    assert [(c.suffix, c.read, c.skipped, c.reasons) for c in tally.files()] == [(".md", 1, 1, (("broken link", 1),))]


def test_a_folder_with_nothing_readable_says_what_it_holds(tmp_path: Path):
    (tmp_path / "a.png").write_bytes(PNG)
    with pytest.raises(
        InputError, match=r"holds no file that a reader reads \(1 other files\); readers exist for .*\.pdf"
    ):
        read_folder(tmp_path)


def test_strict_fails_on_a_corrupt_pdf_before_writing(tmp_path: Path, config_file: Path, capsys):
    folder = mixed_folder(tmp_path / "docs")
    assert main(["ingest", str(folder), "--config", str(config_file), "--quiet", "--strict"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {folder / 'broken.pdf'}: not a readable PDF") and "Traceback" not in err
    assert "Nothing of the folder was written" in err


# -- globs --------------------------------------------------------------------------------------------
def test_glob_rules():
    assert matches("a/b/c.md", "*.md") and matches("c.md", "*.md")
    assert matches("docs/x/y.pdf", "docs/**/*.pdf") and matches("docs/y.pdf", "docs/**/*.pdf")
    assert not matches("other/docs/y.pdf", "docs/**/*.pdf")
    assert matches("docs/a/b", "docs/**") and not matches("docsx/a", "docs/**")
    assert not matches("a/b.md", "a/*/b.md") and matches("a/x/b.md", "a/*/b.md")
    assert matches("a1.txt", "a[0-9].txt") and not matches("ab.txt", "a[0-9].txt")
    assert matches("ab.txt", "a[!0-9].txt") and matches("a?.txt", "a[?].txt") and not matches("ab.txt", "a[?].txt")
    with pytest.raises(InputError):
        glob_regex("")


NAME = st.text(string.ascii_letters + string.digits + " -_.()+,'&äé中", min_size=1, max_size=12).filter(
    lambda s: s not in (".", "..") and not s.startswith(".")
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(NAME, min_size=1, max_size=3))
def test_a_literal_pattern_matches_its_own_path_and_a_star_suffix_every_depth(parts: list[str]):
    relative = "/".join(parts)
    escaped = re.sub(r"([*?\[])", r"[\1]", relative)
    assert matches(relative, escaped if "/" in escaped else escaped)
    assert matches(relative, "**")
    name = parts[-1]
    if "." in name:
        assert matches(relative, "*." + re.sub(r"([*?\[])", r"[\1]", name.rsplit(".", 1)[1]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    names=st.lists(NAME.map(lambda s: s + st_suffix(s)), min_size=1, max_size=8, unique_by=str.lower),
    include=st.lists(st.sampled_from(["*.md", "*.txt", "*.png", "sub/**", "*a*", "[!x]*"]), max_size=2),
    exclude=st.lists(st.sampled_from(["*.md", "*.txt", "*b*", "sub/*", "?"]), max_size=2),
)
def test_every_file_is_read_or_skipped_once_and_odd_names_are_their_own_ids(
    tmp_path_factory: pytest.TempPathFactory, names: list[str], include: list[str], exclude: list[str]
):
    root = tmp_path_factory.mktemp("odd")
    (root / "sub").mkdir()
    paths = []
    for i, name in enumerate(names):
        path = root / ("sub" if i % 2 else ".") / name
        path.write_text(f"text of {name}\n")
        paths.append(path.relative_to(root).as_posix().removeprefix("./"))
    pick = FileFilter.of(include, exclude)
    tally = FolderTally()
    taken = [p for p in paths if pick.refusal(p) is None and Path(p).suffix.lower() in (".md", ".txt")]
    if not taken:
        with pytest.raises(InputError):
            read_folder(root, files=pick, tally=tally)
        return
    docs = list(read_folder(root, files=pick, tally=tally))
    assert sorted(d.doc_id for d in docs) == sorted(taken)
    assert all(d.source == d.doc_id and d.text == f"text of {Path(d.doc_id).name}\n" for d in docs)
    files = tally.files()
    assert sum(c.read for c in files) == len(taken) and sum(c.read + c.skipped for c in files) == len(paths)
    assert len(tally.skipped) == len(paths) - len(taken)


def st_suffix(name: str) -> str:
    return [".md", ".txt", ".png", ""][len(name) % 4]
