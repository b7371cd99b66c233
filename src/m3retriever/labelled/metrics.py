"""Retrieval metrics through ``ranx`` (imported lazily)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from m3retriever._deps import require

__all__ = ["DEFAULT_METRICS", "ranx", "make_qrels", "make_run", "score", "per_query", "compare"]

DEFAULT_METRICS: tuple[str, ...] = ("ndcg@10", "recall@100", "mrr@10")


def ranx() -> Any:
    """The ``ranx`` module, or :class:`~m3retriever.errors.MissingDependencyError`."""
    return require("ranx", package="ranx", extra="eval", purpose="evaluation")


def make_qrels(qrels: Mapping[str, Mapping[str, int]]) -> Any:
    """A ``ranx.Qrels`` from ``{query_id: {doc_id: relevance}}``."""
    return ranx().Qrels({q: {d: int(v) for d, v in docs.items()} for q, docs in qrels.items()})


def make_run(run: Mapping[str, Mapping[str, float]], name: str = "run") -> Any:
    """A ``ranx.Run`` from ``{query_id: {doc_id: score}}`` (higher is better).

    Queries with no hits get an empty ranking (they score 0); ranx needs at least one entry,
    so an impossible document id with score 0 stands in.
    """
    data = {q: ({d: float(s) for d, s in docs.items()} or {"__none__": 0.0}) for q, docs in run.items()}
    return ranx().Run(data, name=name)


def _align(run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    return {q: dict(run.get(q, {})) for q in qrels}


def score(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> dict[str, float]:
    """Mean of each metric over the judged queries."""
    rx = ranx()
    out = rx.evaluate(make_qrels(qrels), make_run(_align(run, qrels)), list(metrics), make_comparable=True)
    if isinstance(out, float):
        out = {metrics[0]: out}
    return {m: float(v) for m, v in out.items()}


def per_query(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    metric: str = "ndcg@10",
) -> dict[str, float]:
    """One metric per query."""
    rx = ranx()
    r = make_run(_align(run, qrels))
    rx.evaluate(make_qrels(qrels), r, metric, make_comparable=True)
    return {qid: float(v) for qid, v in r.scores[metric].items()}


def compare(
    qrels: Mapping[str, Mapping[str, int]],
    runs: Mapping[str, Mapping[str, Mapping[str, float]]],
    metrics: Sequence[str] = DEFAULT_METRICS,
    baseline: str | None = None,
    test: str = "student",
    max_p: float = 0.05,
) -> dict[str, Any]:
    """Paired significance test of every run against ``baseline`` with ``ranx.compare``.

    Args:
        qrels: Judgements.
        runs: ``{stage: run}``.
        metrics: Metrics to test.
        baseline: The stage the others are compared with (default: the first).
        test: ``"student"`` (paired t-test) or ``"fisher"`` (paired randomisation).
        max_p: Significance level.

    Returns:
        ``{stage: {metric: {"score": x, "p_value": p, "significant": bool}}}``; the baseline's
        own entries carry ``p_value`` ``None``.
    """
    rx = ranx()
    names = list(runs)
    if baseline is None:
        baseline = names[0]
    if baseline not in runs:
        from m3retriever.errors import InputError

        raise InputError(f"baseline stage {baseline!r} is not among the stages {names}")
    q = make_qrels(qrels)
    ordered = [baseline] + [n for n in names if n != baseline]
    run_objs = [make_run(_align(runs[n], qrels), name=n) for n in ordered]
    report = rx.compare(
        q,
        runs=run_objs,
        metrics=list(metrics),
        stat_test=test,
        max_p=max_p,
        make_comparable=True,
        rounding_digits=6,
    )
    as_dict = report.to_dict()
    out: dict[str, Any] = {}
    for n in ordered:
        out[n] = {}
        for m in metrics:
            entry: dict[str, Any] = {"score": float(report.results[n][m]), "p_value": None, "significant": False}
            if n != baseline:
                p = float(report.comparisons[(n, baseline)][m]["p_value"])
                entry["p_value"] = p
                entry["significant"] = p < max_p
                wtl = as_dict[n]["win_tie_loss"][baseline][m]
                entry["win_tie_loss"] = [int(wtl["W"]), int(wtl["T"]), int(wtl["L"])]
            out[n][m] = entry
    return out
