"""PNG bar chart of a benchmark run: one panel per metric, one bar per server.

Kept apart from bench.py so the chart can be redrawn from a saved result::

    python benchmarks/chart.py benchmarks/results/latest.json out.png
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

COLOURS = {
    "pounce": "#d9822b",
    "pounce-uvloop": "#f2b36b",
    "pounce-fastpath": "#b5532a",
    "uvicorn-h11": "#4a78b5",
    "uvicorn-fast": "#8fb1de",
    "uvicorn-ws": "#6d95c9",
    "granian": "#5a9e6f",
    "hypercorn": "#9b7bb8",
}


def render(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    servers: dict[str, str] = result["servers"]
    medians = result["medians"]
    panels = [
        (name, meta["title"], metric)
        for name, meta in result["scenarios"].items()
        for metric in meta["metrics"]
    ]
    cols = 4
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (scenario, title, metric) in zip(axes.flat, panels, strict=False):
        names = list(servers)
        values = [medians[s][scenario].get(metric["key"], 0.0) for s in names]
        bars = ax.bar(range(len(names)), values, color=[COLOURS.get(s, "#999999") for s in names])
        for bar, value in zip(bars, values, strict=True):
            ax.annotate(_short(value), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([_label(servers[s]) for s in names], fontsize=7)
        better = "higher" if metric["higher_is_better"] else "lower"
        ax.set_title(f"{title}\n{metric['label']} ({metric['unit']}, {better} is better)", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        ax.margins(y=0.15)
    info = result.get("info", {})
    fig.suptitle(
        f"pounce and others — {info.get('date', '')}, {info.get('nproc', '?')} x {info.get('cpu', '?')}, "
        f"Python {info.get('python', '?')}, medians of {result.get('args', {}).get('rounds', '?')} rounds",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _label(name: str) -> str:
    """A server's name over several short lines: six labels side by side
    in a panel overlap on one or two long ones."""
    return name.replace(" ", "\n").replace("+", "+\n")


def _short(value: float) -> str:
    if value >= 10000:
        return f"{value / 1000:.1f}k"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: chart.py RESULT.json OUT.png")
    render(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))
