"""BEIR's evaluation protocol: a retrieved document whose id equals the query id is not scored.

Several BEIR collections (ArguAna, Quora, CQADupStack...) hold each query's own text in the
corpus under the query's id; any lexical or dense retriever ranks it first. BEIR's
``EvaluateRetrieval.evaluate`` (``ignore_identical_ids=True``, the default, in
``beir/retrieval/evaluation.py``) and MTEB's retrieval evaluation drop such a document from the
ranking before scoring, leaving the rest of the ranking in its order. ``m3retriever eval`` and
``tune`` do the same by default (``keep_self_matches=False``; ``--keep-self-matches`` on the
command line turns it off) and say so in their reports.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from tqdm.auto import tqdm

__all__ = ["drop_self_matches", "self_matched", "describe", "apply_protocol", "progress_bar"]

logger = logging.getLogger(__name__)

Run = dict[str, dict[str, float]]


def drop_self_matches(run: Mapping[str, Mapping[str, float]]) -> Run:
    """The run without any document whose id equals its query's id (BEIR's rule).

    Args:
        run: ``{query_id: {doc_id: score}}``.

    Returns:
        A new run; the remaining documents keep their scores, so their order is unchanged.
    """
    return {q: {d: s for d, s in docs.items() if d != q} for q, docs in run.items()}


def self_matched(runs: Mapping[str, Mapping[str, Mapping[str, float]]]) -> list[str]:
    """The query ids that any of ``runs`` (``{stage: run}``) retrieved as a document."""
    return sorted({q for run in runs.values() for q, docs in run.items() if q in docs})


def describe(keep: bool, matched: int) -> str:
    """One line for a report: what was done with self-matches, and how many queries had one."""
    found = f"{matched} {'query' if matched == 1 else 'queries'} retrieved a document with its own id"
    if keep:
        return f"self-matches kept ({found}; BEIR and MTEB drop them)"
    return f"self-matches dropped as in BEIR ({found})"


def apply_protocol(
    runs: Mapping[str, Mapping[str, Mapping[str, float]]], keep_self_matches: bool
) -> tuple[dict[str, Run], str]:
    """Each stage's run as it is scored, and the report's line about self-matches.

    Args:
        runs: ``{stage: run}``.
        keep_self_matches: Keep them (otherwise they are dropped, as in BEIR).

    Returns:
        ``({stage: run}, description)``.
    """
    matched = self_matched(runs)
    if keep_self_matches:
        return {s: {q: dict(d) for q, d in run.items()} for s, run in runs.items()}, describe(True, len(matched))
    return {s: drop_self_matches(run) for s, run in runs.items()}, describe(False, len(matched))


def progress_bar(total: int, desc: str, enabled: bool, unit: str = "query") -> Any:
    """A progress bar on stderr (count, rate and ETA), or a silent one when not ``enabled``."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=True)
