"""Link-model speed: simulated application frames per wall-clock second for one large tensor.

The pipeline simulator calls ``LinkModel.transfer`` once per tensor; the target is >= 250,000
simulated application frames per second on one core for the largest MobileNet intermediate
(401,408 B). Run with ``pytest bench/test_link_speed.py``; ``frames_per_s`` is stored in
``extra_info``. Like every bench, it asserts results, never times. Add a transport or setting by
appending a :class:`Case` to ``CASES``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from tinysplit.links import LinkConditions, Mode, make_link

TENSOR_BYTES = 401_408  # 28 x 28 x 256 int16 values
TARGET_FRAMES_PER_S = 250_000


@dataclass(frozen=True)
class Case:
    """One benchmarked transfer: transport, profile (None: default), protocol settings."""

    transport: str
    mode: Mode
    window: int
    rssi_dbm: float
    profile: str | None = None
    delivered: bool = True

    @property
    def id(self) -> str:
        return f"{self.transport}-{self.profile or 'default'}-{self.mode}-w{self.window}"


CASES = [
    Case("wifi", Mode.RELIABLE, 6, -60.0),
    Case("espnow", Mode.RELIABLE, 6, -60.0),
    # The paper's setting: windowed writes without response, window 6, a typical indoor RSSI.
    Case("ble", Mode.PAPER, 6, -70.0, profile="paper"),
    Case("ble", Mode.RELIABLE, 16, -70.0, profile="bluedroid-1m"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_transfer_frames_per_second(benchmark: BenchmarkFixture, case: Case) -> None:
    """One 401,408 B tensor over the case's link."""
    benchmark.group = "link-transfer"
    link = make_link(case.transport, case.profile)
    conditions = LinkConditions(rssi_dbm=case.rssi_dbm, window=case.window, mode=case.mode)
    rng = np.random.default_rng(0)
    result = benchmark.pedantic(
        link.transfer, args=(TENSOR_BYTES, conditions, rng), rounds=30, warmup_rounds=2
    )
    assert result.delivered == case.delivered
    assert result.app_frames >= TENSOR_BYTES // link.frame_bytes
    benchmark.extra_info["app_frames"] = result.app_frames
    benchmark.extra_info["frames_per_s"] = result.app_frames / benchmark.stats.stats.median
    benchmark.extra_info["target_frames_per_s"] = TARGET_FRAMES_PER_S
