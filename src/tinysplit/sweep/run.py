"""Run a sweep: skip finished points, run the others on an executor, write one archive.

Every point's record is saved as soon as it arrives, so an interrupted or failing sweep keeps
what finished and the same command resumes it. At the end, one result archive holds every
finished point of the grid, in grid order, as case ``sweep[<point>]`` whose ``params`` are the
point's axis values (``extra_params_*`` summary columns); it is marked incomplete when a point
failed or did not run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tinysplit.sweep.executors import LocalExecutor, PointExecutor
from tinysplit.sweep.grid import GridSpec, SweepPoint
from tinysplit.sweep.point import PointTask, TaskBuilder, run_point
from tinysplit.sweep.state import SweepState

#: Summary figures of each point (``summarize`` keys, latency flattened).
METRICS = ("throughput_per_s", "latency_p50_s", "energy_per_inference_j", "failed")


class Progress(Protocol):
    """Receives the sweep's progress (the CLI draws a bar or prints lines)."""

    def start(self, total: int, finished: int) -> None:
        """``total`` points in the grid, ``finished`` of them already done before this run."""

    def advance(self, point: SweepPoint, error: str | None) -> None:
        """One point finished (``error`` None) or failed (its one-line reason)."""


@dataclass(slots=True, kw_only=True)
class SweepOutcome:
    """What a sweep did.

    Attributes:
        points: every point of the grid, in grid order.
        ran: points run (and finished) by this call.
        skipped: points finished by an earlier call.
        failed: point name -> one-line reason, for points that raised.
        interrupted: Ctrl-C stopped the sweep (the points not run are absent from the archive).
        archive: the result archive (None when no point has finished).
        rows: one summary row per point (see :func:`summary_row`).
        elapsed_s: wall time of the points run by this call, seconds.
    """

    points: tuple[SweepPoint, ...]
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False
    archive: Path | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def complete(self) -> bool:
        """Every point of the grid has finished."""
        return len(self.ran) + len(self.skipped) == len(self.points)


def run_sweep(
    spec: GridSpec,
    out: str | Path,
    *,
    executor: PointExecutor | None = None,
    results_dir: str | Path | None = None,
    progress: Progress | None = None,
    runner: Callable[[PointTask], dict[str, Any]] = run_point,
) -> SweepOutcome:
    """Run the grid's unfinished points and write one archive of all finished ones.

    Args:
        spec: the grid.
        out: the sweep directory (``sweep.state``): records of finished points, resumable.
        executor: where points run (default: local processes, one per core).
        results_dir: where the archive goes (default ``out``).
        progress: progress receiver.
        runner: the worker function (picklable for process and Dask executors).

    Returns:
        What ran, what was skipped, what failed, the archive and a summary row per point.

    Raises:
        TinysplitError: bad options, plan, layout, placement or sweep directory, before any
            point runs; or the archive cannot be written.
    """
    points = spec.points()
    state = SweepState(out, spec)
    outcome = SweepOutcome(points=points)
    by_name = {p.name: p for p in points}
    pending = [p for p in points if not state.finished(p)]
    outcome.skipped = [p.name for p in points if state.finished(p)]
    builder = TaskBuilder(spec)
    tasks = {p.name: builder.task(p) for p in pending}
    if progress is not None:
        progress.start(len(points), len(outcome.skipped))
    start = time.perf_counter()
    try:
        for name, value in (executor or LocalExecutor()).run(runner, tasks):
            point = by_name[name]
            if isinstance(value, BaseException):
                outcome.failed[name] = _one_line(value)
            else:
                state.save(point, value)
                outcome.ran.append(name)
            if progress is not None:
                progress.advance(point, outcome.failed.get(name))
    except KeyboardInterrupt:
        outcome.interrupted = True
    outcome.elapsed_s = time.perf_counter() - start
    _archive(spec, state, outcome, Path(results_dir) if results_dir is not None else state.root)
    return outcome


def _archive(spec: GridSpec, state: SweepState, outcome: SweepOutcome, results_dir: Path) -> None:
    """Write the archive of every finished point and fill the summary rows."""
    from tinysplit.results import ArchiveWriter
    from tinysplit.sim.metrics import summarize

    finished = set(outcome.ran) | set(outcome.skipped)
    writer = None
    try:
        for point in outcome.points:
            row: dict[str, Any] = {"point": point.name, **point.to_dict()}
            if point.name not in finished:
                error = outcome.failed.get(point.name)
                status = "failed" if error else "not run"
                outcome.rows.append(row | {"status": status, "error": error})
                continue
            result = state.load(point)
            if writer is None:
                writer = ArchiveWriter(
                    results_dir,
                    testbed="sim",
                    transport=spec.transports[0] if len(spec.transports) == 1 else "all",
                    manifest={"sweep": spec.to_dict(), "points": len(outcome.points)},
                )
            boards = result.config.placement
            extra: dict[str, Any] = {"params": point.to_dict()}
            if boards is not None:
                extra["boards"] = [list(b) for b in boards]
            writer.add(f"sweep[{point.name}]", result, extra=extra)
            s = summarize(result)
            metrics = {
                "completed": s["completed"],
                "inferences": s["inferences"],
                "throughput_per_s": s["throughput_per_s"],
                "latency_p50_s": s["latency_s"]["p50"],
                "energy_per_inference_j": s["energy_per_inference_j"],
                "failed": s["failed"],
            }
            outcome.rows.append(row | {"status": "done", "error": None} | metrics)
    except BaseException:
        if writer is not None:  # keep what was archived so far, marked incomplete
            outcome.archive = writer.close(complete=False)
        raise
    if writer is not None:
        outcome.archive = writer.close(complete=outcome.complete)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def finite_or_none(value: Any) -> Any:
    """NaN and infinities as None (strict JSON)."""
    return None if isinstance(value, float) and not math.isfinite(value) else value
