"""SciFact quality (our stages beside peer pipelines built from the same models), ingest
throughput, and end-to-end query latency with the ``small`` profile.

Peers are built the way their users build them, with the same models wrapped as their own
embedding / reranking classes:

- LangChain: ``langchain_qdrant.QdrantVectorStore`` with ``RetrievalMode.HYBRID`` (bge-small
  dense + SPLADE sparse, RRF in Qdrant) and a cross-encoder reranking compressor (the
  ms-marco-MiniLM ONNX model) over the top ``RERANK_DEPTH`` hits;
- LlamaIndex: ``llama_index.vector_stores.qdrant.QdrantVectorStore`` with ``enable_hybrid=True``
  (its default fusion) and a cross-encoder node postprocessor over the top ``RERANK_DEPTH``.

Peers run on qdrant-client's in-process mode. To keep the benchmark to minutes on small CPUs,
document vectors are read back from our store (they are the outputs of the very same encoders
on the very same texts) and reranker logits are cached per (query, passage) pair: every pipeline
sees exactly the scores the models give, just computed once.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "scifact"
PEER_RERANK_MAX_LENGTH = 512  # the cross-encoder's own limit: what a hand-wired CrossEncoder uses


def pct(values: Sequence[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))] if v else float("nan")


# -- data ------------------------------------------------------------------------------


def scifact_subset(root: Path, n_queries: int, n_docs: int, split: str = "test") -> tuple[list[dict], Any]:
    """A small SciFact sample for --smoke: the relevant docs of the first queries plus others."""
    from m3retriever.labelled.data import load_beir

    data = load_beir(root, split, max_queries=n_queries)
    from m3retriever.ingest.sources import read_beir_corpus

    wanted = {d for rel in data.qrels.values() for d in rel}
    docs = []
    # the same Document objects `ingest_path` makes (metadata, source), so a store filled by
    # `m3retriever ingest` is reused through the content-hash skip
    for i, doc in enumerate(read_beir_corpus(root)):
        if i < n_docs or doc.doc_id in wanted:
            docs.append(doc)
    return docs, data


# -- peers -----------------------------------------------------------------------------


class CachedModels:
    """Our encoders and a reranker, with document vectors and rerank logits computed once."""

    def __init__(self, retriever: Any, reranker: Any) -> None:
        self.r = retriever
        self.reranker = reranker
        self.doc_dense: dict[str, list[float]] = {}
        self.doc_sparse: dict[str, tuple[list[int], list[float]]] = {}
        self.logits: dict[tuple[str, str], float] = {}
        self.rerank_pairs = 0

    def load_from_store(self) -> int:
        from m3retriever.types import SparseVector

        n = 0
        for rec in self.r.store.scroll(self.r.collection, with_vectors=True):
            text = str(rec.payload.get("text", ""))
            d = rec.vectors.get("dense")
            s = rec.vectors.get("sparse")
            if d is not None:
                self.doc_dense[text] = [float(x) for x in d]
            if isinstance(s, SparseVector):
                self.doc_sparse[text] = (list(s.indices), list(s.values))
            n += 1
        return n

    def dense_docs(self, texts: Sequence[str]) -> list[list[float]]:
        missing = [t for t in texts if t not in self.doc_dense]
        if missing:
            vecs = self.r.encoders.dense.encode_document(missing).dense
            for t, v in zip(missing, vecs):
                self.doc_dense[t] = [float(x) for x in v]
        return [self.doc_dense[t] for t in texts]

    def sparse_docs(self, texts: Sequence[str]) -> list[tuple[list[int], list[float]]]:
        missing = [t for t in texts if t not in self.doc_sparse]
        if missing:
            for t, sv in zip(missing, self.r.encoders.sparse.encode_document(missing).sparse):
                self.doc_sparse[t] = (list(sv.indices), list(sv.values))
        return [self.doc_sparse[t] for t in texts]

    def dense_query(self, text: str) -> list[float]:
        return [float(x) for x in self.r.encoders.dense.encode_query([text]).dense[0]]

    def sparse_query(self, text: str) -> tuple[list[int], list[float]]:
        sv = self.r.encoders.sparse.encode_query([text]).sparse[0]
        return list(sv.indices), list(sv.values)

    def rerank(self, query: str, passages: Sequence[str]) -> list[float]:
        missing = [p for p in dict.fromkeys(passages) if (query, p) not in self.logits]
        if missing:
            self.rerank_pairs += len(missing)
            for p, v in zip(missing, self.reranker.score(query, missing)):
                self.logits[(query, p)] = float(v)
        return [self.logits[(query, p)] for p in passages]


def langchain_peer(models: CachedModels, docs: list[dict], depth: int) -> Any:
    from langchain_core.callbacks import Callbacks
    from langchain_core.documents import BaseDocumentCompressor, Document
    from langchain_core.embeddings import Embeddings
    from langchain_qdrant import QdrantVectorStore, RetrievalMode, SparseEmbeddings, SparseVector

    class Dense(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return models.dense_docs(texts)

        def embed_query(self, text: str) -> list[float]:
            return models.dense_query(text)

    class Sparse(SparseEmbeddings):
        def embed_documents(self, texts: list[str]) -> list[SparseVector]:
            return [SparseVector(indices=i, values=v) for i, v in models.sparse_docs(texts)]

        def embed_query(self, text: str) -> SparseVector:
            i, v = models.sparse_query(text)
            return SparseVector(indices=i, values=v)

    class CrossEncoderRerank(BaseDocumentCompressor):
        top_n: int = 100

        def compress_documents(self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None) -> Sequence[Document]:
            scores = models.rerank(query, [d.page_content for d in documents])
            order = sorted(range(len(documents)), key=lambda i: -scores[i])
            return [documents[i] for i in order[: self.top_n]]

    store = QdrantVectorStore.from_texts(
        [d["text"] for d in docs],
        embedding=Dense(),
        sparse_embedding=Sparse(),
        retrieval_mode=RetrievalMode.HYBRID,
        metadatas=[{"doc_id": d["doc_id"]} for d in docs],
        location=":memory:",
        collection_name="lc",
        batch_size=256,
    )
    reranker = CrossEncoderRerank()

    def search(query: str) -> tuple[list[str], list[str]]:
        hits = store.similarity_search(query, k=100)
        fused = [h.metadata["doc_id"] for h in hits]
        reranked = reranker.compress_documents(hits[:depth], query)
        ids = [h.metadata["doc_id"] for h in reranked]
        return fused, ids + [d for d in fused if d not in set(ids)]

    return search


def llamaindex_peer(models: CachedModels, docs: list[dict], depth: int) -> Any:
    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    class Dense(BaseEmbedding):
        def _get_query_embedding(self, query: str) -> list[float]:
            return models.dense_query(query)

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return models.dense_query(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return models.dense_docs([text])[0]

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return models.dense_docs(texts)

    class CrossEncoderRerank(BaseNodePostprocessor):
        top_n: int = 100

        def _postprocess_nodes(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
            scores = models.rerank(query_bundle.query_str, [n.node.get_content() for n in nodes])
            order = sorted(range(len(nodes)), key=lambda i: -scores[i])
            return [NodeWithScore(node=nodes[i].node, score=scores[i]) for i in order[: self.top_n]]

    def sparse_docs(texts: list[str]) -> tuple[list[list[int]], list[list[float]]]:
        pairs = models.sparse_docs(texts)
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def sparse_query(texts: list[str]) -> tuple[list[list[int]], list[list[float]]]:
        pairs = [models.sparse_query(t) for t in texts]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    client = QdrantClient(location=":memory:")
    vs = QdrantVectorStore(
        "li",
        client=client,
        enable_hybrid=True,
        sparse_doc_fn=sparse_docs,
        sparse_query_fn=sparse_query,
        batch_size=256,
    )
    nodes = [TextNode(text=d["text"], metadata={"doc_id": d["doc_id"]}, excluded_embed_metadata_keys=["doc_id"], excluded_llm_metadata_keys=["doc_id"]) for d in docs]
    index = VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(vector_store=vs), embed_model=Dense(), show_progress=False)
    retriever = index.as_retriever(vector_store_query_mode="hybrid", similarity_top_k=100, sparse_top_k=100)
    post = CrossEncoderRerank()

    def search(query: str) -> tuple[list[str], list[str]]:
        hits = retriever.retrieve(query)
        fused = [h.node.metadata["doc_id"] for h in hits]
        reranked = post.postprocess_nodes(hits[:depth], query_bundle=QueryBundle(query))
        ids = [h.node.metadata["doc_id"] for h in reranked]
        return fused, ids + [d for d in fused if d not in set(ids)]

    return search


def reranker_at(retriever: Any, max_length: int) -> Any:
    """The retriever's own reranker (same component and model resolution) at another pair length."""
    from dataclasses import replace

    from m3retriever.components import reranker_for

    return reranker_for(replace(retriever.settings, rerank_max_length=max_length))


