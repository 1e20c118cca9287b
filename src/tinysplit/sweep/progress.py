"""Sweep progress on a terminal (a rich bar with points done / total and ETA) or as log lines."""

from __future__ import annotations

import time
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from tinysplit.sweep.grid import SweepPoint


class BarProgress:
    """A rich progress bar (use as a context manager); failures are printed above it."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._bar = Progress(
            TextColumn("sweep"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("points"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._task = self._bar.add_task("sweep", total=None)

    def __enter__(self) -> BarProgress:
        self._bar.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bar.stop()

    def start(self, total: int, finished: int) -> None:
        """Set the bar to ``finished`` of ``total`` points (the ETA counts only new ones)."""
        self._bar.update(self._task, total=total, completed=finished)
        self._bar.reset(self._task, total=total, completed=finished)

    def advance(self, point: SweepPoint, error: str | None) -> None:
        """One more point finished or failed."""
        if error is not None:
            self._bar.console.print(f"point {point.name} failed: {error}", markup=False)
        self._bar.advance(self._task)


class LineProgress:
    """One line per finished point on ``stream`` (logs, CI, pipes)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._total = 0
        self._done = 0
        self._start = time.perf_counter()

    def start(self, total: int, finished: int) -> None:
        """Print how many points there are and how many are already done."""
        self._total, self._done = total, finished
        self._start = time.perf_counter()
        self._write(
            f"sweep: {total} points, {finished} already finished, {total - finished} to run"
        )

    def advance(self, point: SweepPoint, error: str | None) -> None:
        """Print the point's outcome and the count."""
        self._done += 1
        elapsed = time.perf_counter() - self._start
        what = "done" if error is None else f"FAILED: {error}"
        self._write(f"sweep: [{self._done}/{self._total}] {point.name} {what} ({elapsed:.1f} s)")

    def _write(self, line: str) -> None:
        self._stream.write(line + "\n")
        self._stream.flush()
