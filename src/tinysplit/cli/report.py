"""Result commands: ``report`` (figures and pages from archives) and ``compare`` (two archives).

``compare`` exits 1 when a metric got worse than its ``--fail-on`` threshold, so a bad input
must not look like a regression: its errors exit 2 (as usage errors do), not 1.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tinysplit.cli.common import emit_json
from tinysplit.errors import ConfigError, TinysplitError

#: Exit status of ``compare``: no regression, a regression, bad input.
EXIT_OK, EXIT_REGRESSION, EXIT_BAD_INPUT = 0, 1, 2


def add_parsers(commands: Any) -> None:
    """Register ``report`` and ``compare`` on the CLI's subcommand parsers."""
    from tinysplit.results.compare import METRICS

    report = commands.add_parser(
        "report",
        help="figures (PNG, SVG), report.md and a self-contained report.html from archives",
        description="Draw the paper's figures, the transport and partition comparisons from one "
        "or more result archives, without rerunning anything. Figures whose data an archive "
        "lacks are skipped with the reason; the others are still written.",
    )
    report.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="archive directory")
    report.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="report directory (default RUN_DIR/report for one archive; needed for several); "
        "a previous report there is replaced",
    )
    report.add_argument("--json", action="store_true", help="print JSON instead of a table")
    report.set_defaults(handler=cmd_report)

    metrics = ", ".join(METRICS)
    compare = commands.add_parser(
        "compare",
        help="per-metric differences between two archives; exit 1 on regressions",
        description="Compare archive B against baseline A case by case: A, B, B - A and the "
        f"change in percent of A for each metric ({metrics}). Exit status: 0 no regression, "
        "1 a metric worse than its --fail-on threshold, 2 bad input.",
    )
    compare.add_argument("a", type=Path, metavar="A", help="baseline archive")
    compare.add_argument("b", type=Path, metavar="B", help="archive checked against A")
    compare.add_argument(
        "--fail-on",
        type=_threshold,
        action="append",
        default=[],
        metavar="METRIC:PCT",
        help="exit 1 when METRIC gets worse by more than PCT percent in any case (repeatable; "
        "higher latency, energy, failure rate or net/compute is worse, lower throughput is "
        f"worse); metrics: {metrics}",
    )
    compare.add_argument(
        "--all", action="store_true", help="list unchanged metrics too (the table hides them)"
    )
    compare.add_argument("--json", action="store_true", help="print JSON (every row) instead")
    compare.set_defaults(handler=cmd_compare)


def _threshold(text: str) -> Any:
    from tinysplit.results.compare import Threshold

    try:
        return Threshold.parse(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# --------------------------------------------------------------------------------------- report


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    """Write the report of the archives and list its sections (skipped ones with the reason)."""
    from tinysplit.report import write_report

    report = write_report(args.runs, args.out)
    if args.json:
        emit_json(report.to_dict())
        return 0
    grid = Table(title=f"report of {len(args.runs)} archive(s) in {report.out}")
    grid.add_column("section")
    grid.add_column("result")
    for section in report.sections:
        if section.skipped is not None:
            result = f"[yellow]skipped[/]: {_plain(section.skipped)}"
        elif section.png is not None:
            result = f"{section.png} (+ .svg)"
        else:
            result = "table"
        grid.add_row(_plain(section.title), result)
    console.print(grid)
    for section in report.sections:
        for note in section.notes:
            console.print(f"note ({_plain(section.id)}): {_plain(note)}")
    console.print(f"wrote {report.markdown} and {report.html}")
    return 0


def _plain(text: str) -> str:
    """Text from an archive shown literally (no rich markup)."""
    from rich.markup import escape

    return escape(text)


# -------------------------------------------------------------------------------------- compare


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    """Compare two archives; exit 1 on a regression beyond a threshold, 2 on bad input."""
    from tinysplit.results import load
    from tinysplit.results.compare import compare

    try:
        result = compare(load(args.a), load(args.b), args.fail_on,
                         labels=(str(args.a), str(args.b)))  # fmt: skip
    except TinysplitError as exc:
        if args.debug:
            raise
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        sys.stderr.write(f"tinysplit: error: {reason}\n")
        return EXIT_BAD_INPUT
    status = EXIT_REGRESSION if result.regressions else EXIT_OK
    if args.json:
        emit_json(result.to_dict())
        return status
    grid = Table(title=f"A = {result.a}\nB = {result.b}")
    for column in ("case", "metric", "A", "B", "B - A", "change", "check"):
        grid.add_column(
            column, justify="left" if column in ("case", "metric", "check") else "right"
        )
    hidden = 0
    for row in result.rows.to_dict(orient="records"):
        if not args.all and row["delta"] == 0 and not row["regression"]:
            hidden += 1
            continue
        grid.add_row(
            _plain(str(row["case"])),
            str(row["metric"]),
            _num(row["a"]),
            _num(row["b"]),
            _num(row["delta"]),
            _pct(row["delta_pct"]),
            _check(row),
        )
    if grid.row_count:
        console.print(grid)
    if hidden:
        console.print(f"{hidden} unchanged (case, metric) rows not shown (--all lists them)")
    for side, cases in (("A", result.only_a), ("B", result.only_b)):
        if cases:
            console.print(f"only in {side} (not compared): {_plain(', '.join(cases))}")
    if not result.thresholds:
        console.print("no threshold given (--fail-on METRIC:PCT): nothing can fail")
    elif result.regressions:
        console.print(f"[red]{result.regressions} regression(s) beyond the thresholds[/]")
    else:
        limits = ", ".join(f"{t.metric} {t.pct:g}%" for t in result.thresholds)
        console.print(f"no regression beyond the thresholds ({limits})")
    return status


def _num(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4g}"


def _pct(value: float) -> str:
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "+inf %" if value > 0 else "-inf %"
    return f"{value:+.1f} %"


def _check(row: dict[Any, Any]) -> str:
    limit = float(row["threshold_pct"])
    if math.isnan(limit):
        return ""
    if row["regression"]:
        return f"[red]REGRESSION[/] (worse > {limit:g} %)"
    return f"ok (<= {limit:g} % worse)"
