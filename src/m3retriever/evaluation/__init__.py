"""Evaluation: per-stage retrieval quality (nDCG@10, Recall@100, MRR@10) on BEIR datasets or
your own labelled queries, significance tests between stages, and tuning sweeps.

Heavy dependencies (``ranx``, ``matplotlib``) are imported only when used; install them with
``pip install 'm3retriever[eval]'``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "EvalData",
    "load_dataset",
    "load_beir",
    "load_jsonl_queries",
    "evaluate",
    "EvalReport",
    "tune",
    "STAGES",
]


def __getattr__(name: str) -> Any:  # lazy re-exports keep ``import m3retriever`` fast
    if name in ("EvalData", "load_dataset", "load_beir", "load_jsonl_queries"):
        from m3retriever.labelled import data

        return getattr(data, name)
    if name in ("evaluate", "EvalReport", "STAGES"):
        from m3retriever.evaluation import runner

        return getattr(runner, name)
    if name == "tune":
        from m3retriever.evaluation import tune

        return tune.tune
    raise AttributeError(name)
