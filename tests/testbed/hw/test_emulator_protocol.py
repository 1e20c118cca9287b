"""The emulator against the protocol's own transcripts, paper-mode losses and paced time.

These use two-stage pipelines of a small MatMul model (fast to quantize and run), so every
emulator here starts in about a second.
"""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.testbed.hw.emulator_helpers import Wire, fields, two_layer_model, write_inventory
from tinysplit.errors import BoardError
from tinysplit.model import load_model
from tinysplit.partition import Plan, plan_from_cuts
from tinysplit.sim.pipeline import PipelineConfig, simulate
from tinysplit.testbed.hw.emulator import EmulatorHandle, start_emulator
from tinysplit.testbed.hw.inventory import load_inventory

PROTOCOL_MD = Path(__file__).parents[3] / "docs" / "protocol.md"
FIXTURE = Path(__file__).parents[2] / "fixtures" / "emulated-boards.toml"
#: Transcript values that depend on the platform, not on the protocol, and are not compared:
#: ``fw`` (firmware version), ``in_exp`` and evt output's ``exp`` / ``crc32`` and the ``read``
#: payloads (the C test's fake slice vs the real model; a ``read`` payload is compared by length),
#: ``requantized`` (the model's calibrated input exponent, -15 here, vs the injected -7), ``t_us``
#: and ``rtt_us`` (clocks), ``links`` (how long the radio takes to come up after boot).
PLATFORM_FIELDS = frozenset(
    {"fw", "in_exp", "exp", "crc32", "requantized", "t_us", "rtt_us", "links"}
)


def _emulator(
    tmp: Path, *, hidden: int, transport: str, config: PipelineConfig, time_scale: float = 0.0
) -> tuple[EmulatorHandle, Plan]:
    graph = load_model(str(two_layer_model(tmp / f"model{hidden}.onnx", hidden)))
    plan = plan_from_cuts(graph, [1], profile="paper", transport=transport)
    inventory = write_inventory(
        tmp / "boards.toml", transport=transport, boards=2, time_scale=time_scale
    )
    return start_emulator(load_inventory(inventory), plan, config, tmp), plan


@pytest.fixture
def wires_of() -> Iterator[list[Wire]]:
    opened: list[Wire] = []
    yield opened
    for wire in opened:
        wire.close()


def _open(handle: EmulatorHandle, opened: list[Wire]) -> tuple[Wire, Wire]:
    b1, b2 = Wire(handle.ports["b1"]), Wire(handle.ports["b2"])
    opened += [b1, b2]
    return b1, b2


def _transcript() -> list[tuple[str, str, str]]:
    """``(board, '>' or '<', line)`` of docs/protocol.md's transcripts, up to the paper failure
    (an event that needs a lost frame, which this pipeline does not lose)."""
    text = PROTOCOL_MD.read_text()
    text = text[text.index("### Transcripts") : text.index("A failure in paper mode")]
    return re.findall(r"^    (B\d) ([<>]) (.+)$", text, flags=re.MULTILINE)


def _same(expected: str, got: str, command: str) -> bool:
    """Equal reply words, ignoring the values of :data:`PLATFORM_FIELDS`."""
    want, have = expected.split(), got.split()
    if command.startswith("read ") and want[:2] == ["TS1", "ok"]:
        return have[:2] == want[:2] and [len(w) for w in have] == [len(w) for w in want]
    if len(want) != len(have):
        return False
    for a, b in zip(want, have, strict=True):
        key, sep, _ = a.partition("=")
        if sep and key in PLATFORM_FIELDS:
            if b.partition("=")[0] != key:
                return False
        elif a != b:
            return False
    return True


def test_transcripts_of_the_c_core_are_answered_alike(tmp_path: Path, wires_of: list[Wire]) -> None:
    """Replay docs/protocol.md's transcripts (a two-stage ESP-NOW pipeline of 6 -> 8 -> 4
    values, as the C test's) and compare every line each board sends, in order."""
    config = PipelineConfig(transport="espnow", inferences=1, rssi_dbm=(-58.0,))
    handle, _ = _emulator(tmp_path, hidden=8, transport="espnow", config=config)
    with handle:
        wires = dict(zip(("B1", "B2"), _open(handle, wires_of), strict=True))
        expected: dict[str, list[tuple[str, str]]] = {"B1": [], "B2": []}
        last_command = {"B1": "", "B2": ""}
        for board, arrow, line in _transcript():
            if arrow == "<":
                expected[board].append((line, last_command[board]))
                continue
            for name, wire in wires.items():  # the board has said all it said before this
                wire.wait_lines(len(expected[name]), 10.0)
            wires[board].send(line)
            last_command[board] = line
        for name, wire in wires.items():
            wire.wait_lines(len(expected[name]), 10.0)
            wire.drain(0.3)
            got = wire.lines
            assert len(got) == len(expected[name]), (name, got)
            for (want, command), have in zip(expected[name], got, strict=True):
                assert _same(want, have, command), f"{name} after {command!r}: {have!r} vs {want!r}"


