"""The emulated boards on the paper's pipeline: ``tests/fixtures/emulated-boards.toml``.

One emulator process serves the module: five BLE boards running the ``paper`` model split as the
bench does by default (``--strategy paper``, 5 devices, ``paper`` profile and layout), and a
scribe with an INA226 per board. The host side of each check is independent of the emulator:
the int16 reference is computed here with the model's own executor, the expected records come
from :func:`tinysplit.sim.simulate` of the same plan and configuration.
"""

from __future__ import annotations

import math
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.testbed.hw.emulator_helpers import Wire, fields
from tinysplit.links.calibration import sourced_goodput_bps
from tinysplit.model import load_model
from tinysplit.model.execute import run_int16
from tinysplit.model.quantize import (
    QuantizedModel,
    calibrate,
    quantize,
    requantize_exponent,
    sample_inputs,
)
from tinysplit.partition import Plan, partition
from tinysplit.protocol.frames import frames_for_tensor
from tinysplit.sim.energy import PowerModel
from tinysplit.sim.layout import load_layout
from tinysplit.sim.pipeline import LinkEvent, PipelineConfig, SimResult, simulate
from tinysplit.testbed.hw.console import Console, Event
from tinysplit.testbed.hw.emulator import EmulatorHandle, start_emulator
from tinysplit.testbed.hw.inventory import load_inventory
from tinysplit.testbed.hw.serial_port import open_serial

FIXTURE = Path(__file__).parents[2] / "fixtures" / "emulated-boards.toml"
BOARDS = ("b1", "b2", "b3", "b4", "b5")
MARKS = ("rx_start", "rx_end", "infer_start", "infer_end", "tx_start", "tx_end")


@dataclass
class Paper:
    handle: EmulatorHandle
    plan: Plan
    config: PipelineConfig
    sim: SimResult
    qmodel: QuantizedModel


@pytest.fixture(scope="module")
def paper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Paper]:
    graph = load_model("paper")
    plan = partition(
        graph,
        strategy="paper",
        devices=5,
        profile="paper",
        transport="ble",
        link_rate_bps=sourced_goodput_bps("ble", None),
    )
    layout = load_layout("paper", 5)
    config = PipelineConfig(
        transport="ble", inferences=3, rssi_dbm=layout.rssi_dbm, positions_m=layout.positions_m
    )
    # The host's reference (the export's calibration) is computed while the emulator starts.
    box: dict[str, QuantizedModel] = {}
    worker = threading.Thread(
        target=lambda: box.setdefault("q", calibrate(graph, sample_inputs(graph, 16, seed=0)))
    )
    worker.start()
    inventory = load_inventory(FIXTURE)
    with start_emulator(inventory, plan, config, tmp_path_factory.mktemp("emu")) as handle:
        worker.join()
        yield Paper(handle, plan, config, simulate(plan, config), box["q"])
    assert handle.process.returncode == 0


@pytest.fixture
def wires(paper: Paper) -> Iterator[dict[str, Wire]]:
    """Raw hosts on every board and the scribe, with what earlier tests left unread drained."""
    opened = {name: Wire(path) for name, path in paper.handle.ports.items()}
    assert paper.handle.scribe_port is not None
    opened["scribe"] = Wire(paper.handle.scribe_port)
    for wire in opened.values():
        wire.drain(0.05)
    yield opened
    for wire in opened.values():
        wire.close()


def _bring_up(consoles: dict[str, Console]) -> None:
    for name in BOARDS:
        for line in ("stop", "stats reset", "marks on"):
            consoles[name].command(line).require()
    for name in reversed(BOARDS):
        consoles[name].command("start").require()
    consoles["scribe"].command("start").require()


