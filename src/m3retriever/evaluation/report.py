"""The report of an evaluation: per-stage metrics with significance, as JSON, text, markdown
and a plot."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m3retriever.evaluation.stats import versus_lines

__all__ = ["EvalReport", "Run"]

Run = dict[str, dict[str, float]]
"""A run: ``{query id: {doc id: score}}``."""


@dataclass
class EvalReport:
    """Per-stage metrics of one dataset, with significance against a baseline stage.

    Attributes:
        dataset: Dataset name.
        n_queries: Queries evaluated.
        stages: Stage names, in order.
        metrics: Metric names.
        scores: ``{stage: {metric: mean}}``.
        comparison: ``{stage: {metric: {"score", "p_value", "significant", "win_tie_loss"}}}``.
        baseline: Stage the others are tested against.
        test: ``"student"`` (paired t-test) or ``"fisher"`` (paired randomisation test).
        timings_ms: ``{stage: {"encode", "search", "rerank", "total"}}`` medians per query
            (queries are searched in batches, so these are per-query shares of a batch).
        settings: The search settings used.
        runs: ``{stage: run}`` (not written to JSON unless asked).
        protocol: What was done with self-matches (:func:`.protocol.describe`).
        versus: Each multi-branch stage against the best single branch on the first metric
            (:meth:`.stats.Versus.as_dict`: delta, paired randomisation and t-test p-values).
        branch_weights: ``{stage: {branch: {"mean", "min", "max"}}}``: the RRF weight each
            branch had in the fusion over the queries (adaptive search weighs them per query).
        calibration: How far the reranked hits' ``confidence`` matches how often they are
            relevant: ``{"ece", "count", "bins": [{"low", "high", "count", "mean_confidence",
            "relevant_share"}]}`` (the reliability diagram; ``None`` without a rerank stage).
    """

    dataset: str
    n_queries: int
    stages: list[str]
    metrics: list[str]
    scores: dict[str, dict[str, float]]
    comparison: dict[str, Any]
    baseline: str
    test: str
    timings_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, Run] = field(default_factory=dict, repr=False)
    protocol: str = ""
    versus: list[dict[str, Any]] = field(default_factory=list)
    branch_weights: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None

    @property
    def best_stage(self) -> str:
        """The stage with the highest first metric (nDCG@10 by default)."""
        m = self.metrics[0]
        return max(self.stages, key=lambda s: self.scores[s][m])

    def as_dict(self, *, with_runs: bool = False) -> dict[str, Any]:
        out = {
            "dataset": self.dataset,
            "n_queries": self.n_queries,
            "stages": self.stages,
            "metrics": self.metrics,
            "scores": self.scores,
            "baseline": self.baseline,
            "test": self.test,
            "comparison": self.comparison,
            "best_stage": self.best_stage,
            "timings_ms": self.timings_ms,
            "settings": self.settings,
            "protocol": self.protocol,
            "versus_best_branch": self.versus,
            "branch_weights": self.branch_weights,
            "calibration": self.calibration,
        }
        if with_runs:
            out["runs"] = self.runs
        return out

    def _cell(self, stage: str, metric: str) -> str:
        c = self.comparison.get(stage, {}).get(metric, {})
        value = f"{self.scores[stage][metric]:.4f}"
        p = c.get("p_value")
        if p is None:
            return value
        mark = ""
        if c.get("significant"):
            mark = "▲" if self.scores[stage][metric] > self.scores[self.baseline][metric] else "▼"
        return f"{value}{mark} (p={p:.3f})"

    def _rows(self) -> list[list[str]]:
        head = ["stage"] + self.metrics + ["ms/query"]
        rows = [head]
        for s in self.stages:
            name = s + (" (baseline)" if s == self.baseline else "") + (" *best*" if s == self.best_stage else "")
            ms = self.timings_ms.get(s, {}).get("total")
            rows.append([name] + [self._cell(s, m) for m in self.metrics] + ["-" if ms is None else f"{ms:.1f}"])
        return rows

    def table(self) -> str:
        """A plain-text table (what the CLI prints)."""
        rows = self._rows()
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        head = f"{self.dataset}: {self.n_queries} queries; p-values: paired {self._test_name()} vs {self.baseline}"
        lines.insert(0, head + (f"; {self.protocol}" if self.protocol else ""))
        return "\n".join(lines + self._versus_lines())

    def _versus_lines(self) -> list[str]:
        return (
            ([""] if self.versus else [])
            + versus_lines(self.versus, self.metrics[0])
            + self._weight_lines()
            + self._calibration_lines()
        )

    def _calibration_lines(self) -> list[str]:
        c = self.calibration
        if not c:
            return []
        bins = "; ".join(
            f"[{b['low']:.1f}, {b['high']:.1f}) {b['count']} hits: confidence {b['mean_confidence']:.2f}, "
            f"relevant {b['relevant_share']:.2f}"
            for b in c["bins"]
        )
        return [
            f"confidence of the reranked hits: expected calibration error {c['ece']:.4f} over {c['count']} hits "
            f"(reliability diagram in results.png); per bin: {bins}"
        ]

    def _weight_lines(self) -> list[str]:
        adaptive = " (adapted per query)" if self.settings.get("adaptive") else ""
        return [
            f"{stage} branch weights{adaptive}, mean [min, max]: "
            + ", ".join(f"{b} {w['mean']:.2f} [{w['min']:.2f}, {w['max']:.2f}]" for b, w in by_branch.items())
            for stage, by_branch in self.branch_weights.items()
        ]

    def _test_name(self) -> str:
        return {"student": "t-test", "fisher": "randomisation test"}.get(self.test, self.test)

    def markdown(self) -> str:
        """A markdown table with significance markers."""
        rows = self._rows()
        out = [
            f"**{self.dataset}** ({self.n_queries} queries). ▲/▼: significantly better/worse than "
            f"`{self.baseline}` (paired {self._test_name()}, p < 0.05). Best stage: `{self.best_stage}`."
            + (f" {self.protocol[0].upper()}{self.protocol[1:]}." if self.protocol else ""),
            "",
            "| " + " | ".join(rows[0]) + " |",
            "|" + "|".join("---" for _ in rows[0]) + "|",
        ]
        out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        return "\n".join(out + [f"- {line}" if line else "" for line in self._versus_lines()]) + "\n"

    def plot(self, path: str | Path) -> Path:
        """A grouped bar plot of the metrics per stage (PNG)."""
        from m3retriever.evaluation.plot import plot_report

        return plot_report(self, path)

    def write(self, out_dir: str | Path, *, with_runs: bool = False) -> list[Path]:
        """Write ``results.json``, ``results.md`` and ``results.png`` into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        j = out / "results.json"
        j.write_text(json.dumps(self.as_dict(with_runs=with_runs), indent=2))
        md = out / "results.md"
        md.write_text(self.markdown())
        png = self.plot(out / "results.png")
        return [j, md, png]
