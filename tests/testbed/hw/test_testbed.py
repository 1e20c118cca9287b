"""The hardware testbed on emulated boards: the simulator's records, checked outputs, failures.

Emulated boards (``tinysplit.testbed.hw.emulator``) replay the simulator, so a run on them must
give the simulated testbed's records to the nanosecond, and the boards' outputs are the real
int16 outputs of the injected inputs. Failures are provoked at the lowest boundary: the
emulator process killed (every port gone, as unplugged USB) and fake boards on ptys that stop
answering.
"""

from __future__ import annotations

import base64
import dataclasses
import math
import os
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.testbed.hw.conftest import FakeBoard
from tinysplit.errors import ConfigError
from tinysplit.links import Mode
from tinysplit.model import load_model
from tinysplit.partition import Plan, plan_from_cuts
from tinysplit.sim import PipelineConfig, SimResult, simulate
from tinysplit.testbed import PartialRunError, make_testbed
from tinysplit.testbed.hw import emulator as emulator_package
from tinysplit.testbed.hw import session as session_module
from tinysplit.testbed.hw import testbed as testbed_module
from tinysplit.testbed.hw.inventory import Inventory, load_inventory
from tinysplit.testbed.hw.records import collect_marks, pair_marks
from tinysplit.testbed.hw.reference import reference_for
from tinysplit.testbed.hw.testbed import HardwareResult, HardwareTestbed, emulator_config

SMALL = "mobilenet_v1:alpha=0.25,input_size=32"
#: A model whose first tensor (32 KB) overflows BLE's host buffers in paper mode at window 7.
LOSSY = "mobilenet_v1:alpha=0.25,input_size=64"


def write_inventory(
    path: Path,
    *,
    boards: int = 3,
    spacing_m: float | None = None,
    meter: str = "scribe-ina",
    emulated: bool = True,
    ports: list[str] | None = None,
    scribe_port: str | None = None,
) -> Inventory:
    """An inventory of ``boards`` boards in a line, with a scribe (emulated unless ports given)."""
    lines = ['transport = "ble"']
    for k in range(1, boards + 1):
        lines += ["[[board]]", f'name = "b{k}"', f"stage = {k}"]
        if spacing_m is not None:
            lines.append(f"position_m = [{(k - 1) * spacing_m}, 0.0]")
        if ports:
            lines.append(f'port = "{ports[k - 1]}"')
    lines += ["[scribe]", "pulse_unit_us = 10"]
    if scribe_port:
        lines.append(f'port = "{scribe_port}"')
    lines += ["[power]", f'meter = "{meter}"']
    if emulated:
        lines += ["[emulator]", "time_scale = 0.0", "seed = 0"]
    path.write_text("\n".join(lines) + "\n")
    return load_inventory(path)


@pytest.fixture(scope="module")
def small_plan() -> Plan:
    return plan_from_cuts(load_model(SMALL), [20, 40])


@pytest.fixture
def inventory(tmp_path: Path) -> Inventory:
    return write_inventory(tmp_path / "boards.toml")


