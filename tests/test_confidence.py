"""A hit's confidence: Platt calibration of the rerank logit, fitted by tune, measured by eval
(expected calibration error and reliability diagram), shown by every output and used by
min_score."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m3retriever.config import SearchConfig
from m3retriever.errors import ConfigError, InputError
from m3retriever.labelled.calibration import fit_platt, reliability
from m3retriever.search.stage_scores import calibrated, sigmoid


@settings(max_examples=25, deadline=None)
@given(slope=st.floats(0.2, 3.0), bias=st.floats(-4.0, 2.0), seed=st.integers(0, 2**16))
def test_fit_recovers_the_calibration_that_made_the_labels(slope: float, bias: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 3.0, 20_000)
    labels = rng.random(logits.size) < sigmoid(slope * logits + bias)
    if labels.all() or not labels.any():
        return
    fitted = fit_platt(logits, labels)
    assert fitted.slope == pytest.approx(slope, abs=0.1 + 0.1 * slope)
    assert fitted.bias == pytest.approx(bias, abs=0.25)
    assert fitted.pairs == logits.size and fitted.positives == int(labels.sum())


def test_a_fitted_calibration_is_calibrated_and_the_raw_sigmoid_is_not() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 4.0, 20_000)
    labels = rng.random(logits.size) < sigmoid(0.5 * logits - 2.0)  # a reranker far too sure
    raw = reliability(sigmoid(logits), labels)
    fitted = fit_platt(logits, labels)
    after = reliability(fitted.apply(logits), labels)
    assert raw.ece > 0.15
    assert after.ece < 0.02
    assert sum(b.count for b in after.bins) == logits.size == after.count
    for b in after.bins:
        assert b.low <= b.mean_confidence <= b.high
        assert abs(b.mean_confidence - b.relevant_share) < 0.08 or b.count < 200


def test_reliability_of_a_known_sample() -> None:
    got = reliability([0.95, 0.95, 0.15, 0.15, 0.15, 0.15], [True, False, False, False, False, True])
    assert [(b.low, b.count) for b in got.bins] == [(0.1, 4), (0.9, 2)]
    assert got.bins[1].relevant_share == 0.5 and got.bins[0].relevant_share == 0.25
    assert got.ece == pytest.approx(4 / 6 * 0.1 + 2 / 6 * 0.45)
    assert reliability([1.0], [True]).bins[0].high == 1.0, "a confidence of 1 is in the last bin"


def test_fit_refuses_labels_that_cannot_support_it() -> None:
    with pytest.raises(InputError, match="relevant and non-relevant"):
        fit_platt([1.0, 2.0, 3.0], [True, True, True])
    with pytest.raises(InputError, match="as many labels"):
        fit_platt([1.0, 2.0], [True])
    with pytest.raises(InputError, match="finite"):
        fit_platt([1.0, float("nan")], [True, False])


def test_a_useless_reranker_gets_the_base_rate() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(0.0, 3.0, 5_000)
    labels = rng.random(logits.size) < 0.2
    conf = fit_platt(logits, labels).apply(logits)
    assert np.all(np.abs(conf - 0.2) < 0.05)


@pytest.mark.parametrize(
    ("field", "value"),
    [("confidence_slope", 0), ("confidence_slope", -1.0), ("confidence_slope", 101), ("confidence_bias", -101),
     ("confidence_bias", "1"), ("confidence_slope", True), ("confidence_bias", float("nan"))],
)  # fmt: skip
def test_calibration_settings_are_checked(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        SearchConfig(**{field: value})  # type: ignore[arg-type]


def test_hits_carry_the_calibrated_confidence_and_min_score_reads_it(make_retriever) -> None:
    from conftest import CORPUS

    r = make_retriever()
    r.ingest([{"doc_id": d, "text": t, "metadata": m} for d, t, m in CORPUS])
    res = r.search("capital of France", confidence_slope=0.5, confidence_bias=-1.0, top_k=3)
    for h in res.hits:
        s = h.scores
        assert s.rerank_logit is not None and s.confidence is not None
        assert h.confidence == pytest.approx(float(calibrated(np.array([s.rerank_logit]), 0.5, -1.0)[0]))
        assert h.as_dict()["confidence"] == h.confidence
        assert h.as_dict()["scores"]["confidence"] == h.confidence
    top = max(h.confidence for h in res.hits)
    assert r.search("capital of France", confidence_slope=0.5, confidence_bias=-1.0, min_score=top).hits
    cut = r.search("capital of France", confidence_slope=0.5, confidence_bias=-100.0, min_score=0.01)
    assert cut.no_confident_match and not cut.hits
    assert all(h.confidence is None for h in r.search("capital of France", rerank=False).hits)


def test_eval_reports_calibration_and_tune_saves_a_fitted_one(tmp_path, make_retriever) -> None:
    from m3retriever.evaluation.runner import evaluate, ingest_corpus
    from m3retriever.evaluation.tune import tune
    from m3retriever.labelled.data import load_beir
    from test_evaluation import write_beir

    pytest.importorskip("ranx")
    data = load_beir(write_beir(tmp_path / "ds", gz=False), "test")
    r = make_retriever()
    ingest_corpus(r, data)
    report = evaluate(r, data.queries, data.qrels, stages=["fused", "rerank"])
    c = report.calibration
    assert c is not None and c["count"] == sum(b["count"] for b in c["bins"]) > 0
    assert 0.0 <= c["ece"] <= 1.0
    assert "expected calibration error" in report.table()
    assert json.loads(json.dumps(report.as_dict()))["calibration"] == c
    assert evaluate(r, data.queries, data.qrels, stages=["fused"]).calibration is None

    result = tune(r, data.queries, data.qrels, rrf_ks=[60], prefetch_limits=[10], rerank_depths=[5],
                  rerank_weights=[0.5], latency_queries=0, verify=False, save=True)  # fmt: skip
    fitted = result.calibration
    assert fitted is not None and fitted["pairs"] > fitted["positives"] > 0
    saved = r.search_defaults
    assert saved["confidence_slope"] == pytest.approx(fitted["slope"])
    assert saved["confidence_bias"] == pytest.approx(fitted["bias"])
    assert "confidence calibration" in result.table()
    hit = r.search("capital of France", top_k=1).hits[0]
    assert hit.confidence == pytest.approx(
        float(calibrated(np.array([hit.scores.rerank_logit]), fitted["slope"], fitted["bias"])[0])
    )
