"""``tinysplit sweep``: a grid of simulated runs in parallel, resumable, written as one archive.

Exit status: 0 when every point finished, 1 on bad input (values that do not work together, an
unreadable grid or RSSI file, a sweep directory holding other shared options) or when a point
failed (the others are kept), 2 on flags that cannot be parsed, 130 on Ctrl-C (finished points
are kept; the same command resumes).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tinysplit.cli.common import emit_json, positive_int
from tinysplit.errors import TinysplitError

EPILOG = """\
axes (comma lists; integer axes also take inclusive ranges A..B; the grid is their product):
  --transport ble,wifi,espnow   --profile NAME|TRANSPORT:NAME|default   --window 1,6,16
  --strategy paper,greedy,optimal   --placement chain,rssi   --seed 0..4
A --grid TOML file takes the same keys (axes as lists or strings, device_profile with an
underscore); flags override it. Rerunning a command skips the points already in --out; a grid
with more values extends the sweep; other shared options need another --out. See docs/sweep.md.
"""


def _axis(parse: Callable[[str], Any]) -> Callable[[str], str]:
    """An argparse type that checks an axis's syntax and keeps its text."""

    def check(text: str) -> str:
        try:
            parse(text)
        except TinysplitError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    return check


def _devices(text: str) -> int | str:
    """``auto`` (kept as text: None means the option was not given) or a positive integer."""
    return text if text == "auto" else positive_int(text)


def add_parsers(commands: Any) -> None:
    """Register ``sweep`` on the CLI's subcommand parsers."""
    from tinysplit.sweep.grid import (
        PLACEMENTS,
        STRATEGIES,
        TRANSPORTS,
        parse_choices,
        parse_ints,
        split_values,
    )

    sweep = commands.add_parser(
        "sweep",
        help="run a grid of simulations in parallel, resumable, into one archive",
        description="Run every point of a grid (transport x profile x window x strategy x\n"
        "placement x seed) on the simulated testbed in parallel, keep each finished point in\n"
        "--out (rerunning the command skips it), and write one result archive of all points\n"
        "with a summary table.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = sweep.add_argument
    add("--out", type=Path, required=True, metavar="DIR",
        help="sweep directory: finished points, archive (created; reused to resume)")  # fmt: skip
    add("--grid", type=Path, default=None, metavar="FILE", help="TOML grid file")
    axes = sweep.add_argument_group("axes")
    axes.add_argument("--transport", metavar="LIST", help="default ble",
                      type=_axis(lambda t: parse_choices(t, "transport", TRANSPORTS)))  # fmt: skip
    axes.add_argument("--profile", metavar="LIST",
                      help="link profiles (tinysplit links show; default: each transport's)",
                      type=_axis(lambda t: split_values(t, "profile")))  # fmt: skip
    axes.add_argument("--window", metavar="LIST", help="frames per acknowledgment (default 6)",
                      type=_axis(lambda t: parse_ints(t, "window", minimum=1)))  # fmt: skip
    axes.add_argument("--strategy", metavar="LIST", help="partitioning (default paper)",
                      type=_axis(lambda t: parse_choices(t, "strategy", STRATEGIES)))  # fmt: skip
    axes.add_argument("--placement", metavar="LIST",
                      help="chain: stage k on board k (default); rssi: placed by signal strength "
                      "(needs --rssi)",
                      type=_axis(lambda t: parse_choices(t, "placement", PLACEMENTS)))  # fmt: skip
    axes.add_argument("--seed", metavar="LIST", help="seeds, e.g. 0..4 (default 0)",
                      type=_axis(lambda t: parse_ints(t, "seed", minimum=0)))  # fmt: skip
    shared = sweep.add_argument_group("shared options")
    shared.add_argument("--model", help="built-in model or .onnx (default paper)")
    shared.add_argument("--devices", type=_devices, metavar="N|auto", help="boards (default 5)")
    shared.add_argument(
        "--device-profile", metavar="NAME", help="device profile for partitioning (default paper)"
    )
    shared.add_argument(
        "--positions",
        metavar="LAYOUT",
        help="layout name or file (default: paper for 5 boards, else desk)",
    )
    shared.add_argument(
        "--rssi", metavar="FILE", help="pairwise RSSI matrix (tinysplit survey --json, TOML/JSON)"
    )
    shared.add_argument(
        "--inferences", type=positive_int, metavar="N", help="inputs per point (default 10)"
    )
    shared.add_argument("--mode", choices=("paper", "reliable"), help="default reliable")
    run = sweep.add_argument_group("execution")
    run.add_argument(
        "--jobs", type=positive_int, metavar="N", help="parallel workers (default: every core)"
    )
    run.add_argument(
        "--executor",
        choices=("local", "dask"),
        default="local",
        help="local processes (default) or a Dask cluster (tinysplit[dask])",
    )
    run.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="Dask scheduler address (default: a local cluster of --jobs workers)",
    )
    run.add_argument(
        "--results-dir", type=Path, metavar="DIR", help="where the archive goes (default --out)"
    )
    run.add_argument(
        "--dry-run", action="store_true", help="list the points and which are finished, run nothing"
    )
    run.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sweep.set_defaults(handler=cmd_sweep)