def assert_same_stage_events(
    board: SimResult, sim: SimResult, *, skip_failed_tx: bool = False
) -> None:
    """Every scribe time equal to the simulator's to 1 ns (NaN where it has none)."""
    failed = set(sim.failed) if skip_failed_tx else set()
    assert len(board.stage_events) == len(sim.stage_events)
    for got, want in zip(board.stage_events, sim.stage_events, strict=True):
        assert (got.inference, got.stage) == (want.inference, want.stage)
        for name in got.__dataclass_fields__:
            if name in ("inference", "stage"):
                continue
            if name == "send_end_s" and got.inference in failed:
                continue  # the firmware marks no tx_end for a tensor it gave up on
            a, b = getattr(got, name), getattr(want, name)
            assert (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-9, (name, got, want)


def test_records_equal_the_simulated_testbed_and_outputs_the_reference(
    inventory: Inventory, small_plan: Plan
) -> None:
    testbed = make_testbed("hw", inventory=inventory.path)
    assert isinstance(testbed, HardwareTestbed)
    config = PipelineConfig(transport="ble", inferences=4, seed=3)
    result = testbed.run(small_plan, config)
    sim = make_testbed("sim").run(small_plan, emulator_config(inventory, config))

    assert isinstance(result, HardwareResult)
    assert result.config == config
    assert_same_stage_events(result, sim)
    assert result.injected_s == pytest.approx(sim.injected_s, abs=1e-9)
    assert result.duration_s == pytest.approx(sim.duration_s, abs=1e-9)
    assert result.completed == sim.completed == [0, 1, 2, 3]
    assert result.rssi_dbm == [round(r) for r in sim.rssi_dbm]  # boards report whole dBm
    key = [(e.inference, e.stage) for e in result.link_events]
    assert sorted(key) == sorted((e.inference, e.stage) for e in sim.link_events)
    want = {(e.inference, e.stage): e for e in sim.link_events}
    for event in result.link_events:
        assert event.bytes == want[event.inference, event.stage].bytes
        assert event.result.delivered
        assert event.result.duration_s == pytest.approx(
            want[event.inference, event.stage].result.duration_s, abs=1e-9
        )
    for stage in (1, 2):  # counters are shared out per transfer, their sums are exact
        frames = [e.result.app_frames for e in result.link_events if e.stage == stage]
        assert sum(frames) == sum(e.result.app_frames for e in sim.link_events if e.stage == stage)
    assert result.checks["outputs"] == {
        "exact": 4, "within_1_lsb": 0, "mismatched": 0, "unverified": 0, "tolerance_lsb": 1
    }  # fmt: skip
    assert result.checks["bad_values"] == [0, 0, 0, 0]
    assert [link["tensor_crc_errors"] for link in result.checks["links"]] == [0, 0]
    for got, want_j in zip(result.energy_j, sim.energy_j, strict=True):
        # 10 ms INA samples blur each change of current a little.
        assert sum(got.values()) == pytest.approx(sum(want_j.values()), rel=0.02)
        assert got["inference"] > 0 and got["idle"] > 0


def test_paper_mode_losses_fail_their_inference_and_the_run_goes_on(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path / "boards.toml", spacing_m=20.0, meter="none")
    plan = plan_from_cuts(load_model(LOSSY), [6, 30])
    config = PipelineConfig(transport="ble", mode=Mode.PAPER, window=7, inferences=6, seed=0)
    result = HardwareTestbed(inventory).run(plan, config)
    sim = simulate(plan, emulator_config(inventory, config))

    assert sim.failed and sim.completed  # the case this test needs
    assert result.failed == sim.failed
    assert result.completed == sim.completed
    assert_same_stage_events(result, sim, skip_failed_tx=True)
    assert result.checks["outputs"]["exact"] == len(sim.completed)
    assert result.energy_j == []  # no meter, no energy records
    lost = [e for e in result.link_events if not e.result.delivered]
    assert {e.inference for e in lost} == set(sim.failed)
    for event in lost:  # no tx_end: estimated from when the failure reached the host
        assert 0 <= event.result.duration_s < math.inf
    with pytest.raises(ValueError, match="measure a device time"):
        HardwareTestbed(inventory).advance(math.nan)


def test_window_and_mode_are_set_with_config_and_reset(
    inventory: Inventory, small_plan: Plan, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The boards boot with reliable mode and window 6; the run asks for paper mode, window 3.
    booted = PipelineConfig(transport="ble", inferences=3, seed=1)
    asked = dataclasses.replace(booted, mode=Mode.PAPER, window=3)
    real = testbed_module.emulator_config
    monkeypatch.setattr(testbed_module, "emulator_config", lambda inv, config: real(inv, booted))
    result = HardwareTestbed(inventory).run(small_plan, asked)
    sim = simulate(small_plan, real(inventory, asked))
    assert_same_stage_events(result, sim)
    assert all(s >= 0 for s in result.setup_s)


@pytest.fixture
def kill_after(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int], None]]:
    """Kill the emulator process (every port gone) once ``n`` outputs have arrived."""
    handles: list[Any] = []
    real_start = emulator_package.start_emulator

    def start(*args: Any, **kwargs: Any) -> Any:
        handles.append(real_start(*args, **kwargs))
        return handles[-1]

    monkeypatch.setattr(emulator_package, "start_emulator", start)

    def arm(n: int) -> None:
        real_output = session_module.Session._output

        def output(self: Any, console: Any, event: Any) -> None:
            real_output(self, console, event)
            if self.outputs == n:
                self._scribe_command("status")  # every mark sent so far is in
                self._take_marks()
                os.kill(handles[-1].process.pid, signal.SIGKILL)
                handles[-1].process.wait()

        monkeypatch.setattr(session_module.Session, "_output", output)

    yield arm


