"""The command line, run in-process through ``m3retriever.cli.main`` and as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from m3retriever.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def corpus_dir(tmp_path: Path, corpus_docs: list[dict]) -> Path:
    d = tmp_path / "corpus"
    d.mkdir()
    for doc in corpus_docs:
        (d / f"{doc['doc_id']}.txt").write_text(doc["text"])
    return d


def test_ingest_search_info_delete(config_file, corpus_dir, capsys):
    assert main(["ingest", str(corpus_dir), "--config", str(config_file), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "12 documents (12 added, 0 updated, 0 unchanged)" in out
    assert "collection 'cli': 12 chunks" in out

    assert main(["ingest", str(corpus_dir), "--config", str(config_file), "--quiet"]) == 0
    assert "12 unchanged" in capsys.readouterr().out

    assert main(["search", "capital of France", "--config", str(config_file), "-k", "3"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:9] == ["#", "doc_id", "dense", "sparse", "bm25", "fused", "rerank", "conf", "final"]
    assert len(table) == 2 + 3
    confidences = [float(row.split()[7]) for row in table[2:]]
    assert all(0.0 <= c <= 1.0 for c in confidences)

    assert main(["search", "capital", "--config", str(config_file), "--json", "--no-rerank", "-k", "2"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["hits"]) == 2 and data["hits"][0]["scores"]["rerank"] is None
    assert data["hits"][0]["confidence"] is None  # no reranker read it
    assert data["hits"][0]["scores"]["fused_rank"] == 1

    assert main(["search", "capital", "--config", str(config_file), "--min-score", "1.0"]) == 0
    assert "no confident match" in capsys.readouterr().out

    assert main(["collection", "info", "--config", str(config_file), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["documents"] == 12 and info["backend"] == "qdrant-edge"

    assert main(["delete", "--doc-id", "paris.txt", "--config", str(config_file)]) == 0
    assert "deleted 1 chunks" in capsys.readouterr().out


def test_errors_exit_2_with_a_message(config_file, tmp_path, capsys):
    assert main(["ingest", str(tmp_path / "nope"), "--config", str(config_file), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["search", "x", "--config", str(config_file), "--filter", "{bad"]) == 2
    assert "--filter must be JSON" in capsys.readouterr().err
    assert main(["delete", "--config", str(config_file)]) == 2
    assert "refusing to delete everything" in capsys.readouterr().err
    assert main(["search", "x", "--profile", "galaxy"]) == 2
    assert "unknown profile" in capsys.readouterr().err


def test_console_script_runs_as_a_process():
    exe = Path(sys.executable).with_name("m3retriever")
    # our adapters only, so that other plugins installed here do not change the listing
    env = {**os.environ, "M3R_LOAD_PLUGINS": "llamaindex,langchain,mcp"}
    proc = subprocess.run([str(exe), "plugins", "--json"], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    listed = {p["name"]: p for p in json.loads(proc.stdout)}
    assert set(listed) == {"builtin", "llamaindex", "langchain", "mcp"}
    assert all(p["status"] == "loaded" and p["error"] is None for p in listed.values()), listed
    encoders = listed["builtin"]["components"]["register_encoders"]
    assert {"bge-m3", "onnx-dense", "sentence-transformers", "splade", "bm25"} <= set(encoders)
    assert listed["mcp"]["components"] == {"register_adapters": ["mcp"]}

    proc = subprocess.run([str(exe), "plugins"], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "builtin  (m3retriever " in proc.stdout and "register_encoders: bge-m3, " in proc.stdout


@pytest.mark.slow
def test_demo_ingests_the_project_docs_with_the_small_profile(tmp_path):
    exe = Path(sys.executable).with_name("m3retriever")
    proc = subprocess.run(
        [str(exe), "demo", "--location", str(tmp_path / "demo"), "--query", "How do I write a plugin that adds an encoder?"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "profile 'small'" in out and "--profile bge-m3" in out
    assert "ingested" in out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("#  doc_id"))
    top = lines[header + 2]
    assert "plugins.md" in top  # the page about writing plugins answers the question
