"""The testbed contract and the registry of testbeds."""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import StrEnum
from pathlib import Path

from tinysplit.errors import BoardError, ConfigError
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
    simulated testbed, the scribe's clock on boards. :meth:`unsupported` says why a configuration
    cannot run here (the caller skips it) before anything starts.
    """

    __test__ = False

    kind: TestbedKind

    @abstractmethod
    def run(self, plan: Plan, config: PipelineConfig) -> SimResult:
        """Run the pipeline and return its records.

        Raises:
            PartialRunError: the run stopped part way (a board failed); it carries the records
                of the inferences completed before.
        """

    @abstractmethod
    def clock(self) -> float:
        """Current device time in seconds (the benchmark timer)."""

    @abstractmethod
    def advance(self, seconds: float) -> None:
        """Account ``seconds`` of device time measured by a benchmark round."""

    def unsupported(self, config: PipelineConfig) -> str | None:
        """Why ``config`` cannot run on this testbed (one line), or None when it can."""
        return None


class PartialRunError(BoardError):
    """A run that stopped part way because a board failed (unplugged, silent, answering errors).

    The message names the board and its port. :attr:`result` holds the records of what ran
    before the failure (every completed inference), so they can be archived.
    """

    def __init__(self, message: str, result: SimResult) -> None:
        super().__init__(message)
        self.result = result


def make_testbed(kind: str, *, inventory: str | Path | None = None) -> Testbed:
    """Build a testbed by id.

    Args:
        kind: ``sim`` or ``hw``.
        inventory: the boards' inventory file (``boards.toml``); ``hw`` needs it, ``sim`` takes
            none.

    Raises:
        ConfigError: unknown id, ``hw`` without an inventory (or ``sim`` with one), or an
            inventory that does not load (its message names the file).
        BoardError: a board of the inventory whose port cannot be found.
    """
    try:
        which = TestbedKind(kind)
    except ValueError:
        raise ConfigError(f"unknown testbed {kind!r} (valid: sim, hw)") from None
    match which:
        case TestbedKind.SIM:
            if inventory is not None:
                raise ConfigError("an inventory only applies to the hardware testbed (hw)")
            from tinysplit.testbed.sim import SimTestbed

            return SimTestbed()
        case TestbedKind.HW:
            if inventory is None:
                raise ConfigError(
                    "--testbed hw needs --inventory boards.toml describing the boards "
                    "(docs/hardware.md)"
                )
            from tinysplit.testbed.hw.inventory import load_inventory
            from tinysplit.testbed.hw.testbed import HardwareTestbed

            return HardwareTestbed(load_inventory(inventory))