def test_unplugged_boards_stop_the_run_and_keep_the_completed_inferences(
    inventory: Inventory, small_plan: Plan, kill_after: Callable[[int], None]
) -> None:
    kill_after(2)
    config = PipelineConfig(transport="ble", inferences=6, seed=2)
    with pytest.raises(PartialRunError) as caught:
        HardwareTestbed(inventory).run(small_plan, config)
    message = str(caught.value)
    assert "unplugged or closed" in message
    # Names the board and its port: whichever the host noticed first (a board or the scribe).
    assert re.search(r"board (b\d \(stage \d\)|scribe) on /dev/pts/\d+", message), message
    partial = caught.value.result
    # Outputs already queued when the boards vanished are complete too: at least the two.
    kept = partial.config.inferences
    assert kept >= 2 and f"run aborted after {kept} of 6 inferences" in message
    assert partial.completed == list(range(kept))
    assert len(partial.injected_s) == kept
    sim = simulate(small_plan, emulator_config(inventory, config))
    assert_same_stage_events(
        dataclasses.replace(partial, stage_events=partial.stage_events[: 2 * 3]),
        dataclasses.replace(sim, stage_events=[e for e in sim.stage_events if e.inference < 2]),
    )


# ---------------------------------------------------------------- fake boards on ptys


class FakePipeline:
    """Two scripted boards and a scribe: hello, bring-up and inject work; outputs never come.

    ``silent`` makes board 2 stop answering once it is started.
    """

    def __init__(self, fake_board: Callable[..., FakeBoard], plan: Plan, *, silent: bool) -> None:
        reference = reference_for(plan)
        (in1, out1), (in2, out2) = (reference.stage_values(s) for s in plan.stages)
        common = "TS1 ok proto=1 transport=ble mode=reliable window=6 stages=2"
        self.hello = [
            f"{common} stage=1 in={in1} out={out1} in_exp={reference.input_exponent}",
            f"{common} stage=2 in={in2} out={out2} in_exp=0",
        ]
        self.started = False
        self.silent = silent
        self.boards = [fake_board(self.stage1), fake_board(self.stage2)]
        self.scribe = fake_board(
            {"start": "TS1 ok running=1", "status": "TS1 ok running=1"},
            hello="role=scribe lines=2 unit_us=10",
        )

    def common(self, stage: int, line: str) -> str | None:
        word = line.split(" ", 1)[0]
        replies = {
            "hello": self.hello[stage - 1],
            "status": "TS1 ok state=running links=up busy=1",
            "stop": "TS1 ok state=idle",
            "stats": "TS1 ok tx_frames=0",
            "marks": "TS1 ok marks=off",
            "start": "TS1 ok state=running",
            "rssi": "TS1 ok up=-60 down=none",
        }
        return "TS1 ok" if line == "stats reset" else replies.get(word)

    def stage1(self, line: str) -> str | None:
        word, _, rest = line.partition(" ")
        if word == "inject":
            return "TS1 ok max_data=512"
        if word == "data":
            offset, data = rest.split(" ")
            return f"TS1 ok received={int(offset) + len(base64.b64decode(data))}"
        if word == "end":
            return "TS1 ok inference=0"
        return self.common(1, line)

    def stage2(self, line: str) -> str | None:
        if self.silent and self.started:
            return None
        if line == "start":
            self.started = True
        return self.common(2, line)


