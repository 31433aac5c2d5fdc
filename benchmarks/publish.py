"""The one place benchmark figures are written into the docs.

A published run is the result JSON of ``bench.py`` kept in the repository
(``docs/assets/bench/run.json``) with its chart next to it. From it this
module renders the block between ``<!-- bench:start -->`` and
``<!-- bench:end -->`` in two places: the full table, chart and run details
on the performance page (docs/performance.md), and the short table in the
README. Nothing else in the repository quotes these figures, and nobody
types them: ``bench.py --publish`` (or ``--publish-from RESULT.json`` for a
saved run) calls :func:`publish`, ``make docs`` calls :func:`render_all` to
re-render from the kept run, and a test checks both blocks are what the kept
run says.

    python benchmarks/publish.py                      # re-render from the kept run
    python benchmarks/publish.py --check              # exit 1 if a block is stale
    python benchmarks/publish.py --from RESULT.json   # publish a saved run
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
ASSETS = REPO / "docs" / "assets" / "bench"
RUN_JSON = ASSETS / "run.json"
CHART = ASSETS / "chart.png"
PERFORMANCE_PAGE = REPO / "docs" / "performance.md"
README = REPO / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"

# pounce's ratios are given against these, in this order (those in the run).
BASELINES = ("uvicorn-h11", "uvicorn-fast", "uvicorn-ws", "granian", "hypercorn")
# The README's short table: one row per (scenario, metric) present in the run.
README_ROWS = (
    ("hello64", "rps"), ("hello64", "p99_ms"), ("hello1", "p50_ms"), ("stream1m", "rps"),
    ("post64k", "rps"), ("ws_echo", "msgs"), ("idle10k", "peak_rss_mib"),
)


def fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


def _ratio(result: dict[str, Any], mine: str, base: str, scenario: str, key: str) -> str:
    ours = result["medians"][mine][scenario].get(key)
    theirs = result["medians"][base][scenario].get(key)
    return f"{ours / theirs:.2f}x" if ours and theirs else "n/a"


def _flagged(result: dict[str, Any], server: str, scenario: str) -> bool:
    median = result["medians"][server][scenario]
    return bool(median.get("errors") or median.get("failed_rounds"))


def _metric(metric: dict[str, Any]) -> str:
    """``req/s (higher is better)``, ``p99 in ms (lower is better)``."""
    name = metric["label"] if metric["label"] == metric["unit"] else f"{metric['label']} in {metric['unit']}"
    return f"{name} ({'higher' if metric['higher_is_better'] else 'lower'} is better)"


def full_table(result: dict[str, Any]) -> str:
    """Medians per server, then pounce ÷ uvicorn for every pounce variant
    against every uvicorn mode in the run. ⚠ marks a median with errors or
    failed rounds behind it (see the run's log)."""
    servers: dict[str, str] = result["servers"]
    bases = [b for b in BASELINES if b in servers]
    mine = [s for s in servers if s.startswith("pounce")]
    pairs = [(m, b) for m in mine for b in bases]
    head = ["scenario", "metric", *servers.values()]
    head += [f"{'pounce' if m == 'pounce' else servers[m]} ÷ {servers[b]}" for m, b in pairs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, scenario in result["scenarios"].items():
        for metric in scenario["metrics"]:
            row = [scenario["title"], _metric(metric)]
            for server in servers:
                value = result["medians"][server][name].get(metric["key"])
                row.append(fmt(value) + (" ⚠" if _flagged(result, server, name) else ""))
            row += [_ratio(result, m, b, name, metric["key"]) for m, b in pairs]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def short_table(result: dict[str, Any]) -> str:
    """The README's table: pounce's median and its ratio to each uvicorn mode."""
    servers: dict[str, str] = result["servers"]
    bases = [b for b in BASELINES if b in servers]
    head = ["", "pounce", *(f"÷ {servers[b]}" for b in bases)]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for name, key in README_ROWS:
        scenario = result["scenarios"].get(name)
        if scenario is None or "pounce" not in servers:
            continue
        metric = next((m for m in scenario["metrics"] if m["key"] == key), None)
        if metric is None:
            continue
        value = result["medians"]["pounce"][name].get(key)
        label = f"{scenario['title']} — {_metric(metric)}"
        lines.append("| " + " | ".join([label, fmt(value), *(_ratio(result, "pounce", b, name, key)
                                                             for b in bases)]) + " |")
    return "\n".join(lines)


def machine(result: dict[str, Any]) -> str:
    info = result["info"]
    return f"{info['nproc']} x {info['cpu']}, Linux {info['kernel']}, Python {info['python']}"


def command(result: dict[str, Any]) -> str:
    """The command that repeats the run."""
    args = result["args"]
    return (f"bash benchmarks/run.sh --rounds {args['rounds']} --duration {args['duration']:g} "
            f"--warmup {args['warmup']:g} --servers {args['servers']} --scenarios {args['scenarios']}")


def steal(result: dict[str, Any]) -> str:
    """The hypervisor's steal share over the run's measurements (recorded
    since bench.py measured it; older runs have none)."""
    shares = sorted(r["steal_pct"] for rounds in result["raw"].values() for rnd in rounds
                    for r in rnd.values() if "steal_pct" in r)
    if not shares:
        return ""
    return (f" Hypervisor steal during the measurements: median {statistics.median(shares):.1f} %, "
            f"highest {shares[-1]:.1f} %.")


def performance_block(result: dict[str, Any]) -> str:
    info = result["info"]
    load = ", ".join(f"{x:.2f}" for x in info["loadavg_at_start"])
    versions = ", ".join(f"{k} {v}" for k, v in sorted(info.get("versions", {}).items()))
    return "\n".join([
        f"Run of **{info['date']}** on {machine(result)}; pounce at commit `{info['pounce_commit']}`; "
        f"{info['wrk']}; load average at the start {load}. {result['args']['rounds']} alternating rounds "
        f"of {result['args']['duration']:g} s after {result['args']['warmup']:g} s of warm-up; the "
        "table gives medians." + steal(result),
        "",
        full_table(result),
        "",
        "![Bar chart of the medians above, one panel per metric](assets/bench/chart.png)",
        "",
        f"Versions: {versions}. The raw rounds are in [run.json](assets/bench/run.json). To repeat the run:",
        "",
        "```sh",
        command(result),
        "```",
    ])


def readme_block(result: dict[str, Any]) -> str:
    info = result["info"]
    return "\n".join([
        short_table(result),
        "",
        f"Medians of {result['args']['rounds']} alternating rounds, {info['date']}, {machine(result)}, "
        f"pounce `{info['pounce_commit']}`. Method, the full table and how to reproduce it: "
        "[Performance](docs/performance.md).",
    ])


def replace_block(text: str, block: str, where: str) -> str:
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if pattern.search(text) is None:
        raise ValueError(f"{where}: no {START} ... {END} block")
    return pattern.sub(lambda _: f"{START}\n{block}\n{END}", text, count=1)


def load_run(path: Path = RUN_JSON) -> dict[str, Any]:
    return json.loads(path.read_text())


def expected(result: dict[str, Any] | None = None) -> dict[Path, str]:
    """The README and the performance page as the kept run renders them."""
    result = result if result is not None else load_run()
    return {
        PERFORMANCE_PAGE: replace_block(PERFORMANCE_PAGE.read_text(), performance_block(result), "performance.md"),
        README: replace_block(README.read_text(), readme_block(result), "README.md"),
    }


def stale() -> list[str]:
    return [str(p.relative_to(REPO)) for p, text in expected().items() if p.read_text() != text]


def render_all() -> list[str]:
    """Re-render both blocks from the kept run; returns the files changed."""
    changed = []
    for path, text in expected().items():
        if path.read_text() != text:
            path.write_text(text)
            changed.append(str(path.relative_to(REPO)))
    return changed


def publish(result: dict[str, Any], chart_png: Path | None) -> None:
    """Keep ``result`` as the published run and render it everywhere."""
    ASSETS.mkdir(parents=True, exist_ok=True)
    if chart_png is not None and chart_png.exists():
        shutil.copyfile(chart_png, CHART)
    else:
        try:
            from chart import render  # benchmarks/chart.py, next to this file
        except ImportError as exc:
            raise SystemExit(f"no chart for the run and none can be drawn ({exc}); install matplotlib") from None
        render(result, CHART)
    RUN_JSON.write_text(json.dumps(result, indent=2) + "\n")
    for name in render_all():
        print(f"published to {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if a rendered block is stale")
    parser.add_argument("--from", dest="source", type=Path, metavar="RESULT.json",
                        help="publish this saved run (its .png sibling is the chart, else it is drawn)")
    args = parser.parse_args(argv)
    if args.check:
        names = stale()
        for name in names:
            print(f"stale: {name} (run: python benchmarks/publish.py)", file=sys.stderr)
        return 1 if names else 0
    if args.source:
        publish(json.loads(args.source.read_text()), args.source.with_suffix(".png"))
        return 0
    for name in render_all():
        print(f"rendered {name}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH_DIR))
    sys.exit(main())
