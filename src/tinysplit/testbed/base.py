"""The testbed contract and the registry of testbeds."""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import StrEnum

from tinysplit.errors import ConfigError
from tinysplit.partition import Plan
from tinysplit.sim.pipeline import PipelineConfig, SimResult


class TestbedKind(StrEnum):
    """Testbed ids."""

    __test__ = False  # not a pytest test class

    SIM = "sim"
    HW = "hw"


class Testbed(ABC):
    """Runs a plan's pipeline and returns its records.

    ``run`` executes ``config.inferences`` inferences of ``plan`` and returns the scribe events,
    link records and energy in the same form whatever the testbed (:class:`SimResult`).
    :attr:`clock` is the device clock the benchmark timer reads: simulated seconds on the
    simulated testbed, the scribe's clock on boards.
    """

    __test__ = False

    kind: TestbedKind

    @abstractmethod
    def run(self, plan: Plan, config: PipelineConfig) -> SimResult:
        """Run the pipeline and return its records."""

    @abstractmethod
    def clock(self) -> float:
        """Current device time in seconds (the benchmark timer)."""

    @abstractmethod
    def advance(self, seconds: float) -> None:
        """Account ``seconds`` of device time measured by a benchmark round."""


def make_testbed(kind: str) -> Testbed:
    """Build a testbed by id.

    Raises:
        ConfigError: unknown id, or ``hw``, which needs boards and is not available yet.
    """
    try:
        which = TestbedKind(kind)
    except ValueError:
        raise ConfigError(f"unknown testbed {kind!r} (valid: sim, hw)") from None
    match which:
        case TestbedKind.SIM:
            from tinysplit.testbed.sim import SimTestbed

            return SimTestbed()
        case TestbedKind.HW:
            raise ConfigError(
                "--testbed hw needs boards and an --inventory; the hardware testbed is not "
                "implemented yet (use the default --testbed sim)"
            )
