"""The console protocol host side, with real pyserial on ptys against scripted fake boards."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import serial.tools.list_ports
from serial.tools.list_ports_common import ListPortInfo

from tests.testbed.hw.conftest import FakeBoard, Lines
from tinysplit.errors import BoardError
from tinysplit.testbed.hw.console import Console, ConsoleCommandError, Event, parse_line
from tinysplit.testbed.hw.serial_port import open_serial

MakeBoard = Callable[..., FakeBoard]


@pytest.fixture
def connect() -> Iterator[Callable[..., Console]]:
    """Open a board's pty with pyserial and wrap it in a Console; all closed at teardown."""
    consoles: list[Console] = []

    def make(board: FakeBoard, *, label: str = "b1 (stage 1)", timeout_s: float = 5.0) -> Console:
        stream = open_serial(port=board.port, serial_number=None, label=label)
        console = Console(stream, label=label, port=board.port, timeout_s=timeout_s)
        consoles.append(console)
        return console

    yield make
    for console in consoles:
        console.close()


def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait until the console's reader thread has caught up (no timing is asserted)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


# ------------------------------------------------------------------------------ commands


def test_command_replies_ok_and_err(fake_board: MakeBoard, connect: Callable[..., Console]) -> None:
    board = fake_board(
        {
            "status": "TS1 ok state=idle links=down busy=0",
            "help read": "TS1 ok read <inference> <offset> <len>",
            "config stage=3": "TS1 err range stage 3 is past stages 2",
        }
    )
    console = connect(board)
    status = console.command("status")
    assert status.ok and status.code is None
    assert status.fields == {"state": "idle", "links": "down", "busy": "0"}
    assert status.words == ("state=idle", "links=down", "busy=0")
    assert status.require() is status
    assert status.raw == "TS1 ok state=idle links=down busy=0"
    assert console.command("help read").message == "read <inference> <offset> <len>"

    err = console.command("config stage=3")
    assert not err.ok and err.code == "range" and err.message == "stage 3 is past stages 2"
    with pytest.raises(ConsoleCommandError) as info:
        err.require()
    assert info.value.code == "range" and info.value.command == "config stage=3"
    assert str(info.value) == (
        f"board b1 (stage 1) on {board.port}: 'config stage=3' failed: "
        "err range stage 3 is past stages 2"
    )
    assert isinstance(info.value, BoardError)
    unknown = console.command("frob")
    assert unknown.code == "unknown" and unknown.message == "no command frob"
    assert board.received == ["status", "help read", "config stage=3", "frob"]


def test_events_before_a_reply_are_queued(
    fake_board: MakeBoard, connect: Callable[..., Console]
) -> None:
    board = fake_board(
        {
            "end": [
                "TS1 evt mark mark=rx_start inference=42 t_us=5000000",
                "TS1 evt mark mark=rx_end inference=42 t_us=5000000",
                "TS1 ok inference=42",
                "TS1 evt mark mark=infer_start inference=42 t_us=5000010",
            ],
            "rssi": "TS1 ok up=none down=-58",
        }
    )
    console = connect(board)
    assert console.command("end").fields == {"inference": "42"}
    marks = console.pop_events("mark")
    assert [e.fields["mark"] for e in marks[:2]] == ["rx_start", "rx_end"]
    assert all(e.name == "mark" and e.host_time_s > 0 for e in marks)
    board.event("rtt", link="down", rtt_us=1500)
    board.event("error", what="send_failures", total=1)
    got = console.wait_event("error", timeout_s=5)
    assert got.fields == {"what": "send_failures", "total": "1"}
    rtt = console.wait_event("rtt", timeout_s=5, match=lambda e: e.fields["link"] == "down")
    assert rtt.fields["rtt_us"] == "1500"
    assert console.command("rssi").fields == {"up": "none", "down": "-58"}
    left = console.pop_events()
    assert [e.fields.get("mark") for e in left] in ([], ["infer_start"])


def test_log_lines_and_garbage_are_skipped_and_counted(
    fake_board: MakeBoard, connect: Callable[..., Console]
) -> None:
    noisy = [
        "I (1234) tinysplit: links up",
        "\x1b[0;32mI (1240) NimBLE: connection established\x1b[0m",
        "TS1 bogus kind",
        "TS1 err",
        "TS1 err BAD code",
        "TS1 evt",
        "TS1 evt Bad",
        "TS1 ok tab\there",
    ]
    board = fake_board({"status": [*noisy, "TS1 ok state=running"]})
    console = connect(board)
    board.garbage(b"\xff\xfe\x80 undecodable\r\n")
    board.garbage(b"\n\r\n")  # empty lines are neither log nor garbage
    assert console.command("status").fields == {"state": "running"}
    assert console.log_lines == 2
    assert console.garbage_lines == 7
    assert console.recent_log[-1].endswith("connection established\x1b[0m")

    # Noise glued before a protocol line: the noise is garbage, the line still counts.
    board.responder = lambda line: None
    board.garbage(b"\x00\xffESP-ROM:esp32s3-20210327TS1 evt output inference=1 bytes=2\n")
    assert console.wait_event("output", timeout_s=5).fields["bytes"] == "2"
    assert console.garbage_lines == 8

    # An endless line with no newline is dropped as garbage once it is absurdly long.
    board.garbage(b"x" * 20000 + b"\nTS1 evt done\n")
    console.wait_event("done", timeout_s=5)
    assert console.garbage_lines == 9
    assert console.log_lines == 2


