"""One bench-like archive shared by the report tests (simulated once per session)."""

from __future__ import annotations

import pytest

from tests.report.archives import Recorded, write_bench_like
from tinysplit.report import Runs, load_runs


@pytest.fixture(scope="session")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """Every bench-like family over BLE and ESP-NOW, with the simulator's records."""
    return write_bench_like(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="session")
def runs(recorded: Recorded) -> Runs:
    """The archive of :func:`recorded`, read for a report."""
    return load_runs([recorded.path])