def fake_inventory(tmp_path: Path, pipeline: FakePipeline) -> Inventory:
    return write_inventory(
        tmp_path / "boards.toml",
        boards=2,
        meter="none",
        emulated=False,
        ports=[b.port for b in pipeline.boards],
        scribe_port=pipeline.scribe.port,
    )


@pytest.fixture(scope="module")
def two_stage_plan() -> Plan:
    return plan_from_cuts(load_model(SMALL), [30])


def test_a_stage_that_stops_answering_times_out_naming_it(
    tmp_path: Path, fake_board: Callable[..., FakeBoard], two_stage_plan: Plan
) -> None:
    pipeline = FakePipeline(fake_board, two_stage_plan, silent=True)
    testbed = HardwareTestbed(fake_inventory(tmp_path, pipeline), timeout_s=0.5)
    silent = r"timeout: stage 2 stopped answering: board b2 \(stage 2\) on /dev/pts/\d+: no reply"
    with pytest.raises(PartialRunError, match=silent + " to 'status'") as caught:
        testbed.run(two_stage_plan, PipelineConfig(transport="ble", inferences=1))
    assert caught.value.result.completed == []


def test_a_pipeline_that_gives_nothing_names_the_stage_holding_the_inference(
    tmp_path: Path, fake_board: Callable[..., FakeBoard], two_stage_plan: Plan
) -> None:
    pipeline = FakePipeline(fake_board, two_stage_plan, silent=False)
    testbed = HardwareTestbed(fake_inventory(tmp_path, pipeline), timeout_s=0.3)
    with pytest.raises(PartialRunError, match=r"timeout: stage 2 \(board b2 \(stage 2\) on "):
        testbed.run(two_stage_plan, PipelineConfig(transport="ble", inferences=1))


def test_boards_running_another_slice_or_transport_are_config_errors(
    tmp_path: Path, fake_board: Callable[..., FakeBoard], two_stage_plan: Plan
) -> None:
    pipeline = FakePipeline(fake_board, two_stage_plan, silent=False)
    testbed = HardwareTestbed(fake_inventory(tmp_path, pipeline))
    other = plan_from_cuts(load_model(SMALL), [20])
    with pytest.raises(ConfigError, match=r"board b1 \(stage 1\) on .* runs a slice of .* flash"):
        testbed.run(other, PipelineConfig(transport="ble", inferences=1))
    with pytest.raises(ConfigError, match="run the ble firmware, not wifi"):
        testbed.run(two_stage_plan, PipelineConfig(transport="wifi", inferences=1))


# ---------------------------------------------------------------- contract and registry


def test_what_boards_cannot_be_told_is_unsupported(inventory: Inventory, small_plan: Plan) -> None:
    testbed = HardwareTestbed(inventory)
    base = PipelineConfig(transport="ble")
    assert testbed.unsupported(base) is None
    assert testbed.unsupported(dataclasses.replace(base, window=3, mode=Mode.PAPER)) is None
    for change, words in [
        ({"rssi_dbm": (-60.0, -70.0)}, "RSSIs and positions"),
        ({"positions_m": ((0, 0), (1, 0), (2, 0))}, "RSSIs and positions"),
        ({"link_profile": "paper"}, "simulator calibration"),
        ({"dual_core": True}, "firmware build option"),
        ({"ap_board": 2}, "SoftAP"),
        ({"placement": ((0,), (2,), (1,))}, "simulator deployments"),
        ({"rssi_matrix_dbm": ((math.nan, -60.0), (-60.0, math.nan))}, "simulator deployments"),
        ({"windows": (6, 3)}, "one window per link"),
        ({"adaptive_window": True}, "TINYSPLIT_ADAPTIVE_WINDOW"),
    ]:
        config = dataclasses.replace(base, **change)
        reason = testbed.unsupported(config)
        assert reason is not None and words in reason
        with pytest.raises(ConfigError, match=words):
            testbed.run(small_plan, config)
    hybrid = testbed.unsupported(PipelineConfig(transport="wifi", wake="ble"))
    assert hybrid is not None and "hybrid" in hybrid
    with pytest.raises(ConfigError, match=r"the plan has 2 stages but .* lists 3 boards"):
        testbed.run(plan_from_cuts(load_model(SMALL), [30]), base)


