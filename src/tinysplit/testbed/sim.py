"""The simulated testbed: :func:`tinysplit.sim.simulate` behind the :class:`Testbed` contract."""

from __future__ import annotations

from tinysplit.partition import Plan
from tinysplit.sim.pipeline import PipelineConfig, SimResult, simulate
from tinysplit.testbed.base import Testbed, TestbedKind


class SimTestbed(Testbed):
    """Calibrated models of the boards and radios; its clock is simulated time.

    The clock only moves when a benchmark round accounts the device time it measured, so
    pytest-benchmark's statistics are device seconds, not the simulator's wall time.
    """

    kind = TestbedKind.SIM

    def __init__(self) -> None:
        self._now = 0.0

    def run(self, plan: Plan, config: PipelineConfig) -> SimResult:
        """Simulate the pipeline (deterministic for a given config and seed)."""
        return simulate(plan, config)

    def clock(self) -> float:
        """Simulated seconds accounted so far."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock by ``seconds`` of simulated device time (>= 0)."""
        if seconds < 0:
            raise ValueError(f"cannot move the clock back by {seconds} s")
        self._now += seconds
