"""The runnable examples in examples/, each run as a script (offline, ``small`` profile).

Each entry is ``(script, lines its stdout must contain)``; the real small models rank the
obvious answer first, so the expected lines name it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

EXAMPLES = [
    pytest.param(
        "llamaindex_query_engine.py",
        ["ingested 5 documents", "  1. paris  final=", "filtered to topic=software: ['rrf'"],
        id="llamaindex",
    ),
    pytest.param(
        "langchain_chain.py",
        [
            "answer (fake chat model): Paris is the capital of France [paris].",
            "  1. paris  final=",
            "batch, topic=software, k=1: ['rrf', 'qdrant']",
        ],
        id="langchain",
    ),
    pytest.param("mcp_client.py", ["top hit: paris"], id="mcp"),
]


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize(("script", "expected"), EXAMPLES)
def test_example_runs(script: str, expected: list[str]) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"{script} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr[-4000:]}"
    for line in expected:
        assert line in proc.stdout, f"{script}: {line!r} not in output:\n{proc.stdout}"
