"""The bar plot of an evaluation report (matplotlib, imported when a plot is drawn)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from m3retriever._deps import require

__all__ = ["plot_report"]


def plot_report(report: Any, path: str | Path) -> Path:
    """Draw a grouped bar plot of the metrics per stage of ``report`` into a PNG, beside the
    reliability diagram of the reranked hits' confidence when the report has one.

    Args:
        report: An :class:`~m3retriever.evaluation.report.EvalReport`.
        path: Where to write the PNG.

    Returns:
        The path written.
    """
    mpl = require("matplotlib", package="matplotlib", extra="eval", purpose="plotting evaluation results")
    mpl.use("Agg")
    plt = require("matplotlib.pyplot", package="matplotlib", extra="eval", purpose="plotting")
    stages, metrics = report.stages, report.metrics
    calibration = getattr(report, "calibration", None)
    width_in = 1.6 + 1.3 * len(stages)
    if calibration:
        fig, (ax, rel) = plt.subplots(1, 2, figsize=(width_in + 3.8, 3.6), dpi=110, width_ratios=[width_in, 3.4])
        _reliability_panel(rel, calibration)
    else:
        fig, ax = plt.subplots(figsize=(width_in, 3.6), dpi=110)
    width = 0.8 / max(1, len(metrics))
    for j, m in enumerate(metrics):
        xs = [i + (j - (len(metrics) - 1) / 2) * width for i in range(len(stages))]
        vals = [report.scores[s][m] for s in stages]
        bars = ax.bar(xs, vals, width, label=m)
        for b, v in zip(bars, vals):
            ax.text(b.get_x() + b.get_width() / 2, v + 0.01, f"{v:.3f}", ha="center", fontsize=6, rotation=90)
    ax.set_xticks(range(len(stages)), stages)
    ax.set_ylim(0, 1.12)
    ax.set_title(f"{report.dataset} ({report.n_queries} queries)")
    ax.legend(fontsize=7, loc="upper left", ncol=len(metrics))
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def _reliability_panel(ax: Any, calibration: dict[str, Any]) -> None:
    """The reliability diagram: each bin's share of relevant hits against its mean confidence
    (the diagonal is perfect calibration), point sizes by hits in the bin."""
    bins = calibration["bins"]
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--")
    xs = [b["mean_confidence"] for b in bins]
    ys = [b["relevant_share"] for b in bins]
    total = max(1, sum(b["count"] for b in bins))
    ax.plot(xs, ys, marker="o", linewidth=1)
    ax.scatter(xs, ys, s=[8 + 200 * b["count"] / total for b in bins], alpha=0.4)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (bin mean)", fontsize=7)
    ax.set_ylabel("share relevant", fontsize=7)
    ax.set_title(f"reliability (ECE {calibration['ece']:.3f}, {calibration['count']} hits)", fontsize=8)