def test_registry_and_device_clock(inventory: Inventory, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--testbed hw needs --inventory"):
        make_testbed("hw")
    with pytest.raises(ConfigError, match="only applies to the hardware testbed"):
        make_testbed("sim", inventory=inventory.path)
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read the inventory"):
        make_testbed("hw", inventory=tmp_path / "missing.toml")
    testbed = make_testbed("hw", inventory=inventory.path)
    assert testbed.clock() == 0.0
    testbed.advance(2.5)
    assert testbed.clock() == 2.5
    with pytest.raises(ValueError, match=r"cannot move the clock by -1\.0 s"):
        testbed.advance(-1.0)
    with pytest.raises(ConfigError, match="timeout_s must be > 0"):
        HardwareTestbed(inventory, timeout_s=0)


# ---------------------------------------------------------------- pairing marks


def marks_of(rows: list[tuple[int, str, float]]) -> Any:
    events = [
        {"line": str(line), "mark": mark, "t_ns": str(round(t * 1e9))} for line, mark, t in rows
    ]
    return collect_marks(events, {1: 1, 2: 2}, 2)


def test_pairing_skips_a_lost_transfer_that_left_only_an_rx_start() -> None:
    # Paper mode, like the firmware: inference 0's tensor is lost (stage 2 started receiving it
    # and dropped it; stage 1 marks no tx_end); inference 1 arrives.
    marks, skipped = marks_of([
        (1, "infer_start", 0.0), (1, "infer_end", 1.0), (1, "tx_start", 1.0),
        (2, "rx_start", 1.1),
        (1, "infer_start", 1.0), (1, "infer_end", 2.0), (1, "tx_start", 5.0),
        (2, "rx_start", 5.1), (2, "rx_end", 6.0), (1, "tx_end", 6.1),
        (2, "infer_start", 6.0), (2, "infer_end", 6.5),
        (9, "rx_start", 1.0), (1, "bogus", 1.0),
    ])  # fmt: skip
    assert skipped == 2
    paired = pair_marks(marks, stages=2, injected=2, failures={1: 1})
    lost, sent = sorted(paired.transfers, key=lambda t: t.inference)
    assert (lost.inference, lost.delivered, math.isnan(lost.end_s)) == (0, False, True)
    assert (sent.inference, sent.delivered) == (1, True)
    assert (sent.start_s, sent.end_s, sent.receive_start_s, sent.receive_end_s) == (
        5.0, 6.1, 5.1, 6.0
    )  # fmt: skip
    events = {(e.inference, e.stage): e for e in paired.stage_events}
    assert math.isnan(events[0, 2].inference_start_s)
    assert events[1, 2].inference_start_s == 6.0
    assert paired.injected_s == [0.0, 1.0]  # no rx marks on stage 1: its infer_start
    assert paired.duration_s == 6.5


def test_pairing_takes_late_receptions_in_order_without_reported_failures() -> None:
    # Over a stream the sender may be done before the receiver: rx_end after the next tx_start.
    marks, _ = marks_of([
        (1, "rx_end", 0.0), (1, "rx_end", 0.2),
        (1, "infer_start", 0.0), (1, "infer_end", 1.0), (1, "tx_start", 1.0), (1, "tx_end", 1.5),
        (1, "infer_start", 1.0), (1, "infer_end", 1.6), (1, "tx_start", 1.6), (1, "tx_end", 2.0),
        (2, "rx_start", 1.1), (2, "rx_end", 1.7), (2, "rx_start", 1.8), (2, "rx_end", 2.4),
        (2, "infer_start", 1.7), (2, "infer_end", 1.75), (2, "infer_start", 2.4),
        (2, "infer_end", 2.5),
    ])  # fmt: skip
    paired = pair_marks(marks, stages=2, injected=2, failures={})
    assert [t.delivered for t in paired.transfers] == [True, True]
    assert [t.receive_end_s for t in paired.transfers] == [1.7, 2.4]
    assert paired.injected_s == [0.0, 0.2]
    assert np.isnan([e.receive_start_s for e in paired.stage_events if e.stage == 1]).all()
