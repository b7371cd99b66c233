"""Evaluation: ranx metrics against hand-computed values, data loading, per-stage evaluate()
and the ``m3retriever eval`` / ``tune`` commands on a tiny BEIR-layout dataset (tiny random
models: the figures mean nothing, the plumbing is what is tested)."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest

pytest.importorskip("ranx")

from conftest import CORPUS  # noqa: E402
from m3retriever.errors import InputError  # noqa: E402
from m3retriever.labelled import metrics as M  # noqa: E402
from m3retriever.labelled.data import load_beir, load_dataset, load_jsonl_queries  # noqa: E402

# -- metrics: hand-worked values -------------------------------------------------------


def test_ranx_metrics_match_hand_computed_values():
    qrels = {"q1": {"d1": 1, "d3": 1}, "q2": {"d9": 1}, "q3": {"d5": 1}}
    run = {
        # q1: relevant at ranks 1 and 3
        "q1": {"d1": 0.9, "d2": 0.8, "d3": 0.7, "d4": 0.6},
        # q2: relevant at rank 2
        "q2": {"d8": 0.9, "d9": 0.5},
        # q3: the relevant document is not retrieved
        "q3": {"d6": 0.3},
    }
    ndcg_q1 = (1 / math.log2(2) + 1 / math.log2(4)) / (1 / math.log2(2) + 1 / math.log2(3))
    ndcg_q2 = (1 / math.log2(3)) / 1.0
    expected_ndcg = (ndcg_q1 + ndcg_q2 + 0.0) / 3
    expected_mrr = (1.0 + 0.5 + 0.0) / 3
    expected_recall = (1.0 + 1.0 + 0.0) / 3
    got = M.score(qrels, run)
    assert got["ndcg@10"] == pytest.approx(expected_ndcg, abs=1e-9)
    assert got["mrr@10"] == pytest.approx(expected_mrr, abs=1e-9)
    assert got["recall@100"] == pytest.approx(expected_recall, abs=1e-9)
    per = M.per_query(qrels, run, "ndcg@10")
    assert per == pytest.approx({"q1": ndcg_q1, "q2": ndcg_q2, "q3": 0.0})


def test_cutoffs_and_missing_queries():
    qrels = {"q1": {"d11": 1}, "q2": {"d1": 1}}
    # relevant document at rank 11: outside @10, inside @100
    run = {"q1": {f"d{i}": 100.0 - i for i in range(1, 12)}}  # q2 has no hits at all
    got = M.score(qrels, run, ["ndcg@10", "mrr@10", "recall@100", "recall@10"])
    assert got["ndcg@10"] == 0.0 and got["mrr@10"] == 0.0 and got["recall@10"] == 0.0
    assert got["recall@100"] == pytest.approx(0.5)


def test_compare_reports_p_values_against_the_baseline():
    qrels = {f"q{i}": {"good": 1} for i in range(30)}
    good = {q: {"good": 2.0, "bad": 1.0} for q in qrels}
    bad = {q: {"bad": 2.0, "good": 1.0} for q in qrels}
    out = M.compare(qrels, {"base": bad, "better": good}, ["mrr@10"], baseline="base", test="fisher")
    assert out["base"]["mrr@10"]["p_value"] is None
    assert out["better"]["mrr@10"]["score"] == pytest.approx(1.0)
    assert out["base"]["mrr@10"]["score"] == pytest.approx(0.5)
    assert out["better"]["mrr@10"]["p_value"] < 0.05 and out["better"]["mrr@10"]["significant"]
    assert out["better"]["mrr@10"]["win_tie_loss"] == [30, 0, 0]
    with pytest.raises(InputError):
        M.compare(qrels, {"a": good}, baseline="nope")


# -- data ------------------------------------------------------------------------------


def write_beir(root: Path, *, gz: bool) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "qrels").mkdir()
    opener = (lambda p: gzip.open(str(p) + ".gz", "wt", encoding="utf-8")) if gz else (lambda p: open(p, "w", encoding="utf-8"))
    with opener(root / "corpus.jsonl") as fh:
        for doc_id, text, _meta in CORPUS:
            fh.write(json.dumps({"_id": doc_id, "title": doc_id.title(), "text": text}) + "\n")
    queries = {
        "t1": "vector database filters",
        "t2": "capital of France",
        "t3": "rank fusion of lists",
        "t4": "loyal animals in the park",
        "tr1": "stock market interest rates",
        "x": "a query without judgements",
    }
    with opener(root / "queries.jsonl") as fh:
        for qid, text in queries.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
    with opener(root / "qrels" / "test.tsv") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for q, d in (("t1", "qdrant"), ("t2", "paris"), ("t3", "rrf"), ("t4", "dog"), ("t4", "cat")):
            fh.write(f"{q}\t{d}\t1\n")
    with opener(root / "qrels" / "train.tsv") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        fh.write("tr1\tmarket\t1\n")
    return root


@pytest.mark.parametrize("gz", [False, True])
def test_load_beir_splits(tmp_path, gz):
    root = write_beir(tmp_path / "ds", gz=gz)
    test = load_beir(root, "test")
    assert set(test.queries) == {"t1", "t2", "t3", "t4"}
    assert test.qrels["t4"] == {"dog": 1, "cat": 1}
    assert test.corpus_path == root and test.split == "test"
    train = load_dataset(root, split="train")
    assert train.queries == {"tr1": "stock market interest rates"}
    assert len(load_beir(root, "test", max_queries=2)) == 2
    with pytest.raises(InputError, match="available splits"):
        load_beir(root, "dev")


def test_load_jsonl_queries(tmp_path):
    p = tmp_path / "labels.jsonl"
    p.write_text(
        json.dumps({"query": "capital of France", "relevant": ["paris"]})
        + "\n\n"
        + json.dumps({"id": "g", "query": "ir", "relevant": {"rrf": 2, "bm25": 1}})
        + "\n"
    )
    data = load_jsonl_queries(p)
    assert data.queries == {"q1": "capital of France", "g": "ir"}
    assert data.qrels == {"q1": {"paris": 1}, "g": {"rrf": 2, "bm25": 1}}
    assert data.corpus_path is None
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"query": "x", "relevant": "paris"}) + "\n")
    with pytest.raises(InputError, match="bad.jsonl:1"):
        load_jsonl_queries(bad)


# -- evaluate(), tune() and the CLI on the tiny models --------------------------------------


def test_evaluate_every_stage_and_write_outputs(tmp_path, make_retriever):
    from m3retriever.evaluation.runner import evaluate, ingest_corpus

    pytest.importorskip("matplotlib")
    root = write_beir(tmp_path / "ds", gz=True)
    data = load_beir(root, "test")
    r = make_retriever(bm25=True, search={"adaptive": True})
    ingest_corpus(r, data)
    report = evaluate(r, data.queries, data.qrels, baseline="fused", dataset=data.name, test="fisher")
    assert report.stages == ["dense", "sparse", "bm25", "fused", "rerank"]
    assert report.n_queries == 4
    for stage in report.stages:
        for m in ("ndcg@10", "recall@100", "mrr@10"):
            assert 0.0 <= report.scores[stage][m] <= 1.0
        assert set(report.runs[stage]) == set(data.queries)
    # stages that include the dense branch rank the whole 12-document corpus (sparse branches
    # only return documents sharing a term with the query)
    for stage in ("dense", "fused", "rerank"):
        assert report.scores[stage]["recall@100"] == pytest.approx(1.0)
        assert all(len(run) == len(CORPUS) for run in report.runs[stage].values())
    assert report.comparison["fused"]["ndcg@10"]["p_value"] is None
    assert report.comparison["dense"]["ndcg@10"]["p_value"] is not None
    assert report.best_stage in report.stages
    paths = report.write(tmp_path / "out")
    assert [p.name for p in paths] == ["results.json", "results.md", "results.png"]
    saved = json.loads(paths[0].read_text())
    assert saved["scores"]["rerank"]["ndcg@10"] == pytest.approx(report.scores["rerank"]["ndcg@10"])
    assert "| stage | ndcg@10 | recall@100 | mrr@10 |" in paths[1].read_text()
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "fused (baseline)" in report.table()
    # every stage's median latency per query, in the table's ms/query column
    for stage in report.stages:
        ms = report.timings_ms[stage]
        assert {"encode", "search", "rerank", "total"} <= set(ms) and ms["total"] > 0
        row = next(line for line in report.table().splitlines() if line.startswith(stage))
        assert row.split()[-1] == f"{ms['total']:.1f}"
    # the weights each branch had in the fused stages, adapted per query, are reported
    assert set(report.branch_weights) == {"fused", "rerank"} and report.settings["adaptive"] is True
    for w in report.branch_weights["fused"].values():
        assert 0 < w["min"] <= w["mean"] <= w["max"]
    assert "fused branch weights (adapted per query), mean [min, max]: dense" in report.table()
    assert saved["branch_weights"] == report.branch_weights
    # fused and rerank are each tested against the best single branch, computed from the runs
    versus = {v["stage"]: v for v in report.versus}
    best = max(("dense", "sparse", "bm25"), key=lambda b: report.scores[b]["ndcg@10"])
    assert set(versus) == {"fused", "rerank"}
    for stage, v in versus.items():
        assert v["branch"] == best
        assert v["delta"] == pytest.approx(report.scores[stage]["ndcg@10"] - report.scores[best]["ndcg@10"])
        assert 0.0 < v["p_randomisation"] <= 1.0 and sum(v["win_tie_loss"]) == 4
        assert f"{stage} vs best branch {best}" in report.table()
    assert saved["versus_best_branch"] == report.versus
    assert "- rerank vs best branch" in paths[1].read_text()


def test_single_branch_stage_matches_a_plain_single_branch_search(tmp_path, make_retriever):
    from m3retriever.evaluation.runner import hits_to_ranking, stage_runs

    root = write_beir(tmp_path / "ds", gz=False)
    data = load_beir(root, "test")
    r = make_retriever()
    r.ingest_path(root)
    runs, _ = stage_runs(r, data.queries, ["dense", "fused"], depth=5)
    # the same batch as stage_runs, so the tiny random model's near-ties encode identically
    texts = list(data.queries.values())
    plain = r.search_batch(texts, top_k=5, sparse_weight=0.0, rerank=False)
    fused = r.search_batch(texts, top_k=5, rerank=False)
    for i, q in enumerate(data.queries):
        got = sorted(runs["dense"][q], key=lambda d: -runs["dense"][q][d])
        assert got == hits_to_ranking(plain[i].hits)
        assert sorted(runs["fused"][q], key=lambda d: -runs["fused"][q][d]) == hits_to_ranking(fused[i].hits)
    with pytest.raises(InputError, match="not available"):
        stage_runs(r, data.queries, ["bm25"])


def test_local_rrf_in_tune_matches_the_engine(tmp_path, make_retriever):
    """tune() recomputes fusion locally: it must reproduce the engine's fused order."""
    from m3retriever.evaluation.tune import BranchCache

    root = write_beir(tmp_path / "ds", gz=False)
    data = load_beir(root, "test")
    r = make_retriever(bm25=True)
    r.ingest_path(root)
    cache = BranchCache(r, data.queries, depth=12)
    # equal and unequal weights: Qdrant's weighted RRF is 1 / ((rank0 + 1) / w + k - 1)
    settings = [(k, w, a) for k, w in ((60, (1.0, 1.0, 1.0)), (10, (1.0, 1.0, 1.0)), (10, (1.0, 0.5, 2.0)), (60, (2.0, 1.0, 0.5))) for a in (False, True)]
    for k, w, adaptive in settings:
        for q, text in data.queries.items():
            engine = r.search(
                text, top_k=12, prefetch_limit=12, rrf_k=k, rerank=False, adaptive=adaptive,
                dense_weight=w[0], sparse_weight=w[1], bm25_weight=w[2],
            )
            local = cache.fuse(q, k, w, 12, adaptive)
            # adaptive: the weights the engine fused with are the ones the sweep computes
            assert tuple(engine.branch_weights.get(b, 0.0) for b in ("dense", "sparse", "bm25")) == pytest.approx(
                cache.adapted(q, w, 12) if adaptive else w
            )
            by_id = dict(local)
            # same score for every hit, same score sequence (orders may differ only among ties,
            # which the engine sums in float32)
            for h in engine.hits:
                assert h.scores.fused == pytest.approx(by_id[h.id], rel=1e-5)
            assert [h.scores.fused for h in engine.hits] == pytest.approx(
                [s for _, s in local][: len(engine.hits)], rel=1e-5
            )


