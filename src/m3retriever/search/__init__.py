"""Query: encode -> one batched Query API call (prefetch per branch, fused in the engine,
optionally rescored by multivector MaxSim) -> rerank -> hits with every stage's score and rank."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any, Mapping, Sequence

import numpy as np

from m3retriever.branches import EncoderSet
from m3retriever.config import MAX_LIMIT
from m3retriever.config.settings import SearchSettings
from m3retriever.errors import ConfigError
from m3retriever.filters import Filter
from m3retriever.rerankers.base import Reranker
from m3retriever.search.adaptive import adapted_weights
from m3retriever.search.diversity import diversify_records
from m3retriever.search.fusion import LOWER_IS_BETTER, zscore_fuse
from m3retriever.search.matching import Matcher, analyzer_of
from m3retriever.search.reading import read_and_score
from m3retriever.search.stage_scores import FUSED, Scores, calibrated, hit_stage_scores

# Re-exported: imported from here by the evaluation and by users.
from m3retriever.search.stage_scores import minmax as minmax
from m3retriever.search.stage_scores import sigmoid as sigmoid
from m3retriever.search.stage_scores import tie_break as tie_break
from m3retriever.search.tracing import span, weight_attributes
from m3retriever.store.schema import BM25, DENSE, DENSE2, SPARSE, Branch, HybridQuery, Rescore, ScoredRecord, Store
from m3retriever.types import Hit, SearchResult, StageScores
from m3retriever.validation import check_query

__all__ = ["Searcher", "branch_weights", "candidate_depth", "sigmoid", "minmax", "tie_break"]

logger = logging.getLogger(__name__)


CHARS_PER_TOKEN = 32
"""Characters of a query looked at per token of ``max_query_tokens`` before tokenizing."""

TIE_MARGIN = 8
"""Extra fused candidates fetched beyond the depth, so ties at the cut are broken by id."""

NOT_SEARCHED = -1
"""Where a query's main request is when no branch can search it (its layout's ``first``)."""

FUSED_HERE = -2
"""Where a query's main request is when ``zscore`` fuses its branches' own rankings: none."""


def branch_weights(s: SearchSettings) -> dict[str, float]:
    """RRF weight per branch of resolved search settings."""
    return {
        DENSE: s.dense_weight,
        SPARSE: s.sparse_weight,
        BM25: s.bm25_weight,
        DENSE2: s.dense2_weight,
    }


def candidate_depth(s: SearchSettings) -> int:
    """Fused candidates kept: the rerank depth when reranking (at least ``top_k``), else
    ``top_k``; with ``max_per_doc`` or ``mmr``, at least ``diversity_depth`` (default
    ``3 * top_k``), so the places they free are filled from deeper candidates."""
    depth = max(s.rerank_depth, s.top_k) if s.rerank else s.top_k
    if s.max_per_doc is not None or s.mmr is not None:
        depth = max(depth, s.diversity_depth or min(MAX_LIMIT, 3 * s.top_k))
    return depth


def rescore_depth(s: SearchSettings) -> int:
    """Fused candidates the multivector rescoring reads: ``multivector_depth``, at least the
    candidates kept after it (with the tie margin)."""
    return max(s.multivector_depth, candidate_depth(s) + TIE_MARGIN)


def _rescore_on(s: SearchSettings, qv: Any) -> bool:
    """Whether to rescore by MaxSim; an error when asked of encoders without multivectors."""
    if s.multivector_rescore and qv.multivector is None:
        raise ConfigError(
            "search.multivector_rescore is on but the encoders produce no multivectors; "
            "build the retriever with multivector = true and re-ingest with it"
        )
    return bool(s.multivector_rescore)


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
        quantized: The collection is quantized: send ``oversampling`` and ``rescore``.
    """

    def __init__(
        self,
        store: Store,
        collection: str,
        encoders: EncoderSet,
        reranker: Reranker | None,
        distance: str = "cosine",
        max_query_tokens: int | None = None,
        quantized: bool = False,
    ) -> None:
        self.quantized = quantized
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

    def _branches(self, qv: Any, row: int, s: SearchSettings) -> list[Branch]:
        weights = branch_weights(s)
        idf = {SPARSE: bool(self.encoders.sparse and self.encoders.sparse.spec.sparse_idf), BM25: True}
        branches = []
        if qv.dense is not None and weights[DENSE] > 0:
            branches.append(Branch(DENSE, qv.dense[row].tolist(), s.prefetch_limit, weights[DENSE]))
        for name, vectors in ((SPARSE, qv.sparse), (BM25, qv.bm25)):
            # An empty sparse query (all stopwords, unknown tokens) matches nothing: drop the
            # branch so the other branches decide alone.
            if vectors is not None and len(vectors[row]) > 0 and weights[name] > 0:
                limit = s.prefetch_limit
                branches.append(Branch(name, vectors[row], limit, weights[name], idf=idf[name]))
        if qv.dense2 is not None and weights[DENSE2] > 0:
            branches.append(Branch(DENSE2, qv.dense2[row].tolist(), s.prefetch_limit, weights[DENSE2]))
        return branches

    def search_many(
        self, queries: Sequence[str], s: SearchSettings, flt: Filter | None, idf_corpus: Filter | None = None
    ) -> list[SearchResult]:
        """Search several queries (encoded together, one store batch call).

        Args:
            queries: Query texts.
            s: Resolved search settings (:func:`m3retriever.config.resolution.resolve`).
            flt: A parsed filter, or ``None``.
            idf_corpus: The points IDF is computed over (a tenant's), or ``None`` (all).
        """
        if s.mmr is not None and self.encoders.dense is None:
            raise ConfigError("search.mmr compares the chunks' dense vectors: it needs a dense encoder")
        attributes = {
            "m3retriever.collection": self.collection,
            "m3retriever.queries": len(queries),
            "m3retriever.top_k": s.top_k,
            "m3retriever.adaptive": bool(s.adaptive),
            **weight_attributes(branch_weights(s)),
        }
        with span("m3retriever.search", attributes):
            return self._search_many(queries, s, flt, idf_corpus)

    def _search_many(
        self, queries: Sequence[str], s: SearchSettings, flt: Filter | None, idf_corpus: Filter | None
    ) -> list[SearchResult]:
        """:meth:`search_many`: encode, query the store, then each query's hits, timed."""
        t0 = time.perf_counter()
        with span("encode"):
            cut = [self.cut_query(check_query(q)) for q in queries]
            qv = self.encoders.encode_query(cut)
        t_enc = time.perf_counter()
        with span("query"):
            per_row = [self._branches(qv, row, s) for row in range(len(queries))]
            own = self._own_lists(per_row, s, flt, idf_corpus) if s.adaptive or s.fusion == "zscore" else {}
            t_own = time.perf_counter()
            for row, lists in own.items() if s.adaptive else ():
                per_row[row] = _adapted(per_row[row], lists)
            requests, layout = self._requests(qv, per_row, s, flt, idf_corpus, known=own)
            results = self.store.query(self.collection, requests) if requests else []
        t_search = time.perf_counter()
        n = max(1, len(queries))
        timings = {"encode": (t_enc - t0) * 1000 / n, "search": (t_search - t_enc) * 1000 / n}
        if own:  # two store calls: each branch's own ranking, then the fused one
            timings |= {"branches": (t_own - t_enc) * 1000 / n, "fuse": (t_search - t_own) * 1000 / n}
        out = []
        for row in range(len(queries)):
            first, names = layout[row]
            if first == NOT_SEARCHED:
                total = timings["encode"] + timings["search"]
                out.append(SearchResult(cut[row], [], timings_ms={**timings, "rerank": 0.0, "total": total}))
                continue
            weights = {b.name: b.weight for b in per_row[row]}
            t_r0 = time.perf_counter()
            with span("rerank", {"m3retriever.query_index": row, **weight_attributes(weights)}):
                if first == FUSED_HERE:
                    result = self._zscore_result(cut[row], qv, row, own[row], weights, s)
                else:
                    result = self._row_result(cut[row], qv, row, results, requests[first], first, names, own, s)
            rerank = (time.perf_counter() - t_r0) * 1000
            total = timings["encode"] + timings["search"] + rerank
            row_timings = {**timings, "rerank": rerank, "total": total}
            out.append(SearchResult(result.query, result.hits, result.no_confident_match, row_timings, weights))
        return out

    def _row_result(
        self,
        query: str,
        qv: Any,
        row: int,
        results: Sequence[list[ScoredRecord]],
        main_request: HybridQuery,
        first: int,
        names: Sequence[str],
        own: Mapping[int, Mapping[str, list[ScoredRecord]]],
        s: SearchSettings,
    ) -> SearchResult:
        """One query's result from the store's answers (its main list at ``first``, then one
        per stage in ``names``)."""
        main = results[first]
        branch_lists = {n: results[first + 1 + i] for i, n in enumerate(names)}
        single = len(main_request.branches) == 1
        rescored = main_request.late_interaction is not None
        if single and not rescored:  # single branch: the main list *is* that branch
            branch_lists = {main_request.branches[0].name: main}
        elif s.stage_scores:
            branch_lists.update(own.get(row, {}))
        return self._finish(query, qv, row, main, branch_lists, s, single=single)

    def _own_lists(
        self, per_row: Sequence[Sequence[Branch]], s: SearchSettings, flt: Filter | None, idf_corpus: Filter | None
    ) -> dict[int, dict[str, list[ScoredRecord]]]:
        """Each branch's own ranking of each query searched by several branches (one store
        call): what :mod:`.adaptive` weighs the branches by, what ``zscore`` fuses, and their
        stage scores."""
        rows = [row for row, branches in enumerate(per_row) if len(branches) > 1]
        vectors: tuple[str, ...] = (DENSE,) if s.fusion == "zscore" and s.mmr is not None else ()
        requests = [
            replace(self._branch_request(b, s, flt, idf_corpus), with_vectors=vectors)
            for row in rows
            for b in per_row[row]
        ]
        results = iter(self.store.query(self.collection, requests) if requests else [])
        return {row: {b.name: next(results) for b in per_row[row]} for row in rows}

    def _branch_request(
        self, b: Branch, s: SearchSettings, flt: Filter | None, idf_corpus: Filter | None
    ) -> HybridQuery:
        """The request for one branch's own ranking."""
        quant: dict[str, Any] = {"rescore": s.rescore, "oversampling": s.oversampling} if self.quantized else {}
        return HybridQuery(
            branches=(b,), limit=b.limit, filter=flt, hnsw_ef=s.hnsw_ef, exact=s.exact, **quant, idf_corpus=idf_corpus
        )

    def _requests(
        self,
        qv: Any,
        per_row: Sequence[Sequence[Branch]],
        s: SearchSettings,
        flt: Filter | None,
        idf_corpus: Filter | None = None,
        known: Mapping[int, Mapping[str, list[ScoredRecord]]] | None = None,
    ) -> tuple[list[HybridQuery], list[tuple[int, list[str]]]]:
        """The store requests of encoded queries, and where each query's results are.

        Returns:
            ``(requests, layout)``: per query, ``(first, names)`` where ``requests[first]`` is
            its main request (fused, or with ``multivector_rescore`` fused then rescored by
            MaxSim; ``first`` is :data:`NOT_SEARCHED` when no branch can search it, and
            :data:`FUSED_HERE` when ``zscore`` fuses the branches' own rankings, in ``known``)
            and the requests for stage scores follow it, one per name in ``names`` (:data:`FUSED`: the fused ranking
            on its own, beside a rescored one; else a branch name, unless ``known`` has that
            query's branch rankings already).
        """
        depth = candidate_depth(s)
        rrf_k = s.rrf_k
        hnsw_ef = s.hnsw_ef
        quant: dict[str, Any] = {"rescore": s.rescore, "oversampling": s.oversampling} if self.quantized else {}
        rescore = _rescore_on(s, qv)
        requests: list[HybridQuery] = []
        layout: list[tuple[int, list[str]]] = []
        for row, branches in enumerate(per_row):
            if not branches:
                layout.append((NOT_SEARCHED, []))
                continue
            if s.fusion == "zscore" and row in (known or {}):
                layout.append((FUSED_HERE, []))  # fused from the branches' own rankings
                continue
            with_vectors: tuple[str, ...] = (DENSE,) if s.mmr is not None else ()  # MMR compares them
            first = len(requests)
            fused = HybridQuery(
                branches=tuple(branches),
                limit=depth + TIE_MARGIN,
                fusion="rrf" if s.fusion == "zscore" else s.fusion,  # zscore: a lone branch, unfused
                rrf_k=rrf_k,
                filter=flt,
                hnsw_ef=hnsw_ef,
                exact=s.exact,
                with_vectors=with_vectors,
                **quant,
                idf_corpus=idf_corpus,
            )
            names = []
            if rescore:
                requests.append(replace(fused, late_interaction=Rescore(qv.multivector[row], rescore_depth(s))))
                if s.stage_scores and len(branches) > 1:
                    requests.append(replace(fused, limit=rescore_depth(s), with_vectors=()))
                    names.append(FUSED)
            else:
                requests.append(fused)
            if s.stage_scores and (len(branches) > 1 or rescore) and row not in (known or {}):
                for b in branches:
                    requests.append(self._branch_request(b, s, flt, idf_corpus))
                    names.append(b.name)
            layout.append((first, names))
        return requests, layout

    def _zscore_result(
        self,
        query: str,
        qv: Any,
        row: int,
        lists: Mapping[str, list[ScoredRecord]],
        weights: Mapping[str, float],
        s: SearchSettings,
    ) -> SearchResult:
        """One query's result fused from its branches' own rankings by standardised scores
        (:func:`.fusion.zscore_fuse`)."""
        lower = (DENSE,) if self.distance in LOWER_IS_BETTER else ()
        records = {r.id: r for lst in lists.values() for r in lst}
        fused = zscore_fuse({n: [(r.id, r.score) for r in lst] for n, lst in lists.items()}, weights, lower)
        main = [replace(records[i], score=score) for i, score in fused[: candidate_depth(s) + TIE_MARGIN]]
        return self._finish(query, qv, row, main, lists if s.stage_scores else {}, s, single=False)

    def _finish(
        self,
        query: str,
        qv: Any,
        row: int,
        fused: list[ScoredRecord],
        branch_lists: Mapping[str, list[ScoredRecord]],
        s: SearchSettings,
        single: bool,
    ) -> SearchResult:
        """One query's result from its candidates (fused, or rescored by MaxSim) and each
        stage's own list."""
        # Keep the engine's order (best first, whatever the distance's direction) and break
        # exact score ties by point id, so rankings are deterministic. The engine was asked for
        # TIE_MARGIN extra candidates, so which of several tied candidates makes the cut is
        # decided here by id, not by the engine's internal order.
        fused = tie_break(fused)[: candidate_depth(s)]
        ranks = {
            name: {r.id: (i + 1, r.score) for i, r in enumerate(tie_break(lst))} for name, lst in branch_lists.items()
        }
        n_query_vectors = len(qv.multivector[row]) if s.multivector_rescore else 0
        matcher = self._matcher(query)
        scores, order = self._score(query, fused, branch_lists, s, single, matcher, n_query_vectors)
        if s.min_score is not None and scores.confidence is not None:
            order = [i for i in order if scores.confidence[i] >= s.min_score]
            if not order:
                return SearchResult(query, [], no_confident_match=True)
        if s.max_per_doc is not None or s.mmr is not None:
            relevance = scores.relevance if scores.relevance is not None else scores.final
            scores.relevance_rank = {i: rank for rank, i in enumerate(order, 1)}
            order, scores.doc_best = diversify_records(order, fused, relevance, s.max_per_doc, s.mmr)
        hits = []
        for final_rank, i in enumerate(order[: s.top_k], 1):
            rec = fused[i]
            stage_scores = hit_stage_scores(ranks, scores, rec.id, i, final_rank, single)
            if scores.doc_best:
                stage_scores = replace(stage_scores, doc_best_rank=scores.doc_best[str(rec.payload.get("doc_id", ""))])
            hits.append(self._hit(rec, stage_scores, matcher))
        return SearchResult(query, hits)

    def _score(
        self,
        query: str,
        fused: list[ScoredRecord],
        branch_lists: Mapping[str, list[ScoredRecord]],
        s: SearchSettings,
        single: bool,
        matcher: Matcher,
        n_query_vectors: int = 0,
    ) -> tuple[Scores, list[int]]:
        """The candidates' scores, and their final order (reranked when configured).

        With ``n_query_vectors`` (multivector rescoring), the candidates' engine scores are
        MaxSim sums over that many query vectors; they are reported divided by it (as
        FlagEmbedding's ``colbert_score``) and are the first-stage relevance. The reranker reads
        each candidate through ``s.rerank_window`` (:mod:`.reading`), finding the query's words
        with ``matcher``.
        """
        engine = np.array([r.score for r in fused], dtype=np.float64)
        multivector: np.ndarray | None = None
        fused_scores: np.ndarray | None = engine
        if n_query_vectors:
            multivector = engine / n_query_vectors
            fused_scores = None
            relevance = multivector
        else:
            # Relevance grows with the score, except for a lone euclid/manhattan dense branch,
            # whose scores are distances.
            lower_is_better = (
                single
                and self.encoders.dense is not None
                and DENSE in branch_lists
                and self.distance in LOWER_IS_BETTER
            )
            relevance = -engine if lower_is_better else engine
        if s.rerank and self.reranker is not None and fused:
            texts = [str(r.payload.get("text", "")) for r in fused]
            logits = read_and_score(self.reranker, query, texts, s.rerank_window, matcher).logits
            probs = sigmoid(logits)
            rerank_rank: dict[int, int] = {}
            for rank, idx in enumerate(sorted(range(len(fused)), key=lambda i: (-logits[i], i))):
                rerank_rank[idx] = rank + 1
            w = s.rerank_weight
            final = probs if w >= 1.0 else w * minmax(logits) + (1.0 - w) * minmax(relevance)
            order = sorted(range(len(fused)), key=lambda i: (-final[i], i))
            confidence = calibrated(logits, s.confidence_slope, s.confidence_bias)
            return (
                Scores(fused_scores, final, multivector, logits, probs, confidence, rerank_rank, relevance=final),
                order,
            )
        first = multivector if multivector is not None else engine
        return Scores(fused_scores, first, multivector, relevance=relevance), list(range(len(fused)))

    def _hit(self, rec: ScoredRecord, scores: StageScores, matcher: Matcher) -> Hit:
        """The hit of a stored record, with the query's words found in its text."""
        p = rec.payload
        text = str(p.get("text", ""))
        matches = matcher.match(text)
        return Hit(
            id=rec.id,
            doc_id=str(p.get("doc_id", "")),
            chunk_index=int(p.get("chunk_index", 0)),
            text=text,
            source=p.get("source"),
            metadata=dict(p.get("metadata") or {}),
            scores=scores,
            matched_terms=tuple(m.term for m in matches),
            matches=matches,
            headings=tuple(str(h) for h in p.get("headings") or ()),
            pages=tuple(int(n) for n in p.get("pages") or ()),
        )

    def _matcher(self, query: str) -> Matcher:
        """Finds the query's words in the hits' texts, with the BM25 encoder's analyzer when
        there is one (:mod:`.matching`)."""
        return Matcher(query, analyzer_of(self.encoders.bm25))


def _adapted(branches: Sequence[Branch], lists: Mapping[str, list[ScoredRecord]]) -> list[Branch]:
    """``branches`` with their weights adapted to the query (:func:`.adaptive.adapted_weights`)."""
    rankings = {b.name: [r.id for r in tie_break(lists[b.name])] for b in branches}
    weights = adapted_weights({b.name: b.weight for b in branches}, rankings)
    return [replace(b, weight=weights[b.name]) for b in branches]
