"""The server driven by the official MCP inspector's command-line mode (Node.js).

Skipped unless the inspector can run here without a download: ``$M3R_MCP_INSPECTOR`` (the
path of its ``mcp-inspector`` script), ``mcp-inspector`` on the PATH, or the package in npx's
cache (``npx --no-install @modelcontextprotocol/inspector``). Install it with
``npm install @modelcontextprotocol/inspector`` (version 0.21 runs on Node 20).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("m3retriever_mcp")

from test_mcp_agents import seed_two_collections  # noqa: E402

pytestmark = [pytest.mark.timeout(400), pytest.mark.slow]

NPX_PACKAGE = "@modelcontextprotocol/inspector"


def _inspector() -> list[str] | None:
    """The command that starts the inspector, or ``None`` when it cannot run offline."""
    given = os.environ.get("M3R_MCP_INSPECTOR") or shutil.which("mcp-inspector")
    if given:
        return [given]
    npx = shutil.which("npx")
    if npx is None:
        return None
    command = [npx, "--no-install", NPX_PACKAGE]
    try:
        probe = subprocess.run([*command, "--cli", "--help"], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return command if probe.returncode == 0 else None


@pytest.fixture(scope="module")
def inspector() -> list[str]:
    command = _inspector()
    if command is None:
        pytest.skip(f"the MCP inspector is not installed (npm install {NPX_PACKAGE}) or node/npx is missing")
    return command


def run_inspector(inspector: list[str], config: Path, *options: str) -> dict:
    """One inspector CLI call against a server started for it; its JSON answer."""
    server = [sys.executable, "-m", "m3retriever_mcp", "--config", str(config), "--collections", "a,b"]
    env_options = ["-e", "HF_HUB_OFFLINE=1", "-e", "TRANSFORMERS_OFFLINE=1"]
    if os.environ.get("PYTHONPATH"):
        env_options += ["-e", f"PYTHONPATH={os.environ['PYTHONPATH']}"]
    done = subprocess.run(
        [*inspector, "--cli", *env_options, *options, "--", *server],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=str(config.parent),
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(done.stdout)


def test_inspector_cli(inspector: list[str], tmp_path: Path, tiny_settings: dict, corpus_docs: list[dict]) -> None:
    config = seed_two_collections(tmp_path, tiny_settings, corpus_docs)
    tools = {t["name"]: t for t in run_inspector(inspector, config, "--method", "tools/list")["tools"]}
    assert {"search", "fetch", "list_collections", "collection_info"} <= set(tools)
    assert all(t["inputSchema"].get("additionalProperties") is False for t in tools.values())

    # --tool-arg takes several values: another option ends them.
    found = run_inspector(
        inspector,
        config,
        "--tool-name",
        "search",
        "--tool-arg",
        "query=quartz",
        "collection=b",
        "top_k=2",
        "--method",
        "tools/call",
    )
    links = [c for c in found["content"] if c["type"] == "resource_link"]
    assert links and all(link["uri"].startswith("m3retriever://b/doc/") for link in links)
    hit = found["structuredContent"]["hits"][0]

    read = run_inspector(inspector, config, "--uri", hit["uri"], "--method", "resources/read")
    document = json.loads(read["contents"][0]["text"])
    assert document["doc_id"] == hit["doc_id"] and document["collection"] == "b"
    fetched = run_inspector(
        inspector,
        config,
        "--tool-name",
        "fetch",
        "--tool-arg",
        f"doc_id={hit['doc_id']}",
        "collection=b",
        "--method",
        "tools/call",
    )
    assert fetched["structuredContent"]["text"] == document["text"]
    templates = run_inspector(inspector, config, "--method", "resources/templates/list")["resourceTemplates"]
    assert "m3retriever://{collection}/doc/{doc_id}" in {t["uriTemplate"] for t in templates}