def test_local_zscore_in_tune_matches_the_search(tmp_path, make_retriever):
    """Under search.fusion = "zscore" tune's sweep fuses the cached branch rankings as the search
    fuses their own lists: same candidates, same fused scores, same order."""
    from m3retriever.evaluation.tune import BranchCache

    root = write_beir(tmp_path / "ds", gz=False)
    data = load_beir(root, "test")
    r = make_retriever(bm25=True, multivector=False)
    r.ingest_path(root)
    cache = BranchCache(r, data.queries, depth=12)
    for w in ((1.0, 1.0, 1.0), (1.0, 0.5, 2.0)):
        for adaptive in (False, True):
            for q, text in data.queries.items():
                res = r.search(
                    text, top_k=12, prefetch_limit=12, rerank=False, fusion="zscore", adaptive=adaptive,
                    dense_weight=w[0], sparse_weight=w[1], bm25_weight=w[2],
                )  # fmt: skip
                local = cache.fuse(q, 10, w, 12, adaptive, "zscore")
                assert [h.id for h in res.hits] == [k for k, _ in local[: len(res.hits)]]
                assert [h.scores.fused for h in res.hits] == pytest.approx([s for _, s in local][: len(res.hits)], rel=1e-4)


def test_tune_sweeps_and_verifies(tmp_path, make_retriever):
    from m3retriever.evaluation.tune import default_weight_grid, tune

    root = write_beir(tmp_path / "ds", gz=False)
    data = load_beir(root, "test")
    r = make_retriever()
    r.ingest_path(root)
    result = tune(
        r, data.queries, data.qrels, rrf_ks=[10, 60], prefetch_limits=[5, 100],
        rerank_depths=[5], rerank_weights=[0.0, 0.5, 1.0], latency_queries=2, rerank_top_settings=3,
    )
    plain = [row for row in result.rows if not row["rerank"]]
    reranked = [row for row in result.rows if row["rerank"]]
    # stage 1: every fusion setting (weight grid over dense + sparse x 2 k x 2 prefetch)
    assert len(plain) == len(default_weight_grid(["dense", "sparse"])) * 2 * 2
    # stage 2: 3 rerank weights on the 3 best fusion settings (+ the configured one if not among them)
    fusion_key = lambda row: (row["rrf_k"], row["dense_weight"], row["sparse_weight"], row["prefetch_limit"])  # noqa: E731
    best3 = [fusion_key(row) for row in sorted(plain, key=lambda row: -row["ndcg@10"])[:3]]
    assert set(best3) <= {fusion_key(row) for row in reranked}
    assert len(reranked) in (9, 12) and all(row["rerank_depth"] == 5 for row in reranked)
    # the configured fusion setting (k 60, weights 1:1, prefetch 100) is reranked too, even
    # when it is not among the best
    assert (60, 1.0, 1.0, 100) in {fusion_key(row) for row in reranked}
    assert result.best["ndcg@10"] == max(row["ndcg@10"] for row in result.rows)
    assert result.verified is not None and "ndcg@10" in result.verified
    assert {row["prefetch_limit"] for row in result.latency_ms} == {5, 100}
    paths = result.write(tmp_path / "tune")
    assert json.loads(paths[0].read_text())["best"] == result.best


