"""Worker functions for the sweep tests (importable, so worker processes can unpickle them)."""

from __future__ import annotations

from typing import Any

from tinysplit.errors import ConfigError
from tinysplit.sweep.point import PointTask, run_point

#: The seed whose points :func:`fail_seed_1` fails.
FAILING_SEED = 1


def fail_seed_1(task: PointTask) -> dict[str, Any]:
    """Run the point, except that points of seed 1 raise, as a broken configuration would."""
    if task["config"]["seed"] == FAILING_SEED:
        raise ConfigError(f"point {task['name']} cannot run")
    return run_point(task)
