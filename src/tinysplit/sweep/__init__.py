"""Parameter sweeps: a grid of simulated runs, in parallel, resumable, in one archive.

Typical use::

    from tinysplit.sweep import grid_from_options, run_sweep

    spec = grid_from_options({"transport": "ble,wifi", "window": "1,6,16", "seed": "0..4"})
    outcome = run_sweep(spec, "sweeps/windows")
    print(outcome.archive)

``tinysplit sweep`` is the command line; ``docs/sweep.md`` documents the grid, the sweep
directory, resuming and the executors (local processes or a Dask cluster).
"""

from __future__ import annotations

from tinysplit.sweep.executors import (
    DaskExecutor,
    ExecutorKind,
    LocalExecutor,
    PointExecutor,
    make_executor,
)
from tinysplit.sweep.grid import (
    AXES,
    GridSpec,
    SharedOptions,
    SweepPoint,
    grid_from_options,
    load_grid_file,
)
from tinysplit.sweep.run import SweepOutcome, run_sweep

__all__ = [
    "AXES",
    "DaskExecutor",
    "ExecutorKind",
    "GridSpec",
    "LocalExecutor",
    "PointExecutor",
    "SharedOptions",
    "SweepOutcome",
    "SweepPoint",
    "grid_from_options",
    "load_grid_file",
    "make_executor",
    "run_sweep",
]