def test_cli_eval_and_tune(tmp_path, tiny_settings, capsys):
    from m3retriever.cli import main

    pytest.importorskip("matplotlib")
    root = write_beir(tmp_path / "ds", gz=True)
    cfg = tmp_path / "m3r.toml"
    cfg.write_text(
        "\n".join(f"{k} = {json.dumps(v)}" for k, v in tiny_settings.items() if k != "profile") + "\n"
    )
    store = str(tmp_path / "store")
    out = tmp_path / "out"
    rc = main(["eval", str(root), "--config", str(cfg), "--profile", "bge-m3", "--location", store,
               "--out", str(out), "--max-queries", "3", "--baseline", "dense"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "dense (baseline)" in printed and "rerank" in printed
    assert {p.name for p in out.iterdir()} == {"results.json", "results.md", "results.png"}
    assert json.loads((out / "results.json").read_text())["n_queries"] == 3

    # a labelled JSONL against the already-ingested collection
    labels = tmp_path / "labels.jsonl"
    labels.write_text(json.dumps({"query": "capital of France", "relevant": ["paris"]}) + "\n")
    rc = main(["eval", str(labels), "--config", str(cfg), "--profile", "bge-m3", "--location", store,
               "--stages", "dense,fused", "--json"])
    assert rc == 0
    got = json.loads(capsys.readouterr().out)
    assert got["stages"] == ["dense", "fused"] and got["n_queries"] == 1

    rc = main(["tune", str(root), "--split", "train", "--config", str(cfg), "--profile", "bge-m3",
               "--location", store, "--rrf-k", "60", "--prefetch", "10", "--rerank-depth", "5",
               "--rerank-weight", "0,1", "--out", str(tmp_path / "tune")])
    assert rc == 0
    assert "best ndcg@10" in capsys.readouterr().out

    rc = main(["eval", str(tmp_path / "missing"), "--location", store])
    assert rc == 2


def test_a_configured_min_score_does_not_break_the_stages_without_rerank(tmp_path, make_retriever):
    """min_score cuts at the calibrated rerank score: a call (or an eval stage) without
    reranking does not apply a configured one; one given with the call is still refused."""
    from m3retriever.errors import ConfigError
    from m3retriever.evaluation.runner import evaluate, ingest_corpus

    root = write_beir(tmp_path / "ds", gz=False)
    data = load_beir(root, "test")
    r = make_retriever(search={"min_score": 0.01})
    ingest_corpus(r, data)
    assert r.search("capital of France", rerank=False).hits
    with pytest.raises(ConfigError, match="min_score"):
        r.search("capital of France", rerank=False, min_score=0.5)
    report = evaluate(r, data.queries, data.qrels, stages=["dense", "sparse", "fused", "rerank"])
    assert report.stages == ["dense", "sparse", "fused", "rerank"]
