"""Query: encode -> one batched Query API call (prefetch per branch, fused in the engine) ->
rerank -> hits with every stage's score and rank."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence, TypeVar

import numpy as np

from m3retriever.branches import EncoderSet
from m3retriever.config import SearchConfig
from m3retriever.errors import ConfigError
from m3retriever.filters import Filter
from m3retriever.rerankers.base import Reranker
from m3retriever.store.schema import BM25, DENSE, DENSE2, SPARSE, Branch, HybridQuery, ScoredRecord, Store
from m3retriever.types import Hit, SearchResult, SparseVector, StageScores
from m3retriever.validation import check_query

__all__ = ["Searcher", "branch_weights", "candidate_depth", "sigmoid", "minmax", "tie_break"]

logger = logging.getLogger(__name__)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


CHARS_PER_TOKEN = 32
"""Characters of a query looked at per token of ``max_query_tokens`` before tokenizing."""

TIE_MARGIN = 8
"""Extra fused candidates fetched beyond the depth, so ties at the cut are broken by id."""


def tie_break(records: Sequence[ScoredRecord]) -> list[ScoredRecord]:
    """Keep the engine's order but sort runs of equal scores by point id."""
    out: list[ScoredRecord] = []
    run: list[ScoredRecord] = []
    for r in records:
        if run and abs(r.score - run[0].score) > 1e-9 * max(1.0, abs(r.score)):
            out.extend(sorted(run, key=lambda x: x.id))
            run = []
        run.append(r)
    out.extend(sorted(run, key=lambda x: x.id))
    return out


def minmax(x: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] over the candidates (all ones when every value is equal)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return x
    lo, hi = float(x.min()), float(x.max())
    if hi - lo < 1e-12:
        return np.ones_like(x)
    return (x - lo) / (hi - lo)


T = TypeVar("T")


def _set(value: T | None, name: str) -> T:
    """A resolved search setting (a ``None`` here means the settings were not resolved)."""
    if value is None:
        raise ConfigError(
            f"search.{name} is unset: pass search settings from m3retriever.resolution.resolve()"
        )
    return value


def branch_weights(s: SearchConfig) -> dict[str, float]:
    """RRF weight per branch of resolved search settings."""
    return {
        DENSE: _set(s.dense_weight, "dense_weight"),
        SPARSE: _set(s.sparse_weight, "sparse_weight"),
        BM25: _set(s.bm25_weight, "bm25_weight"),
        DENSE2: _set(s.dense2_weight, "dense2_weight"),
    }


def candidate_depth(s: SearchConfig) -> int:
    """Fused candidates kept: the rerank depth when reranking (at least ``top_k``), else ``top_k``."""
    return max(_set(s.rerank_depth, "rerank_depth"), s.top_k) if s.rerank else s.top_k


@dataclass
class _Scores:
    """Scores of one query's fused candidates, indexed by fused position (0-based)."""

    fused: np.ndarray
    final: np.ndarray
    logits: np.ndarray | None = None
    probs: np.ndarray | None = None
    rerank_rank: dict[int, int] = field(default_factory=dict)


def _stage_scores(
    ranks: Mapping[str, Mapping[str, tuple[int, float]]],
    scores: _Scores,
    point_id: str,
    i: int,
    final_rank: int,
    single: bool,
) -> StageScores:
    """Every stage's score and rank of the fused candidate at position ``i``."""
    d = ranks.get(DENSE, {}).get(point_id)
    sp = ranks.get(SPARSE, {}).get(point_id)
    bm = ranks.get(BM25, {}).get(point_id)
    d2 = ranks.get(DENSE2, {}).get(point_id)
    return StageScores(
        dense=d[1] if d else None,
        dense_rank=d[0] if d else None,
        sparse=sp[1] if sp else None,
        sparse_rank=sp[0] if sp else None,
        bm25=bm[1] if bm else None,
        bm25_rank=bm[0] if bm else None,
        dense2=d2[1] if d2 else None,
        dense2_rank=d2[0] if d2 else None,
        fused=None if single else float(scores.fused[i]),
        fused_rank=None if single else i + 1,
        rerank_logit=float(scores.logits[i]) if scores.logits is not None else None,
        rerank=float(scores.probs[i]) if scores.probs is not None else None,
        rerank_rank=scores.rerank_rank.get(i),
        final=float(scores.final[i]),
        final_rank=final_rank,
    )


