"""BEIR's protocol in ``eval`` and ``tune``: a retrieved document whose id equals the query id is
dropped before scoring (beir/retrieval/evaluation.py: ``if qid == pid: results[qid].pop(pid)``,
``ignore_identical_ids=True`` by default), unless asked to keep it. A tiny collection holds the
query's own text under the query's id, as ArguAna does; BM25 only, so no model is needed."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ranx")

from m3retriever import Retriever, load_config  # noqa: E402
from m3retriever.evaluation.protocol import apply_protocol, drop_self_matches, self_matched  # noqa: E402
from m3retriever.evaluation.runner import evaluate, ingest_corpus  # noqa: E402
from m3retriever.evaluation.tune import tune  # noqa: E402
from m3retriever.labelled.data import load_beir  # noqa: E402

ARGUMENT = "Nuclear power is the safest source of energy per unit of electricity generated."
CORPUS = {
    "arg1": ARGUMENT,  # the query itself, under the query's id
    "arg2": "Nuclear power plants leave waste that stays dangerous, so nuclear energy is not the safest.",
    "d3": "Wind turbines generate electricity without any fuel.",
    "d4": "The cat sat on the mat.",
}
QUERIES = {"arg1": ARGUMENT, "q2": "wind turbines"}
QRELS = {"arg1": {"arg2": 1}, "q2": {"d3": 1}}
NDCG_RANK2 = 1 / math.log2(3)  # the relevant document second, one relevant document


def test_drop_self_matches_is_beirs_rule() -> None:
    run = {"arg1": {"arg1": 3.0, "arg2": 2.0, "d3": 1.0}, "q2": {"d3": 1.0, "arg1": 0.5}}
    assert drop_self_matches(run) == {"arg1": {"arg2": 2.0, "d3": 1.0}, "q2": {"d3": 1.0, "arg1": 0.5}}
    assert self_matched({"bm25": run}) == ["arg1"]
    kept, line = apply_protocol({"bm25": run}, keep_self_matches=True)
    assert kept == {"bm25": run} and line.startswith("self-matches kept (1 query")
    dropped, line = apply_protocol({"bm25": run}, keep_self_matches=False)
    assert "arg1" not in dropped["bm25"]["arg1"]
    assert line == "self-matches dropped as in BEIR (1 query retrieved a document with its own id)"


def _beir(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    with gzip.open(root / "corpus.jsonl.gz", "wt") as fh:
        fh.writelines(json.dumps({"_id": d, "title": "", "text": t}) + "\n" for d, t in CORPUS.items())
    with gzip.open(root / "queries.jsonl.gz", "wt") as fh:
        fh.writelines(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUERIES.items())
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, r in QRELS.items() for d, s in r.items()]
    for split in ("test", "train"):
        (root / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return root


ENV = {"M3R_DENSE_ENCODER": "none", "M3R_SPARSE_ENCODER": "bm25", "M3R_RERANKER": "none", "M3R_SHOW_PROGRESS": "false"}


@pytest.fixture()
def lexical(tmp_path: Path) -> Any:
    """A retriever with two lexical branches (sparse and bm25, both BM25) holding the corpus."""
    cfg = load_config(env=ENV, location=str(tmp_path / "store"), profile="small")
    with Retriever(cfg) as r:
        ingest_corpus(r, load_beir(_beir(tmp_path / "args")))
        yield r


def test_evaluate_drops_self_matches_by_default(lexical: Any) -> None:
    kept = evaluate(lexical, QUERIES, QRELS, keep_self_matches=True)
    assert list(kept.runs["bm25"]["arg1"])[:2] == ["arg1", "arg2"]  # its own text ranks first
    assert kept.scores["bm25"]["ndcg@10"] == pytest.approx((NDCG_RANK2 + 1.0) / 2)
    assert kept.protocol.startswith("self-matches kept (1 query")
    report = evaluate(lexical, QUERIES, QRELS)
    assert all("arg1" not in run["arg1"] for run in report.runs.values())
    assert list(report.runs["bm25"]["arg1"])[0] == "arg2"
    for stage in ("sparse", "bm25", "fused"):
        assert report.scores[stage]["ndcg@10"] == pytest.approx(1.0)
        assert report.scores[stage]["mrr@10"] == pytest.approx(1.0)
    assert "self-matches dropped as in BEIR (1 query" in report.table().splitlines()[0]
    assert "Self-matches dropped as in BEIR" in report.markdown()
    assert report.as_dict()["protocol"] == report.protocol


def test_tune_drops_self_matches_by_default(lexical: Any) -> None:
    options: dict[str, Any] = {"rrf_ks": [60], "weights": [(0, 1, 1)], "prefetch_limits": [10], "latency_queries": 0}
    kept = tune(lexical, QUERIES, QRELS, keep_self_matches=True, **options)
    dropped = tune(lexical, QUERIES, QRELS, **options)
    assert kept.best["ndcg@10"] == pytest.approx((NDCG_RANK2 + 1.0) / 2)
    assert dropped.best["ndcg@10"] == pytest.approx(1.0)
    assert dropped.verified is not None and dropped.verified["ndcg@10"] == pytest.approx(1.0)
    assert kept.verified is not None and kept.verified["ndcg@10"] == pytest.approx(kept.best["ndcg@10"])
    assert "self-matches dropped as in BEIR" in dropped.table().splitlines()[0]
    assert dropped.as_dict()["protocol"].startswith("self-matches dropped")


def test_cli_switch_and_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from m3retriever.cli import main

    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    data = str(_beir(tmp_path / "args"))
    common = ["--location", str(tmp_path / "store"), "--profile", "small", "--stages", "bm25"]
    assert main(["eval", data, *common]) == 0
    out, err = capsys.readouterr()
    assert "self-matches dropped as in BEIR (1 query" in out
    assert "eval bm25" in err  # a progress bar per stage on stderr (2/2 queries)
    assert main(["eval", data, *common, "--no-ingest", "--keep-self-matches", "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "self-matches kept" in out and "eval bm25" not in err
    tune_args = ["--rrf-k", "60", "--prefetch", "10", "--weights", "0:1:1", "--no-ingest"]
    assert main(["tune", data, *common[:4], *tune_args]) == 0
    out, err = capsys.readouterr()
    assert "self-matches dropped as in BEIR" in out and "tune: bm25 rankings" in err