def test_parse_line_grammar() -> None:
    reply = parse_line("TS1 ok cv56/t4Hiv4=")
    assert reply is not None and not isinstance(reply, Event)
    assert reply.words == ("cv56/t4Hiv4=",)
    assert reply.fields == {}  # base64 padding is not a key=value pair
    event = parse_line("TS1 evt power dev=1 t_ns=10000000 bus_mv=3287 current_ua=-5")
    assert isinstance(event, Event)
    assert event.fields["current_ua"] == "-5"
    assert parse_line("TS1 ok") is not None
    assert parse_line("TS1 ") is None
    assert parse_line("TS1 OK x=1") is None


def test_silent_board_times_out_naming_board_port_and_command(
    fake_board: MakeBoard, connect: Callable[..., Console]
) -> None:
    board = fake_board({"start": [], "status": "TS1 ok state=idle"})
    console = connect(board, label="b3 (stage 3)")
    board.log("E (99) tinysplit: stage task stuck")
    until(lambda: console.log_lines == 1)
    with pytest.raises(BoardError) as info:
        console.command("start", timeout_s=0.2)
    message = str(info.value)
    assert message.startswith(f"board b3 (stage 3) on {board.port}: no reply to 'start' within")
    assert "stage task stuck" in message
    # A late answer to the timed-out command is dropped, never taken for the next reply.
    board.send_line("TS1 ok state=running")
    until(lambda: console.stray_replies == 1)
    assert console.command("status").fields == {"state": "idle"}
    with pytest.raises(BoardError, match=r"no 'evt output' within 0.1 s"):
        console.wait_event("output", timeout_s=0.1)


def test_unplug_mid_command_names_board_and_port(
    fake_board: MakeBoard, connect: Callable[..., Console]
) -> None:
    def responder(line: str) -> Lines:
        if line == "stats":
            board.unplug()  # pulled while the host waits for the reply
            return None
        return "TS1 ok"

    board = fake_board(responder)
    console = connect(board, label="b2 (stage 2)")
    board.event("mark", mark="rx_start", inference=0, t_us=1)
    assert console.command("stop").ok
    with pytest.raises(BoardError) as info:
        console.command("stats")
    message = str(info.value)
    assert message.startswith(f"board b2 (stage 2) on {board.port}: unplugged or closed")
    assert "'stats'" in message
    # Events that arrived before the port failed are still there; further use fails clearly.
    assert console.wait_event("mark", timeout_s=1).fields["mark"] == "rx_start"
    with pytest.raises(BoardError, match="unplugged or closed"):
        console.command("status")
    with pytest.raises(BoardError, match=r"unplugged or closed.*waiting for evt output"):
        console.wait_event("output", timeout_s=5)


def test_unplug_while_idle_and_close(
    fake_board: MakeBoard, connect: Callable[..., Console]
) -> None:
    board = fake_board()
    console = connect(board)
    board.unplug()
    with pytest.raises(BoardError, match=f"board b1 \\(stage 1\\) on {board.port}: unplugged"):
        console.wait_event("output", timeout_s=5)
    console.close()
    console.close()  # idempotent


def test_closed_console_refuses_commands(
    fake_board: MakeBoard, connect: Callable[..., Console]
) -> None:
    console = connect(fake_board())
    console.close()
    with pytest.raises(BoardError, match="closed by the host"):
        console.command("status")


def test_invalid_command_lines(fake_board: MakeBoard, connect: Callable[..., Console]) -> None:
    console = connect(fake_board())
    for bad in ("", "status\nstart", "caf\u00e9", "x" * 1025):
        with pytest.raises(ValueError, match="not a valid console command line"):
            console.command(bad)


def test_many_events_while_no_command_waits(
    fake_board: MakeBoard, connect: Callable[..., Console]
) -> None:
    board = fake_board({"status": "TS1 ok running=1"})
    console = connect(board)
    burst = b"".join(
        f"TS1 evt mark line={i % 5 + 1} mark=rx_start t_ns={i * 1000}\n".encode()
        for i in range(3000)
    )
    board.send(burst)  # about 150 kB: more than a pty buffers, so only a reader can drain it
    assert console.command("status").ok
    marks = console.pop_events("mark")
    assert len(marks) == 3000
    assert [int(e.fields["t_ns"]) for e in marks] == [i * 1000 for i in range(3000)]


