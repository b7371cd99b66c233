"""The bar plot of an evaluation report (matplotlib, imported when a plot is drawn)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from m3retriever._deps import require

__all__ = ["plot_report"]


def plot_report(report: Any, path: str | Path) -> Path:
    """Draw a grouped bar plot of the metrics per stage of ``report`` into a PNG.

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
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(stages), 3.6), dpi=110)
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