class Searcher:
    """Runs queries against one collection.

    Args:
        store: The store.
        collection: Collection name.
        encoders: The retriever's encoders.
        reranker: The reranker, or ``None``.
        distance: The collection's dense distance.
        max_query_tokens: Tokens of a query the models read (``None``: the encoders' max
            length); a longer query is cut before any model sees it.
    """

    def __init__(
        self,
        store: Store,
        collection: str,
        encoders: EncoderSet,
        reranker: Reranker | None,
        distance: str = "cosine",
        max_query_tokens: int | None = None,
    ) -> None:
        self.max_query_tokens = max_query_tokens or encoders.max_length
        self.store = store
        self.collection = collection
        self.encoders = encoders
        self.reranker = reranker
        self.distance = distance

    def cut_query(self, query: str) -> str:
        """``query`` cut to :attr:`max_query_tokens` tokens of the chunking encoder's tokenizer.

        A query is read by the dense and sparse encoders and, once per candidate, by the
        reranker: cutting it once here bounds the work and memory of every stage.
        """
        limit = self.max_query_tokens
        if len(query) <= limit:  # a token spans at least one character
            return query
        # Tokenize a bounded prefix only: a subword token is far shorter than CHARS_PER_TOKEN
        # characters, and tokenizing 100,000 characters costs hundreds of MB per thread.
        head = query[: limit * CHARS_PER_TOKEN]
        spans = [(a, b) for a, b in self.encoders.chunking_encoder.token_offsets(head) if b > a]
        if len(spans) <= limit:
            return head
        logger.info("query cut to %d tokens", limit)
        return head[: spans[limit - 1][1]]

    def _branches(self, qv: Any, row: int, s: SearchConfig) -> list[Branch]:
        weights = branch_weights(s)
        branches = []
        if qv.dense is not None and weights[DENSE] > 0:
            branches.append(Branch(DENSE, qv.dense[row].tolist(), _set(s.prefetch_limit, "prefetch_limit"), weights[DENSE]))
        for name, vectors in ((SPARSE, qv.sparse), (BM25, qv.bm25)):
            # An empty sparse query (all stopwords, unknown tokens) matches nothing: drop the
            # branch so the other branches decide alone.
            if vectors is not None and len(vectors[row]) > 0 and weights[name] > 0:
                branches.append(Branch(name, vectors[row], _set(s.prefetch_limit, "prefetch_limit"), weights[name]))
        if qv.dense2 is not None and weights[DENSE2] > 0:
            branches.append(Branch(DENSE2, qv.dense2[row].tolist(), _set(s.prefetch_limit, "prefetch_limit"), weights[DENSE2]))
        return branches

    def search_many(
        self, queries: Sequence[str], s: SearchConfig, flt: Filter | None
    ) -> list[SearchResult]:
        """Search several queries (encoded together, one store batch call).

        Args:
            queries: Query texts.
            s: Resolved search settings (:func:`m3retriever.resolution.resolve`).
            flt: A parsed filter, or ``None``.
        """
        t0 = time.perf_counter()
        cut = [self.cut_query(check_query(q)) for q in queries]
        qv = self.encoders.encode_query(cut)
        t_enc = time.perf_counter()
        requests, layout = self._requests(qv, len(queries), s, flt)
        results = self.store.query(self.collection, requests) if requests else []
        t_search = time.perf_counter()
        out = []
        per_query_enc = (t_enc - t0) * 1000 / max(1, len(queries))
        per_query_search = (t_search - t_enc) * 1000 / max(1, len(queries))
        for row in range(len(queries)):
            first, names = layout[row]
            if first < 0:
                out.append(SearchResult(cut[row], [], timings_ms={"encode": per_query_enc}))
                continue
            fused = results[first]
            branch_lists = {n: results[first + 1 + i] for i, n in enumerate(names)}
            if not names:  # single branch: the fused list *is* that branch
                branch_lists = {requests[first].branches[0].name: fused}
            t_r0 = time.perf_counter()
            result = self._finish(cut[row], qv, row, fused, branch_lists, s, single=not names)
            t_r1 = time.perf_counter()
            timings = {
                "encode": per_query_enc,
                "search": per_query_search,
                "rerank": (t_r1 - t_r0) * 1000,
                "total": per_query_enc + per_query_search + (t_r1 - t_r0) * 1000,
            }
            out.append(
                SearchResult(result.query, result.hits, result.no_confident_match, timings)
            )
        return out

    def _requests(
        self, qv: Any, n_queries: int, s: SearchConfig, flt: Filter | None
    ) -> tuple[list[HybridQuery], list[tuple[int, list[str]]]]:
        """The store requests of encoded queries, and where each query's results are.

        Returns:
            ``(requests, layout)``: per query, ``(first, names)`` where ``requests[first]`` is
            its fused request (``first`` is -1 when no branch can search it) and the
            single-branch requests for stage scores follow it, one per name in ``names``.
        """
        depth = candidate_depth(s)
        rrf_k = _set(s.rrf_k, "rrf_k")
        hnsw_ef = _set(s.hnsw_ef, "hnsw_ef")
        requests: list[HybridQuery] = []
        layout: list[tuple[int, list[str]]] = []
        for row in range(n_queries):
            branches = self._branches(qv, row, s)
            if not branches:
                layout.append((-1, []))
                continue
            with_vectors = tuple(b.name for b in branches if b.name in (SPARSE, BM25))
            first = len(requests)
            requests.append(
                HybridQuery(
                    branches=tuple(branches),
                    limit=depth + TIE_MARGIN,
                    fusion=_set(s.fusion, "fusion"),  # type: ignore[arg-type]
                    rrf_k=rrf_k,
                    filter=flt,
                    hnsw_ef=hnsw_ef,
                    exact=s.exact,
                    with_vectors=with_vectors,
                )
            )
            names = []
            if s.stage_scores and len(branches) > 1:
                for b in branches:
                    requests.append(
                        HybridQuery(
                            branches=(b,), limit=b.limit, filter=flt, hnsw_ef=hnsw_ef, exact=s.exact
                        )
                    )
                    names.append(b.name)
            layout.append((first, names))
        return requests, layout

    def _finish(
        self,
        query: str,
        qv: Any,
        row: int,
        fused: list[ScoredRecord],
        branch_lists: Mapping[str, list[ScoredRecord]],
        s: SearchConfig,
        single: bool,
    ) -> SearchResult:
        """One query's result from its fused candidates and each branch's list."""
        # Keep the engine's order (best first, whatever the distance's direction) and break
        # exact score ties by point id, so rankings are deterministic. The engine was asked for
        # TIE_MARGIN extra candidates, so which of several tied candidates makes the cut is
        # decided here by id, not by the engine's internal order.
        fused = tie_break(fused)[: candidate_depth(s)]
        ranks = {
            name: {r.id: (i + 1, r.score) for i, r in enumerate(tie_break(lst))}
            for name, lst in branch_lists.items()
        }
        scores, order = self._score(query, fused, branch_lists, s, single)
        if s.min_score is not None and scores.probs is not None:
            order = [i for i in order if scores.probs[i] >= s.min_score]
            if not order:
                return SearchResult(query, [], no_confident_match=True)
        query_terms = self._query_terms(qv, row)
        hits = []
        for final_rank, i in enumerate(order[: s.top_k], 1):
            rec = fused[i]
            stage_scores = _stage_scores(ranks, scores, rec.id, i, final_rank, single)
            hits.append(self._hit(rec, stage_scores, query_terms))
        return SearchResult(query, hits)

    def _score(
        self,
        query: str,
        fused: list[ScoredRecord],
        branch_lists: Mapping[str, list[ScoredRecord]],
        s: SearchConfig,
        single: bool,
    ) -> tuple[_Scores, list[int]]:
        """The fused candidates' scores, and their final order (reranked when configured)."""
        fused_scores = np.array([r.score for r in fused], dtype=np.float64)
        # Relevance grows with the score, except for a lone euclid/manhattan dense branch,
        # whose scores are distances.
        lower_is_better = single and self.encoders.dense is not None and DENSE in branch_lists and (
            self.distance in ("euclid", "manhattan")
        )
        relevance = -fused_scores if lower_is_better else fused_scores
        if s.rerank and self.reranker is not None and fused:
            logits = np.asarray(
                self.reranker.score(query, [str(r.payload.get("text", "")) for r in fused]),
                dtype=np.float64,
            )
            probs = sigmoid(logits)
            rerank_rank: dict[int, int] = {}
            for rank, idx in enumerate(sorted(range(len(fused)), key=lambda i: (-logits[i], i))):
                rerank_rank[idx] = rank + 1
            w = _set(s.rerank_weight, "rerank_weight")
            final = probs if w >= 1.0 else w * minmax(logits) + (1.0 - w) * minmax(relevance)
            order = sorted(range(len(fused)), key=lambda i: (-final[i], i))
            return _Scores(fused_scores, final, logits, probs, rerank_rank), order
        return _Scores(fused_scores, fused_scores), list(range(len(fused)))

    def _hit(
        self, rec: ScoredRecord, scores: StageScores, query_terms: Mapping[str, SparseVector]
    ) -> Hit:
        """The hit of a stored record."""
        p = rec.payload
        return Hit(
            id=rec.id,
            doc_id=str(p.get("doc_id", "")),
            chunk_index=int(p.get("chunk_index", 0)),
            text=str(p.get("text", "")),
            source=p.get("source"),
            metadata=dict(p.get("metadata") or {}),
            scores=scores,
            matched_terms=self._matched(query_terms, rec.vectors),
        )

    def _query_terms(self, qv: Any, row: int) -> dict[str, SparseVector]:
        terms = {}
        if qv.sparse is not None:
            terms[SPARSE] = qv.sparse[row]
        if qv.bm25 is not None:
            terms[BM25] = qv.bm25[row]
        return terms

    def _matched(self, query_terms: Mapping[str, SparseVector], vectors: Mapping[str, Any]) -> tuple[str, ...]:
        out: list[str] = []
        for name, enc in ((SPARSE, self.encoders.sparse), (BM25, self.encoders.bm25)):
            qsv = query_terms.get(name)
            dsv = vectors.get(name)
            if enc is None or qsv is None or not isinstance(dsv, SparseVector):
                continue
            weights = qsv.as_dict()
            common = sorted(set(weights) & set(dsv.indices), key=lambda t: (-weights[t], t))
            for term in enc.decode_terms(common):
                term = term.strip()
                if term and term not in out:
                    out.append(term)
        return tuple(out)