def test_round_trip_gives_the_reference_output_and_the_simulated_records(paper: Paper) -> None:
    """Three inferences through helper A's Console on pyserial: outputs, marks, stats, power."""
    qmodel, graph = paper.qmodel, paper.qmodel.graph
    in_exp = qmodel.exponents[graph.input_name]
    out_exp = qmodel.exponents[graph.output_name]
    consoles = {
        name: Console(
            open_serial(port=path, serial_number=None, label=name),
            label=name,
            port=path,
            timeout_s=60.0,
        )
        for name, path in [*paper.handle.ports.items(), ("scribe", paper.handle.scribe_port)]
        if path is not None
    }
    try:
        for k, name in enumerate(BOARDS, start=1):
            hello = consoles[name].hello()
            stage = paper.plan.stages[k - 1]
            in_values = 150528 if k == 1 else paper.plan.stages[k - 2].outgoing.size_bytes // 2
            assert hello["stage"] == str(k) and hello["stages"] == "5"
            assert (hello["in"], hello["out"]) == (
                str(in_values),
                str(stage.outgoing.size_bytes // 2),
            )
            assert hello["fw"].startswith("emulator-") and hello["transport"] == "ble"
        assert consoles["b1"].hello()["in_exp"] == str(in_exp)
        _bring_up(consoles)
        images = quantize(sample_inputs(graph, 3, seed=7), in_exp)  # NCHW int16
        sent = [(images[0], in_exp), (images[1], in_exp), (images[2] >> 1, in_exp + 1)]
        for n, (values, exponent) in enumerate(sent):
            board_values = np.moveaxis(values, 0, -1)  # CHW -> HWC, as the boards store it
            consoles["b1"].inject(100 + n, exponent, board_values)
            event = consoles["b5"].wait_event(
                "output", timeout_s=60.0, match=lambda e, n=n: e.fields["inference"] == str(100 + n)
            )
            data = consoles["b5"].read_output(
                100 + n, int(event.fields["bytes"]), crc32=int(event.fields["crc32"], 16)
            )
            x = requantize_exponent(values, exponent, in_exp) if exponent != in_exp else values
            expected = run_int16(qmodel, x[None].astype(np.int16))
            assert event.fields["exp"] == str(out_exp)
            assert data == np.ascontiguousarray(expected).astype("<i2").tobytes()
        consoles["scribe"].command("status").require()  # every mark sent before it has arrived
        _check_marks(paper, consoles["scribe"].pop_events("mark"))
        _check_board_marks(consoles["b1"].pop_events("mark"))
        for k, name in enumerate(BOARDS, start=1):
            stats = consoles[name].command("stats").require().fields
            assert {key: int(stats[key]) for key in _expected_stats(paper, k)} == _expected_stats(
                paper, k
            ), name
        _check_power(paper, consoles["scribe"].pop_events("power"))
    finally:
        for console in consoles.values():
            console.close()


def _check_marks(paper: Paper, events: list[Event]) -> None:
    """Scribe marks equal the simulator's StageEvents, in simulated order within each inference.

    At ``time_scale = 0`` an inference's marks come out when its input is injected, so marks of
    the next inference may carry earlier times (hosts sort by ``t_ns``); this host waits for each
    output before the next input, so the marks come inference by inference.
    """
    got: dict[int, list[tuple[str, int]]] = {}
    for e in events:
        got.setdefault(int(e.fields["line"]), []).append((e.fields["mark"], int(e.fields["t_ns"])))
    for k in range(1, 6):
        expected = []
        for e in (s for s in paper.sim.stage_events if s.stage == k):
            times = [
                e.receive_start_s,
                e.receive_end_s,
                e.inference_start_s,
                e.inference_end_s,
                e.send_start_s,
                e.send_end_s,
            ]
            if k == 1:
                times[:2] = [paper.sim.injected_s[e.inference]] * 2
            marks = [
                (m, round(t * 1e9)) for m, t in zip(MARKS, times, strict=True) if not math.isnan(t)
            ]
            expected += sorted(marks, key=lambda mt: (mt[1], MARKS.index(mt[0])))
        assert got[k] == expected, k


def _check_board_marks(events: list[Event]) -> None:
    """Board 1's own marks: six per inference, in order, on a clock that never runs back."""
    assert [(e.fields["inference"], e.fields["mark"]) for e in events] == [
        (str(n), m) for n in (100, 101, 102) for m in MARKS
    ]
    clock = [int(e.fields["t_us"]) for e in events]
    assert clock == sorted(clock)


def _expected_stats(paper: Paper, k: int) -> dict[str, int]:
    """Counters board ``k`` must show, restated from the simulator's link records."""
    out = [e for e in paper.sim.link_events if e.stage == k]
    into = [e for e in paper.sim.link_events if e.stage == k - 1]

    def frames_bytes(e: LinkEvent) -> int:
        clean = frames_for_tensor(e.bytes, 512, "reliable")
        assert e.result.app_frames == clean  # no retransmission on these links
        return e.bytes + 4 + 16 * clean

    answers = sum(-(-e.result.app_frames // 6) for e in out)
    return {
        "tensors_in": 3 if k == 1 else len(into),
        "tensors_out": 3 if k == 5 else len(out),
        "send_failures": 0,
        "tx_frames": sum(e.result.app_frames for e in out),
        "tx_bytes": sum(frames_bytes(e) for e in out),
        "retransmissions": sum(e.result.retransmissions for e in out),
        "rx_frames": sum(e.result.app_frames for e in into) + answers,
        "rx_bytes": sum(frames_bytes(e) for e in into) + 20 * answers,
        "requantized": 1 if k == 1 else 0,
    }


def _check_power(paper: Paper, events: list[Event]) -> None:
    """A sample per board every 10 ms of the run; they add up to the simulator's energy."""
    power = PowerModel.for_transport("ble")
    samples = int(paper.sim.duration_s / 0.01 + 1e-9)
    for k in range(1, 6):
        mine = [e.fields for e in events if e.fields["dev"] == str(k)]
        assert [int(f["t_ns"]) for f in mine] == [
            round(j * 0.01 * 1e9) for j in range(1, samples + 1)
        ]
        assert {f["bus_mv"] for f in mine} == {"3300"}
        currents = np.array([int(f["current_ua"]) for f in mine]) / 1000.0
        assert currents.min() >= power.idle_ma - 0.025
        measured_j = float(np.sum(currents) * 0.01 * 3.3 / 1000.0)
        assert measured_j == pytest.approx(sum(paper.sim.energy_j[k - 1].values()), rel=0.01)


def test_hello_config_and_reset(paper: Paper, wires: dict[str, Wire]) -> None:
    b3 = wires["b3"]
    assert fields(b3.ok("status"))["links"] == "up"
    settings = "stage=3 stages=5 mode=reliable window=6 ack_timeout_ms=200 max_timeouts=20"
    assert b3.ok("config") == f"{settings} pending=0"
    assert b3.ok("config window=8 mode=paper") == (
        "stage=3 stages=5 mode=paper window=8 ack_timeout_ms=200 max_timeouts=20 pending=1"
    )
    assert fields(b3.ok("hello"))["window"] == "6"  # stored, not running yet
    assert b3.err("config window=17") == "range bad value 17 for window"
    assert b3.err("config mode=fast") == "range bad value fast for mode"
    assert b3.err("config colour=red") == "usage unknown key colour"
    assert b3.err("config window") == "usage config [key=value]..."
    assert b3.err("config stage=6") == "range stage 6 is past stages 5"
    assert b3.ok("start") == "state=running"
    assert b3.ok("marks on") == "marks=on"
    b3.drain()
    assert b3.ok("reset") == "rebooting"
    b3.drain()
    assert any("emulated board b3" in line for line in b3.logs)  # a boot line to skip
    hello = fields(b3.ok("hello"))
    assert (hello["mode"], hello["window"]) == ("paper", "8")
    assert fields(b3.ok("status"))["state"] == "idle"  # rebooted: idle, marks off, stats zero
    assert b3.ok("config") == (
        "stage=3 stages=5 mode=paper window=8 ack_timeout_ms=200 max_timeouts=20 pending=0"
    )
    assert b3.ok("config mode=reliable window=6").endswith("pending=1")
    b3.ok("reset")
    assert b3.ok("config") == f"{settings} pending=0"


def test_every_error_of_inject_data_end_and_read(paper: Paper, wires: dict[str, Wire]) -> None:
    b1, b2, b5 = wires["b1"], wires["b2"], wires["b5"]
    b5.ok("reset")
    assert b5.err("read 0 0 4") == "state no output yet"
    assert b2.err("read 0 0 4") == "state read is for the last stage"
    for name in reversed(BOARDS):
        wires[name].ok("start")
    size = 150528 * 2
    for bad in (
        "inject",
        "inject 1 -14 301056",
        "inject 65536 -14 301056 0",
        "inject 1 128 301056 0",
        "inject 1 -14 301056 xyz",
        "inject 1 -14 301056 123456789",
        "inject -1 -14 301056 0",
    ):
        assert b1.err(bad) == "usage inject <inference> <exponent> <bytes> <crc32hex>", bad
    assert b2.err(f"inject 1 -14 {size} 0") == "state inject is for stage 1, this is stage 2"
    assert b1.err("inject 1 -14 12 0") == f"size input is {size} bytes"
    b1.ok("stop")
    assert b1.err(f"inject 1 -14 {size} 0") == "state stopped"
    b1.ok("start")
    assert b1.err("data 0 AAAA") == "state no inject in progress"
    assert b1.err("end") == "state no inject in progress"
    data = (np.arange(size // 2, dtype=np.int16) % 500).astype("<i2").tobytes()
    assert b1.ok(f"inject 7 -14 {size} {zlib.crc32(data):08X}") == "max_data=512"
    for bad in (
        "data",
        "data 0",
        "data x AAAA",
        "data 0 AAAA extra",
        "data 0 AAA=A",
        "data 0 AB==",
        "data 0 A===",
        "data 0 ~~~~",
    ):
        expected = "usage data <offset> <base64>" if bad.count(" ") != 2 or "x" in bad else None
        assert b1.err(bad) == (expected or "usage bad base64"), bad
    import base64

    def chunk(offset: int, n: int = 512) -> str:
        return base64.b64encode(data[offset : offset + n]).decode()

    assert b1.err(f"data 0 {chunk(0, 513)}") == "size more than 512 bytes at offset 0"
    assert b1.ok(f"data 0 {chunk(0)}") == "received=512"
    assert b1.err(f"data 0 {chunk(0)}") == "range expected offset 512"
    assert b1.err("end") == f"size received 512 of {size} bytes"
    for offset in range(512, size - 512, 512):
        b1.send(f"data {offset} {chunk(offset)}")
    b1.read_until(lambda line: line == f"TS1 ok received={size - 512}")
    tail = base64.b64encode(data[size - 512 :] + b"\0\0").decode()
    assert b1.err(f"data {size - 512} {tail}") == f"size more than 512 bytes at offset {size - 512}"
    b1.ok(f"data {size - 512} {chunk(size - 512)}")
    assert b1.err(f"data {size} AAAA") == f"size more than 0 bytes at offset {size}"
    assert b1.ok("end") == "inference=7"
    _, reply = b5.command("read 7 0 4") if _wait_output(b5, 7) else ("", "")
    assert reply.startswith("TS1 ok ")
    assert b5.err("read 6 0 4") == "range latest output is inference 7"
    assert b5.err("read 7 0 513") == "size at most 512 bytes per read"
    assert b5.err("read 7 18 4") == "range output is 20 bytes"
    assert b5.err("read 7 21 0") == "range output is 20 bytes"
    assert b5.err("read 7 0") == "usage read <inference> <offset> <len>"
    assert b5.err("read 65536 0 4") == "usage read <inference> <offset> <len>"
    # A wrong CRC-32 drops the inject.
    b1.ok(f"inject 8 -14 {size} 1")
    for offset in range(0, size, 512):
        b1.send(f"data {offset} {chunk(offset)}")
    b1.read_until(lambda line: line == f"TS1 ok received={size}")
    assert b1.err("end") == f"crc computed {zlib.crc32(data):08x}, expected 00000001"
    assert b1.err("end") == "state no inject in progress"
    # Settings that do not fit the plan leave the links down after the reboot.
    b1.ok("config stages=4")
    b1.ok("reset")
    assert b1.ok("status") == "state=idle links=down busy=0 tensors_in=0 tensors_out=0 errors=0"
    b1.ok("start")
    assert b1.err(f"inject 1 -14 {size} 0") == "state links down"
    assert b1.err("stats") == "state links down"
    assert b1.ok("rssi") == "up=none down=none"
    b1.ok("config stages=5")
    b1.ok("reset")
    assert fields(b1.ok("status"))["links"] == "up"


def _wait_output(wire: Wire, inference: int) -> bool:
    wire.read_until(lambda line: line.startswith(f"TS1 evt output inference={inference} "))
    return True


def test_rssi_ping_and_console_lines(paper: Paper, wires: dict[str, Wire]) -> None:
    b1, b3, b5 = wires["b1"], wires["b3"], wires["b5"]
    rssi = [round(r) for r in paper.sim.rssi_dbm]
    assert b1.ok("rssi") == f"up=none down={rssi[0]}"
    assert b3.ok("rssi") == f"up={rssi[1]} down={rssi[2]}"
    assert b5.ok("rssi") == f"up={rssi[3]} down=none"
    assert b1.err("ping up") == "state stage 1 has no up link"
    assert b5.err("ping down") == "state stage 5 has no down link"
    assert b3.err("ping sideways") == "usage ping <up|down>"
    b3.ok("stop")
    assert b3.err("ping up") == "state stopped"
    b3.ok("start")
    assert b3.ok("ping up") == "link=up token=1"
    rtt = fields(b3.read_until(lambda line: line.startswith("TS1 evt rtt"))[-1])
    assert rtt["link"] == "up" and int(rtt["rtt_us"]) > 0
    assert fields(b3.ok("stats"))["rtt_up_us"] == rtt["rtt_us"]
    # Lines: CR, LF or both end a line; blank lines are ignored; limits as the firmware's.
    b3.send(b"status\r\n\r\n   \t\rhello")
    assert [line.split()[1] for line in b3.read_until(lambda line: "proto=1" in line)] == [
        "ok",
        "ok",
    ]
    assert b3.err(b"x" * 1025) == "size line longer than 1024 bytes"
    assert b3.err(b"hello\0") == "usage line contains a NUL byte"
    assert b3.err(" ".join(["help"] * 17)) == "usage more than 16 words"
    assert b3.err("frob") == "unknown no command frob"
    assert b3.err("hello there") == "usage hello"
    assert b3.err("help frob") == "unknown no command frob"
    assert b3.ok("help inject") == "inject <inference> <exponent> <bytes> <crc32hex>"
    assert b3.ok("help") == (
        "commands=help,hello,status,config,reset,start,stop,inject,data,end,read,stats,rssi,"
        "ping,marks"
    )
    assert b3.err("marks maybe") == "usage marks <on|off>"
    scribe = wires["scribe"]
    assert scribe.ok("hello") == (
        "proto=1 role=scribe lines=5 resolution_ns=12.5 power=ina226 unit_us=10"
    )
    assert scribe.ok("help") == "commands=help,hello,start,stop,status"
    assert scribe.ok("stop") == "running=0"
    status = fields(scribe.ok("status"))
    assert (status["running"], status["t_ns"], status["capture"]) == ("0", "0", "mcpwm")
    assert status["line5_marks"].count(",") == 5