def run_peer(name: str, search: Any, queries: dict[str, str]) -> tuple[dict, dict, list[float]]:
    from m3retriever.evaluation.runner import ranking_to_scores

    fused_run, rr_run, lat = {}, {}, []
    for q, text in queries.items():
        t = time.perf_counter()
        fused, reranked = search(text)
        lat.append((time.perf_counter() - t) * 1000)
        fused_run[q] = ranking_to_scores(list(dict.fromkeys(fused)))
        rr_run[q] = ranking_to_scores(list(dict.fromkeys(reranked)))
    return fused_run, rr_run, lat


# -- sections --------------------------------------------------------------------------


def quality(
    retriever: Any,
    data: Any,
    docs: list[dict] | None,
    peers: bool,
    command: str,
    log: Any,
    rerank_depth: int | None = None,
    corpus_note: str | None = None,
) -> tuple[str, dict]:
    """Our stages on ``data`` (the corpus already ingested) beside the peers."""
    from m3retriever.evaluation.runner import evaluate
    from m3retriever.labelled.metrics import compare

    t0 = time.perf_counter()
    report = evaluate(
        retriever, data.queries, data.qrels, baseline="fused", dataset=f"SciFact {data.split}",
        test="student", rerank_depth=rerank_depth,
    )
    peer_depth = rerank_depth or retriever.search_settings().rerank_depth  # same depth as ours
    log(f"[quality] ours: {report.scores} in {time.perf_counter() - t0:.0f}s")
    runs = {f"ours: {s}": report.runs[s] for s in report.stages}
    notes = []
    if peers:
        models = CachedModels(retriever, reranker_at(retriever, PEER_RERANK_MAX_LENGTH))
        n = models.load_from_store()
        # the peers index exactly the chunks our collection holds
        docs = [{"doc_id": rec.payload["doc_id"], "text": rec.payload["text"]} for rec in retriever.store.scroll(retriever.collection)]
        log(f"[quality] reused {n} stored vectors for the peers")
        for name, build in (("LangChain QdrantVectorStore HYBRID", langchain_peer), ("LlamaIndex QdrantVectorStore hybrid", llamaindex_peer)):
            try:
                t = time.perf_counter()
                search = build(models, docs, peer_depth)
                f, rr, lat = run_peer(name, search, data.queries)
                runs[f"{name}"] = f
                runs[f"{name} + rerank@{peer_depth}"] = rr
                log(f"[quality] {name}: {time.perf_counter() - t:.0f}s")
            except Exception as exc:  # noqa: BLE001 - report, don't abort the whole benchmark
                notes.append(f"{name}: failed ({type(exc).__name__}: {exc})")
                log(f"[quality] {name} failed: {exc!r}")
    cmp = compare(data.qrels, runs, ["ndcg@10", "recall@100", "mrr@10"], baseline="ours: rerank" if "ours: rerank" in runs else next(iter(runs)))
    base = "ours: rerank" if "ours: rerank" in runs else next(iter(runs))
    s = report.settings
    lines = [
        "## SciFact quality (small profile) and peer pipelines",
        "",
        f"Reproduce: `{command}`",
        "",
        f"{data.name} split `{data.split}`, {len(data.queries)} queries"
        + (f", {corpus_note}" if corpus_note else "")
        + ". Ours: one ingest, every stage "
        f"from the same collection (`ours: rerank` is the default pipeline: RRF k={s['rrf_k']}, weights "
        f"{s['weights']}, prefetch {s['prefetch_limit']}, rerank depth {s['rerank_depth']}, rerank_weight "
        f"{s['rerank_weight']}, rerank pairs cut to {retriever.reranker.spec.max_length if retriever.reranker else '-'} tokens; "
        "the `small` profile's defaults, chosen to transfer across collections). Peers: the same bge-small int8 + SPLADE-tiny vectors (queries "
        "encoded exactly as ours), fused by their own hybrid mode (LangChain: Qdrant RRF with its "
        "defaults; LlamaIndex: its relative-score fusion, alpha 0.5), and the same ms-marco-MiniLM-L-12 "
        f"int8 cross-encoder at its full {PEER_RERANK_MAX_LENGTH} tokens reordering their top {peer_depth} "
        "by its score alone, as a hand-wired reranker postprocessor does. p-values: paired t-test "
        f"against `{base}`; ▲/▼ = significantly better/worse (p < 0.05).",
        "",
        "| pipeline | nDCG@10 | Recall@100 | MRR@10 |",
        "|---|---|---|---|",
    ]
    for name in runs:
        cells = []
        for m in ("ndcg@10", "recall@100", "mrr@10"):
            c = cmp[name][m]
            mark = ""
            if c.get("significant"):
                mark = "▲" if c["score"] > cmp[base][m]["score"] else "▼"
            cells.append(f"{c['score']:.4f}{mark}" + (f" (p={c['p_value']:.3f})" if c.get("p_value") is not None else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    from m3retriever.evaluation.stats import versus_lines

    versus = versus_lines(report.versus, "ndcg@10")
    lines += ["", "Ours against the best single branch (nDCG@10, paired randomisation test):", ""]
    lines += [f"- {line}" for line in versus] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n", {"report": report.as_dict(), "comparison": cmp}


def ingest_throughput(make: Any, docs: list[dict], command: str, log: Any) -> tuple[str, dict]:
    """End-to-end ingest (chunk, encode, upsert) vs the raw encoders on the same chunk texts."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        r = make(str(Path(tmp) / "store"))
        try:
            r.encoders.encode_document([d["text"] for d in docs[:4]])  # warm-up (model load)
            t = time.perf_counter()
            rep = r.ingest(docs)
            e2e = time.perf_counter() - t
            texts = [str(rec.payload["text"]) for rec in r.store.scroll(r.collection)]
            bs = r.config.batch_size
            # Raw: every chunk text in one call, so the encoders batch (batch_size) and sort by
            # length over the whole set: their best case, at least as good as the pipeline's
            # per-write-batch calls.
            t = time.perf_counter()
            r.encoders.encode_document(texts)
            raw = time.perf_counter() - t
        finally:
            r.close()
    n = rep.chunks_written
    res = {"docs": len(docs), "chunks": n, "e2e_s": e2e, "raw_s": raw, "e2e_cps": n / e2e, "raw_cps": len(texts) / raw}
    res["ratio"] = res["e2e_cps"] / res["raw_cps"]
    log(f"[ingest] {res}")
    md = "\n".join(
        [
            "## Ingest throughput (small profile)",
            "",
            f"Reproduce: `{command}`",
            "",
            f"{len(docs)} SciFact documents -> {n} chunks. End to end: `Retriever.ingest()` into a fresh "
            "embedded store (chunking, hashing, the three encoders, upsert). Raw: the same encoders "
            f"(`EncoderSet.encode_document`, one call over all the chunk texts, internal batches of {bs}) "
            "on the same chunk texts, same process, right after. Target: ratio >= 0.95.",
            "",
            "| docs | chunks | end-to-end chunks/s | raw encoders chunks/s | ratio |",
            "|---|---|---|---|---|",
            f"| {len(docs)} | {n} | {res['e2e_cps']:.2f} | {res['raw_cps']:.2f} | {res['ratio']:.3f} |",
        ]
    )
    return md + "\n", res


def query_latency(retriever: Any, queries: Sequence[str], depths: Sequence[int], command: str, log: Any) -> tuple[str, dict]:
    """Single-query latency of the default pipeline, encode/search/rerank timed separately."""
    retriever.search(queries[0])  # warm-up
    rows = {}
    for d in depths:
        parts: dict[str, list[float]] = {"encode": [], "search": [], "rerank": [], "total": []}
        for q in queries:
            t = time.perf_counter()
            res = retriever.search(q, rerank_depth=d, top_k=min(10, d))
            wall = (time.perf_counter() - t) * 1000
            for k in ("encode", "search", "rerank"):
                parts[k].append(float(res.timings_ms.get(k, 0.0)))
            parts["total"].append(wall)
        rows[d] = {k: (statistics.median(v), pct(v, 0.95)) for k, v in parts.items()}
        log(f"[latency] depth {d}: {rows[d]}")
    lines = [
        "## End-to-end query latency (small profile)",
        "",
        f"Reproduce: `{command}`",
        "",
        f"{len(queries)} SciFact queries, one `Retriever.search()` call each (top min(10, depth), per-stage scores on), "
        "after a warm-up; milliseconds, p50 / p95. `total` is wall time around the call. Target: "
        "p50 <= 1000 ms at depth 20.",
        "",
        "| rerank depth | encode | search | rerank | total |",
        "|---|---|---|---|---|",
    ]
    for d, r in rows.items():
        lines.append(f"| {d} | " + " | ".join(f"{r[k][0]:.1f} / {r[k][1]:.1f}" for k in ("encode", "search", "rerank", "total")) + " |")
    return "\n".join(lines) + "\n", {str(k): v for k, v in rows.items()}


def rerank_lengths(
    retriever: Any, queries: Sequence[str], lengths: Sequence[int], depth: int, command: str, log: Any
) -> tuple[str, dict]:
    """Cross-encoder cost per query against the max pair length, on the pipeline's own
    candidates (the fused top ``depth`` of each query), one timed ``score`` call per query."""
    if retriever.reranker is None:
        return "", {}
    cands = []
    for q in queries:
        hits = retriever.search(q, top_k=depth, rerank=False, stage_scores=False).hits
        cands.append((q, [h.text for h in hits]))
    rows = {}
    for length in lengths:
        rr = reranker_at(retriever, length)
        rr.score("warm up", ["warm up"])
        times = []
        for q, passages in cands:
            t = time.perf_counter()
            rr.score(q, passages)
            times.append((time.perf_counter() - t) * 1000)
        p50 = statistics.median(times)
        rows[length] = {"p50_ms": p50, "p95_ms": pct(times, 0.95), "pairs_per_s": depth / (p50 / 1000)}
        log(f"[rerank] max_length {length}: {rows[length]}")
    lines = [
        "## Cross-encoder cost against pair length (small profile's reranker)",
        "",
        f"Reproduce: `{command}`",
        "",
        f"{len(queries)} SciFact queries, each with its fused top {depth} (the candidates the pipeline "
        "reranks), scored in one call per query after a warm-up; pairs sorted by length, int8 ONNX, "
        "one pair per forward pass (dynamic int8 scales span the batch). Milliseconds per query.",
        "",
        "| max tokens per pair | p50 ms | p95 ms | pairs/s (p50) |",
        "|---|---|---|---|",
    ]
    for length, r in rows.items():
        lines.append(f"| {length} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['pairs_per_s']:.1f} |")
    return "\n".join(lines) + "\n", {str(k): v for k, v in rows.items()}


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run tests/benchmarks/run_all.py")
