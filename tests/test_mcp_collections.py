"""Several collections from one server (``--collections a,b``): the allow-list, and the server's
tenant and read-only mode holding for every collection; a collection that is not there is
refused at start. Real server processes over stdio (the plugin's entry point and the core
``m3retriever serve-mcp``), driven by the SDK's client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

pytest.importorskip("m3retriever_mcp")
pytest.importorskip("mcp")

from m3retriever import load_config  # noqa: E402
from m3retriever_mcp.served import close_all, open_collections  # noqa: E402
from test_adapter_mcp import SERVER_ENV, SESSION_TIMEOUT, _log_tail, _toml_value  # noqa: E402
from test_mcp_agents import call_error, call_ok, session_at  # noqa: E402

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]  # servers in subprocesses

DOCS = {
    "a": [
        ("a-acme", "acme", "Kiwi and mango grow in the acme orchard."),
        ("a-globex", "globex", "Kiwi prices at globex."),
    ],
    "b": [("b-acme", "acme", "Granite from the acme quarry."), ("b-globex", "globex", "Granite and basalt at globex.")],
}


@pytest.fixture
def tenant_store(tmp_path: Path, tiny_settings: dict) -> Path:
    """Collections a and b in one store, each holding documents of tenants acme and globex."""
    settings = {**tiny_settings, "tenant_field": "tenant"}
    cfg = load_config(env={}, location=str(tmp_path / "store"), **settings)
    opened = open_collections(cfg, ["a", "b"], must_exist=False)
    try:
        for r in opened:
            r.ingest([{"doc_id": d, "text": t, "metadata": {"tenant": n}} for d, n, t in DOCS[r.collection]])
    finally:
        close_all(opened)
    path = tmp_path / "m3r.toml"
    values = {"location": str(tmp_path / "store"), **settings}
    path.write_text("".join(f"{k} = {_toml_value(v)}\n" for k, v in values.items()))
    return path


async def test_tenant_and_read_only_hold_for_every_collection(tenant_store: Path, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    try:
        with anyio.fail_after(SESSION_TIMEOUT):
            async with session_at(
                tenant_store, log, "2025-11-25", "--collections", "b,a", "--tenant", "acme"
            ) as session:
                listed = (await session.list_tools()).tools
                schemas = {t.name: t.output_schema for t in listed}
                assert not {"ingest", "delete"} & {t.name for t in listed}  # read-only: for every collection
                out = await call_ok(session, "list_collections", {}, schemas)
                assert [
                    (c["name"], c["default"], c["tenant"], c["writes"], c["documents"]) for c in out["collections"]
                ] == [
                    ("b", True, "acme", False, 1),
                    ("a", False, "acme", False, 1),
                ]
                for name in ("a", "b"):
                    hits = (
                        await call_ok(
                            session, "search", {"query": "kiwi granite", "collection": name, "top_k": 10}, schemas
                        )
                    )["hits"]
                    assert [h["doc_id"] for h in hits] == [f"{name}-acme"]
                    assert "no document" in await call_error(
                        session, "fetch", {"doc_id": f"{name}-globex", "collection": name}
                    )
                    got = await call_ok(session, "fetch", {"doc_id": f"{name}-acme", "collection": name}, schemas)
                    assert got["metadata"] == {"tenant": "acme"}
                    with pytest.raises(Exception, match="no document"):
                        await session.read_resource(f"m3retriever://{name}/doc/{name}-globex")
                # The default is the first listed; a name off the list is refused.
                assert (await call_ok(session, "collection_info", {}, schemas))["collection"] == "b"
                assert "not served here" in await call_error(session, "collection_info", {"collection": "c"})
                with pytest.raises(Exception, match="not served here"):
                    await session.read_resource("m3retriever://c/doc/a-acme")
    except BaseException:
        print("server log:\n" + _log_tail(log))
        raise


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **SERVER_ENV, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        args, capture_output=True, text=True, timeout=120, cwd=str(cwd), env=env, stdin=subprocess.DEVNULL, check=False
    )


def test_start_refuses_a_missing_collection_or_a_bad_list(tenant_store: Path) -> None:
    config = str(tenant_store)
    cli = [sys.executable, "-m", "m3retriever.cli"]
    plugin = [sys.executable, "-m", "m3retriever_mcp", "--config", config]
    for args, needle in [
        ([*plugin, "--collections", "a,zzz"], "no collection 'zzz'"),
        ([*cli, "serve-mcp", "--config", config, "--collections", "a,zzz"], "no collection 'zzz'"),
        ([*plugin, "--collections", "a,a"], "twice"),
        ([*plugin, "--collections", "a,,b"], "separated by commas"),
        ([*cli, "serve-mcp", "--config", config, "--collection", "a", "--collections", "a,b"], "not both"),
        ([*plugin, "--collections", "a,b", "--collection-description", "c=Nothing"], "'c', which is not served"),
        ([*plugin, "--collection-description", "no equals sign"], "NAME=TEXT"),
    ]:
        done = _run(args, tenant_store.parent)
        assert done.returncode == 2, (args, done.stdout, done.stderr[-2000:])
        assert needle in done.stderr, (args, done.stderr[-2000:])


async def test_core_cli_serves_several_collections(tenant_store: Path, tmp_path: Path) -> None:
    from contextlib import AsyncExitStack

    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    env = {**SERVER_ENV, "PYTHONPATH": os.pathsep.join(sys.path)}
    args = [
        "-m",
        "m3retriever.cli",
        "serve-mcp",
        "--config",
        str(tenant_store),
        "--collections",
        "a,b",
        "--collection-description",
        "b=Rocks",
        "--allow-writes",
    ]
    params = StdioServerParameters(command=sys.executable, args=args, env=env, cwd=str(tmp_path))
    log = tmp_path / "cli.log"
    try:
        with anyio.fail_after(SESSION_TIMEOUT), open(log, "w") as errlog:
            async with AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(stdio_client(params, errlog=errlog))
                session = await stack.enter_async_context(ClientSession(read, write, read_timeout_seconds=90))
                await session.initialize()
                result = await session.call_tool("list_collections", {})
                entries = result.structured_content["collections"]
                assert [(c["name"], c["description"], c["writes"]) for c in entries] == [
                    ("a", None, True),
                    ("b", "Rocks", True),
                ]
                read_back = await session.read_resource("m3retriever://collections")
                assert json.loads(read_back.contents[0].text)["collections"] == entries
    except BaseException:
        print("server log:\n" + _log_tail(log))
        raise