def cmd_sweep(args: argparse.Namespace, console: Console) -> int:
    """Run the sweep and print one row per point (see the module docstring for the exit status)."""
    from tinysplit.sweep import grid_from_options, load_grid_file, make_executor, run_sweep
    from tinysplit.sweep.grid import AXES, SHARED

    options: dict[str, Any] = load_grid_file(args.grid) if args.grid is not None else {}
    for name in (*AXES, *SHARED):
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    spec = grid_from_options(options)
    if args.dry_run:
        return _dry_run(spec, args, console)
    executor = make_executor(args.executor, jobs=args.jobs, scheduler=args.scheduler)
    with _progress() as progress:
        outcome = run_sweep(
            spec, args.out, executor=executor, results_dir=args.results_dir, progress=progress
        )
    if args.json:
        emit_json(_json(outcome, executor.workers))
    else:
        _table(outcome, console)
        rate = len(outcome.ran) / outcome.elapsed_s if outcome.elapsed_s > 0 else 0.0
        console.print(
            f"{len(outcome.points)} points: {len(outcome.ran)} run now ({rate:.2f} points/s on "
            f"{executor.workers} workers), {len(outcome.skipped)} already finished, "
            f"{len(outcome.failed)} failed"
        )
        if outcome.archive is not None:
            console.print(f"archive: {outcome.archive}", markup=False)
    if outcome.interrupted:
        sys.stderr.write(
            f"tinysplit: interrupted: {len(outcome.ran) + len(outcome.skipped)} finished points "
            f"kept in {args.out}; rerun the same command to resume\n"
        )
        return 130
    if outcome.failed:
        name, reason = next(iter(outcome.failed.items()))
        sys.stderr.write(
            f"tinysplit: error: {len(outcome.failed)} of {len(outcome.points)} points failed "
            f"(first: {name}: {reason}); rerun to retry them\n"
        )
        return 1
    return 0


@contextlib.contextmanager
def _progress() -> Any:
    """A progress bar on an interactive stderr, else one line per point there."""
    from tinysplit.sweep.progress import BarProgress, LineProgress

    if sys.stderr.isatty():
        with BarProgress(Console(stderr=True)) as bar:
            yield bar
    else:
        yield LineProgress(sys.stderr)


def _dry_run(spec: Any, args: argparse.Namespace, console: Console) -> int:
    from tinysplit.sweep.state import POINTS_DIR

    points = spec.points()
    done = {p.name for p in points if (Path(args.out) / POINTS_DIR / f"{p.name}.json").is_file()}
    if args.json:
        emit_json([p.to_dict() | {"point": p.name, "finished": p.name in done} for p in points])
        return 0
    for p in points:
        console.print(f"{p.name}{'  (finished)' if p.name in done else ''}", markup=False)
    console.print(f"{len(points)} points, {len(done)} finished")
    return 0


def _table(outcome: Any, console: Console) -> None:
    from tinysplit.sweep.grid import AXES

    grid = Table(title="sweep: one row per point")
    for column in (*AXES, "status", "inf/s", "latency p50 s", "J/inference", "failures"):
        grid.add_column(column, justify="right" if column in ("window", "seed") else "left")
    for row in outcome.rows:
        cells = [str(row[a]) for a in AXES] + [row["status"]]
        if row["status"] == "done":
            cells += [_num(row["throughput_per_s"]), _num(row["latency_p50_s"]),
                      _num(row["energy_per_inference_j"]), str(row["failed"])]  # fmt: skip
        else:
            cells += ["-", "-", "-", "-"]
        grid.add_row(*cells)
    console.print(grid)


def _num(value: float) -> str:
    return "-" if value != value else f"{value:.4g}"  # NaN prints as "-"


def _json(outcome: Any, workers: int) -> dict[str, Any]:
    from tinysplit.sweep.run import finite_or_none

    return {
        "archive": None if outcome.archive is None else str(outcome.archive),
        "points": [{k: finite_or_none(v) for k, v in row.items()} for row in outcome.rows],
        "ran": outcome.ran,
        "skipped": outcome.skipped,
        "failed": outcome.failed,
        "interrupted": outcome.interrupted,
        "elapsed_s": outcome.elapsed_s,
        "workers": workers,
    }