def test_paper_mode_losses_are_reported_and_give_no_output(
    tmp_path: Path, wires_of: list[Wire]
) -> None:
    config = PipelineConfig(
        transport="ble", mode="paper", window=8, inferences=6, rssi_dbm=(-75.0,)
    )
    handle, plan = _emulator(tmp_path, hidden=2048, transport="ble", config=config)
    failed = simulate(plan, config).failed
    assert failed and len(failed) < 6  # the configuration loses some tensors, not all
    with handle:
        b1, b2 = _open(handle, wires_of)
        assert fields(b1.ok("hello"))["mode"] == "paper"
        assert b1.err("ping down") == "state ping needs reliable mode"
        for wire in (b2, b1):
            wire.ok("start")
        values = np.array([100, -200, 300, -400, 500, 32767], "<i2").tobytes()
        data = __import__("base64").b64encode(values).decode()
        for n in range(6):
            b1.ok(f"inject {n} -15 12 {zlib.crc32(values):08x}")
            b1.ok(f"data 0 {data}")
            b1.ok("end")
        outputs = b2.read_until(lambda line: line.startswith("TS1 evt output inference=5 "))
        assert [fields(e)["inference"] for e in outputs if " output " in e] == [
            str(n) for n in range(6) if n not in failed
        ]
        assert [e for e in b2.lines if "rx_dropped_tensors" in e][-1].endswith(
            f"total={len(failed)}"
        )
        reports = [e for e in b1.drain() + b1.lines if "what=send_failures" in e]
        assert reports[-1] == f"TS1 evt error what=send_failures total={len(failed)}"
        stats = fields(b1.ok("stats"))
        assert (stats["send_failures"], stats["timeouts"]) == (str(len(failed)),) * 2
        assert fields(b1.ok("status"))["errors"] == str(len(failed))


def test_paced_time_keeps_stage_1_busy_until_it_consumed_its_input(
    tmp_path: Path, wires_of: list[Wire]
) -> None:
    """With time_scale 0.5 a simulated second lasts half a wall second: stage 1 refuses an
    input while it still holds the previous one, as a board does. The configuration simulates
    two inferences; more inputs extend the run."""
    config = PipelineConfig(transport="ble", inferences=2, rssi_dbm=(-60.0,))
    handle, _ = _emulator(tmp_path, hidden=2048, transport="ble", config=config, time_scale=0.5)
    with handle:
        b1, b2 = _open(handle, wires_of)
        assert fields(b1.ok("status"))["links"] == "down"  # BLE connects in simulated time
        while fields(b1.ok("status"))["links"] != "up" or fields(b2.ok("status"))["links"] != "up":
            time.sleep(0.05)
        for wire in (b2, b1):
            wire.ok("start")
        values = np.arange(6, dtype="<i2").tobytes()
        data = __import__("base64").b64encode(values).decode()
        refused = accepted = 0
        deadline = time.monotonic() + 30.0
        while not (refused and accepted > 3) and accepted < 8 and time.monotonic() < deadline:
            b1.ok(f"inject {accepted} -15 12 {zlib.crc32(values):08x}")
            b1.ok(f"data 0 {data}")
            _, reply = b1.command("end")
            if reply == "TS1 err state previous input not consumed yet; inject again":
                refused += 1
                assert b1.err("end") == "state no inject in progress"  # the inject was dropped
                time.sleep(0.05)
            else:
                assert reply == f"TS1 ok inference={accepted}"
                accepted += 1
        assert refused > 0
        last = accepted - 1
        outputs = b2.read_until(lambda line: line.startswith(f"TS1 evt output inference={last} "))
        assert [fields(e)["inference"] for e in outputs if " output " in e] == [
            str(n) for n in range(accepted)
        ]


def test_a_bad_setup_fails_with_the_emulators_message(tmp_path: Path) -> None:
    graph = load_model(str(two_layer_model(tmp_path / "model.onnx", 8)))
    plan = plan_from_cuts(graph, [1], profile="paper", transport="ble")
    config = PipelineConfig(transport="ble", inferences=1, rssi_dbm=(-60.0,))
    with pytest.raises(
        BoardError, match=r"exited with status 2: .*5 boards for a plan of 2 stages"
    ):
        start_emulator(load_inventory(FIXTURE), plan, config, tmp_path)


def test_idle_receivers_extra_inputs_and_a_vanished_parent(
    tmp_path: Path, wires_of: list[Wire]
) -> None:
    """A tensor sent to an idle board is ignored and fails at the sender; more inputs than the
    configuration simulated extend the run; the emulator exits when its parent's pipe closes."""
    config = PipelineConfig(transport="espnow", inferences=2, rssi_dbm=(-58.0,))
    handle, _ = _emulator(tmp_path, hidden=8, transport="espnow", config=config)
    with handle:
        b1, b2 = _open(handle, wires_of)
        b1.ok("start")  # b2 stays idle
        values = np.arange(6, dtype="<i2").tobytes()
        data = __import__("base64").b64encode(values).decode()

        def inject(n: int) -> None:
            b1.ok(f"inject {n} -15 12 {zlib.crc32(values):08x}")
            b1.ok(f"data 0 {data}")
            assert b1.ok("end") == f"inference={n}"

        inject(0)
        b1.read_until(lambda line: line == "TS1 evt error what=send_failures total=1")
        assert fields(b2.ok("stats"))["rx_ignored"] == "1"
        b2.ok("start")
        for n in range(1, 6):
            inject(n)
        outputs = b2.read_until(lambda line: line.startswith("TS1 evt output inference=5 "))
        assert [fields(e)["inference"] for e in outputs if " output " in e] == [
            "1", "2", "3", "4", "5"
        ]  # fmt: skip
        assert fields(b1.ok("stats"))["tensors_in"] == "6"
        assert handle.process.stdin is not None
        handle.process.stdin.close()
        assert handle.process.wait(10.0) == 0