# ------------------------------------------------------------------------------ hello


def test_hello_checks_the_protocol_version(
    fake_board: MakeBoard, connect: Callable[..., Console]
) -> None:
    good = connect(fake_board(hello="fw=v0.3.0 transport=ble stage=1 stages=5"))
    assert good.hello() == {
        "proto": "1",
        "fw": "v0.3.0",
        "transport": "ble",
        "stage": "1",
        "stages": "5",
    }
    board = fake_board({"hello": "TS1 ok proto=2 fw=v9"})
    with pytest.raises(BoardError, match=r"protocol proto=2, this host speaks proto=1"):
        connect(board, label="b4").hello()
    board = fake_board({"hello": "TS1 ok fw=v0"})
    with pytest.raises(BoardError, match="proto=None"):
        connect(board).hello()


# ------------------------------------------------------------------------------ inject / read


class StageOne:
    """Stage 1 and last stage in one: the inject/data/end/read commands of docs/protocol.md.

    Its "model" reverses the input and halves it (int16), so the output differs from the input.
    """

    def __init__(self, values: int) -> None:
        self.in_bytes = 2 * values
        self.announced: tuple[int, int, int] | None = None  # inference, exponent, crc
        self.received = bytearray()
        self.data_lines = 0
        self.output: tuple[int, bytes] | None = None

    def __call__(self, line: str) -> Lines:
        word, *args = line.split(" ")
        if word == "hello":
            return f"TS1 ok proto=1 stage=1 stages=1 in={self.in_bytes // 2} in_exp=-7"
        if word == "inject":
            inference, exponent, size, crc = int(args[0]), int(args[1]), int(args[2]), args[3]
            if size != self.in_bytes:
                return f"TS1 err size input is {self.in_bytes} bytes"
            self.announced = (inference, exponent, int(crc, 16))
            self.received = bytearray()
            return "TS1 ok max_data=512"
        if word == "data":
            if self.announced is None:
                return "TS1 err state no inject in progress"
            piece = base64.b64decode(args[1], validate=True)
            if int(args[0]) != len(self.received):
                return f"TS1 err range expected offset {len(self.received)}"
            if len(piece) > 512:
                return "TS1 err size chunk over 512 bytes"
            self.received += piece
            self.data_lines += 1
            return f"TS1 ok received={len(self.received)}"
        if word == "end":
            assert self.announced is not None
            inference, _, announced_crc = self.announced
            if zlib.crc32(bytes(self.received)) != announced_crc:
                self.announced = None
                return "TS1 err crc tensor CRC-32 differs"
            values = np.frombuffer(bytes(self.received), dtype="<i2")
            out = (values[::-1] // 2).astype("<i2").tobytes()
            self.output = (inference, out)
            return [
                f"TS1 evt mark mark=rx_start inference={inference} t_us=1",
                f"TS1 evt mark mark=rx_end inference={inference} t_us=2",
                f"TS1 ok inference={inference}",
                f"TS1 evt output inference={inference} exp=-9 bytes={len(out)} "
                f"crc32={zlib.crc32(out):08x}",
            ]
        if word == "read":
            if self.output is None:
                return "TS1 err state no output yet"
            inference, offset, length = (int(a) for a in args)
            if inference != self.output[0]:
                return f"TS1 err range latest output is inference {self.output[0]}"
            chunk = self.output[1][offset : offset + length]
            return "TS1 ok " + base64.b64encode(chunk).decode()
        return f"TS1 err unknown no command {word}"


def test_inject_and_read_output_round_trip(
    fake_board: MakeBoard, connect: Callable[..., Console]
) -> None:
    values = np.arange(-700, 1300, 3, dtype=np.int16)[:666].reshape(1, 3, -1, 2)  # 666 values
    stage = StageOne(values.size)
    board = fake_board(stage)
    console = connect(board)
    console.hello()
    end = console.inject(42, -7, values)
    assert end.fields == {"inference": "42"}
    # 1332 bytes: 512 + 512 + 308, every line acknowledged with the bytes so far.
    assert stage.data_lines == 3
    assert bytes(stage.received) == values.astype("<i2").tobytes()
    assert [line.split(" ")[1] for line in board.received if line.startswith("data")] == [
        "0",
        "512",
        "1024",
    ]
    assert board.received[1] == f"inject 42 -7 1332 {zlib.crc32(stage.received):08x}"
    output = console.wait_event("output", timeout_s=5)
    nbytes, crc = int(output.fields["bytes"]), int(output.fields["crc32"], 16)
    data = console.read_output(42, nbytes, crc32=crc)
    expected = (values.ravel()[::-1] // 2).astype(np.int16)
    np.testing.assert_array_equal(np.frombuffer(data, dtype="<i2"), expected)
    assert [line for line in board.received if line.startswith("read")] == [
        "read 42 0 512",
        "read 42 512 512",
        "read 42 1024 308",
    ]
    assert [e.fields["mark"] for e in console.pop_events("mark")] == ["rx_start", "rx_end"]


def test_inject_refusals_and_bad_arguments(
    fake_board: MakeBoard, connect: Callable[..., Console]
) -> None:
    stage = StageOne(4)
    console = connect(fake_board(stage))
    with pytest.raises(ConsoleCommandError, match="err size input is 8 bytes") as info:
        console.inject(1, -7, np.zeros(5, dtype=np.int16))
    assert info.value.code == "size"
    with pytest.raises(ConsoleCommandError, match="err state no output yet"):
        console.read_output(1, 8)
    with pytest.raises(ValueError, match="int16"):
        console.inject(1, 0, np.zeros(4, dtype=np.int32))
    with pytest.raises(ValueError, match="inference"):
        console.inject(70000, 0, np.zeros(4, dtype=np.int16))
    with pytest.raises(ValueError, match="exponent"):
        console.inject(1, 200, np.zeros(4, dtype=np.int16))
    console.inject(7, 0, np.array([1, 2, 3, 4], dtype=np.int16))
    with pytest.raises(ConsoleCommandError, match="latest output is inference 7"):
        console.read_output(6, 8)


def test_read_output_checks_length_and_crc(
    fake_board: MakeBoard, connect: Callable[..., Console]
) -> None:
    payload = bytes(range(10))
    replies = {
        "read 1 0 10": "TS1 ok " + base64.b64encode(payload).decode(),
        "read 2 0 10": "TS1 ok " + base64.b64encode(payload[:6]).decode(),
        "read 3 0 10": "TS1 ok not*base64",
    }
    board = fake_board(replies)
    console = connect(board, label="b5 (stage 5)")
    assert console.read_output(1, 10, crc32=zlib.crc32(payload)) == payload
    with pytest.raises(BoardError, match="read back with CRC-32"):
        console.read_output(1, 10, crc32=zlib.crc32(payload) ^ 1)
    with pytest.raises(BoardError, match=r"board b5 \(stage 5\) on .*'read 2 0 10'.*not 10 bytes"):
        console.read_output(2, 10)
    with pytest.raises(BoardError, match="not 10 bytes of base64"):
        console.read_output(3, 10)


def test_inject_rejects_an_inconsistent_board(
    fake_board: MakeBoard, connect: Callable[..., Console]
) -> None:
    board = fake_board({"inject": "TS1 ok max_data=512", "data": "TS1 ok received=3"})
    with pytest.raises(BoardError, match="expected received=4"):
        connect(board).inject(0, 0, np.array([1, 2], dtype=np.int16))


# ------------------------------------------------------------------------------ opening ports


def test_open_serial_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = str(tmp_path / "ttyACM3")
    with pytest.raises(BoardError, match=f"board b1 on {missing}: cannot open the serial port"):
        open_serial(port=missing, serial_number=None, label="b1")
    with pytest.raises(BoardError, match="board b1: neither a port nor a serial number"):
        open_serial(port=None, serial_number=None, label="b1")
    info = ListPortInfo(missing, skip_link_detection=True)
    info.serial_number = "SN-1"
    monkeypatch.setattr(serial.tools.list_ports, "comports", lambda *a, **k: [info])
    with pytest.raises(BoardError, match=f"board b1 on {missing}: cannot open"):
        open_serial(port=None, serial_number="SN-1", label="b1")
    with pytest.raises(BoardError, match="board b1: no serial port with serial number 'SN-2'"):
        open_serial(port=None, serial_number="SN-2", label="b1")


def test_open_by_serial_number_reaches_the_board(
    fake_board: MakeBoard, monkeypatch: pytest.MonkeyPatch
) -> None:
    board = fake_board({"status": "TS1 ok state=idle"})
    info = ListPortInfo(board.port, skip_link_detection=True)
    info.serial_number = "F4:12:FA:4F:8B:30"
    monkeypatch.setattr(serial.tools.list_ports, "comports", lambda *a, **k: [info])
    stream = open_serial(port=None, serial_number="F4:12:FA:4F:8B:30", label="b1")
    with Console(stream, label="b1", port=board.port) as console:
        assert console.command("status").fields == {"state": "idle"}


def test_console_and_inventory_do_not_import_pyserial() -> None:
    # Only serial_port.py imports serial; the inventory imports it only to check serial numbers.
    code = (
        "import sys, tinysplit.testbed.hw.console, tinysplit.testbed.hw.inventory; "
        "print(','.join(m for m in ('serial', 'esptool', 'bleak') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""
