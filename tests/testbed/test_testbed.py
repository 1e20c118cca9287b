"""The testbed registry and the simulated testbed's device clock."""

from __future__ import annotations

import pytest

from tests.sim.fixed_link import three_stage_plan
from tinysplit.errors import ConfigError
from tinysplit.sim import PipelineConfig, simulate
from tinysplit.testbed import TestbedKind, make_testbed


def test_sim_testbed_runs_the_simulator_and_keeps_a_device_clock() -> None:
    testbed = make_testbed("sim")
    assert testbed.kind is TestbedKind.SIM
    plan = three_stage_plan((0.1, 0.2, 0.1))
    config = PipelineConfig(transport="espnow", rssi_dbm=(-60.0, -65.0), inferences=2)
    assert testbed.run(plan, config).stage_events == simulate(plan, config).stage_events
    assert testbed.clock() == 0.0
    testbed.advance(1.25)
    testbed.advance(0.5)
    assert testbed.clock() == 1.75
    with pytest.raises(ValueError, match="cannot move the clock back"):
        testbed.advance(-0.1)


@pytest.mark.parametrize(
    ("kind", "message"),
    [("hw", "--testbed hw needs --inventory"), ("qemu", "unknown testbed 'qemu'")],
)
def test_unavailable_testbeds_are_config_errors(kind: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_testbed(kind)
