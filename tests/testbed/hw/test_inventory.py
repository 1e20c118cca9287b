"""boards.toml: valid inventories, every validation error, ports and USB serial numbers."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial.tools.list_ports
from serial.tools.list_ports_common import ListPortInfo

from tinysplit.errors import BoardError, ConfigError
from tinysplit.testbed.hw.inventory import (
    BoardSpec,
    EmulatorSpec,
    Inventory,
    PowerSpec,
    load_inventory,
    parse_inventory,
)
from tinysplit.testbed.hw.serial_port import find_serial_number, list_serial_ports

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "boards.toml"

TWO_BOARDS = """
transport = "ble"

[[board]]
name = "b1"
stage = 1
port = "socket://localhost:7001"

[[board]]
name = "b2"
stage = 2
port = "socket://localhost:7002"
"""

EMULATED = """
[transport]
kind = "espnow"

[transport.espnow]
channel = 6

[transport.ble]
att_mtu = 517

[[board]]
name = "e3"
stage = 3

[[board]]
name = "e1"
stage = 1
mac = "02-00-00-00-00-01"
position_m = [0, 1.5]

[[board]]
name = "e2"
stage = 2
scribe_line = 5
position_m = [1, 2, 3]

[scribe]
pulse_unit_us = 20

[power]
meter = "scribe-ina"
supply_v = 5

[emulator]
time_scale = 1
seed = 7
"""


def write(tmp_path: Path, text: str, name: str = "boards.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str, pattern: str, *, check_ports: bool = False) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=pattern) as info:
        load_inventory(path, check_ports=check_ports)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message
    return message


def board(name: str, stage: int | str, extra: str = "", port: str | None = None) -> str:
    where = f'port = "{port or f"socket://localhost:{7000 + sum(map(ord, name))}"}"'
    return f'\n[[board]]\nname = "{name}"\nstage = {stage}\n{where}\n{extra}\n'


HEAD = 'transport = "ble"\n'


# ------------------------------------------------------------------------------ valid files


def test_example_inventory_loads_without_ports() -> None:
    inventory = load_inventory(EXAMPLE, check_ports=False)
    assert inventory.transport == "ble"
    assert inventory.stages == 5
    assert [b.stage for b in inventory.boards] == [1, 2, 3, 4, 5]
    assert [b.name for b in inventory.boards] == ["s3-a", "s3-b", "s3-c", "s3-d", "s3-e"]
    assert inventory.boards[0].port is not None and inventory.boards[1].serial_number
    assert inventory.scribe is not None and inventory.scribe.lines == {k: k for k in range(1, 6)}
    assert inventory.power == PowerSpec(meter="scribe-ina", supply_v=3.3)
    assert inventory.transport_settings["att_mtu"] == 517
    assert inventory.emulator is None and not inventory.emulated


def test_example_inventory_with_port_check_names_the_missing_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(serial.tools.list_ports, "comports", lambda *a, **k: [])
    with pytest.raises(ConfigError, match=r"board 's3-a': unknown port /dev/serial/by-id/"):
        load_inventory(EXAMPLE)


def test_emulated_inventory(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, EMULATED))  # check_ports is moot
    assert inventory.emulated
    assert inventory.emulator == EmulatorSpec(time_scale=1.0, seed=7)
    assert [b.name for b in inventory.boards] == ["e1", "e2", "e3"]
    assert inventory.board(1).mac == "02:00:00:00:00:01"
    assert inventory.board(1).position_m == (0.0, 1.5)
    assert inventory.board(2).position_m == (1.0, 2.0, 3.0)
    assert all(b.port is None and b.serial_number is None for b in inventory.boards)
    # scribe lines default to the stage; explicit ones are kept
    assert [b.scribe_line for b in inventory.boards] == [1, 5, 3]
    assert inventory.scribe is not None
    assert inventory.scribe.lines == {1: 1, 2: 5, 3: 3}
    assert inventory.scribe.pulse_unit_us == 20
    assert inventory.power.supply_v == 5.0 and isinstance(inventory.power.supply_v, float)
    assert inventory.transport == "espnow"
    assert inventory.transport_settings == {"channel": 6}
    assert inventory.settings_for("ble") == {"att_mtu": 517}
    assert inventory.settings_for("wifi") == {}


def test_minimal_inventory_defaults(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, TWO_BOARDS))  # URLs are not checked
    assert inventory.scribe is None
    assert inventory.power == PowerSpec()
    assert inventory.transport_settings == {}
    assert [b.scribe_line for b in inventory.boards] == [None, None]
    with pytest.raises(ConfigError, match="no stage 3"):
        inventory.board(3)


@pytest.mark.parametrize("source", ["example", "emulated"])
def test_to_dict_round_trips(tmp_path: Path, source: str) -> None:
    path = EXAMPLE if source == "example" else write(tmp_path, EMULATED)
    inventory = load_inventory(path, check_ports=False)
    again = parse_inventory(inventory.to_dict(), path=path)
    assert again == inventory


def test_ports_that_exist_pass_the_check(tmp_path: Path, pty_pair: tuple[int, str]) -> None:
    _, pty_path = pty_pair
    link = tmp_path / "by-id-board"
    link.symlink_to(pty_path)
    text = HEAD + board("b1", 1, port=str(link)) + board("b2", 2, port="loop://")
    inventory = load_inventory(write(tmp_path, text))
    assert inventory.board(1).port == str(link)


def test_dataclasses_validate_on_their_own() -> None:
    with pytest.raises(ConfigError, match="bad MAC"):
        BoardSpec(name="x", stage=1, mac="01:02:03")
    with pytest.raises(ConfigError, match="no \\[\\[board\\]\\] tables"):
        Inventory(path=Path("inv.toml"), transport="ble", boards=())
    spec = BoardSpec(name="x", stage=1, mac="AA-BB-CC-DD-EE-FF")
    assert spec.mac == "aa:bb:cc:dd:ee:ff"


# ------------------------------------------------------------------------------ errors


def test_unreadable_and_bad_toml(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=f"^{re.escape(str(missing))}: cannot read"):
        load_inventory(missing)
    load_error(tmp_path, "transport = \n", "not valid TOML")


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("speed = 3\n" + TWO_BOARDS, r"unknown key 'speed' \(valid: transport, board,"),
        (TWO_BOARDS.replace('transport = "ble"', ""), "missing transport"),
        (TWO_BOARDS.replace('"ble"', '"zigbee"'), "unknown transport 'zigbee'"),
        (TWO_BOARDS.replace('"ble"', "3"), "transport must be a name or a"),
        (
            TWO_BOARDS.replace('transport = "ble"', "[transport]\nble = {}"),
            r"\[transport\] needs kind",
        ),
        (
            TWO_BOARDS.replace('transport = "ble"', '[transport]\nkind = "ble"\nlora = {}'),
            r"\[transport\]: unknown key 'lora'",
        ),
        (
            TWO_BOARDS.replace('transport = "ble"', '[transport]\nkind = "ble"\nble = 1'),
            r"\[transport.ble\] must be a table",
        ),
        (HEAD, r"no \[\[board\]\] tables"),
        (HEAD + "board = 3\n", r"'board' must be \[\[board\]\] tables"),
        (HEAD + "[[board]]\nstage = 1\n", "board #1: missing name"),
        (HEAD + board("b1", 1, "colour = 'red'"), r"board 'b1': unknown key 'colour'"),
        (HEAD + '[[board]]\nname = "b1"\nport = "loop://"\n', "board 'b1': missing stage"),
        (HEAD + board("b 1", 1), "board name 'b 1' must be letters"),
        (HEAD + board("b1", 0), "board 'b1': stage must be an integer 1..16, got 0"),
        (HEAD + board("b1", 17), "stage must be an integer 1..16, got 17"),
        (HEAD + board("b1", '"1"'), "stage must be an integer 1..16, got '1'"),
        (HEAD + board("b1", "true"), "stage must be an integer 1..16, got True"),
        (HEAD + board("b1", 1) + board("b1", 2), "duplicate board name 'b1'"),
        (
            HEAD + board("b1", 1) + board("b2", 2) + board("b3", 2),
            "duplicate stage 2: boards 'b2' and 'b3'",
        ),
        (
            HEAD + board("b1", 1) + board("b3", 3),
            r"missing stage 2: the boards have stages 1, 3, a pipeline of 2 boards needs",
        ),
        (HEAD + board("b2", 2), "missing stage 1"),
        (HEAD + board("b1", 1, 'mac = "f4:12:fa:4f:8b"'), "board 'b1': bad MAC 'f4:12:fa:4f:8b'"),
        (HEAD + board("b1", 1, 'mac = "f4:12:fa:4f:8b:zz"'), "bad MAC"),
        (HEAD + board("b1", 1, 'mac = "f4:12-fa:4f:8b:30"'), "bad MAC"),
        (HEAD + board("b1", 1, "mac = 12"), "bad MAC 12"),
        (
            HEAD
            + board("b1", 1, 'mac = "02:00:00:00:00:01"')
            + board("b2", 2, 'mac = "02-00-00-00-00-01"'),
            "duplicate MAC '02:00:00:00:00:01': boards 'b1' and 'b2'",
        ),
        (
            HEAD + board("b1", 1, 'serial_number = "X1"'),
            "board 'b1': give port or serial_number, not both",
        ),
        (
            HEAD + '[[board]]\nname = "b1"\nstage = 1\n',
            "board 'b1': give its port or serial_number",
        ),
        (
            HEAD + '[[board]]\nname = "b1"\nstage = 1\nport = " "\n',
            "board 'b1': port must be a non-empty string",
        ),
        (HEAD + board("b1", 1, "position_m = [1]"), "board 'b1': position_m must be 2 or 3"),
        (HEAD + board("b1", 1, "position_m = ['a', 1]"), "position_m must be 2 or 3 numbers"),
        (HEAD + board("b1", 1, "position_m = 1.0"), "position_m must be 2 or 3 numbers"),
        (
            HEAD + board("b1", 1, port="loop://") + board("b2", 2, port="loop://"),
            r"board 'b1' and board 'b2' are on one port \(loop://\)",
        ),
        (
            HEAD + '[[board]]\nname = "b1"\nstage = 1\nserial_number = "A"\n'
            '[[board]]\nname = "b2"\nstage = 2\nserial_number = "A"\n',
            "board 'b1' and board 'b2' are on one port \\(serial number 'A'\\)",
        ),
        (
            HEAD
            + board("b1", 1, "scribe_line = 1", port="loop://")
            + '[scribe]\nport = "loop://"\n',
            r"board 'b1' and \[scribe\] are on one port",
        ),
        (HEAD + board("b1", 1, "scribe_line = 2"), r"has a scribe_line but there is no \[scribe\]"),
        (
            HEAD + board("b1", 1, "scribe_line = 9") + '[scribe]\nport = "socket://s:1"\n',
            "board 'b1': scribe_line must be an integer 1..8, got 9",
        ),
        (
            HEAD
            + board("b1", 1, "scribe_line = 2")
            + board("b2", 2, "scribe_line = 2")
            + '[scribe]\nport = "socket://s:1"\n',
            "duplicate scribe_line 2: boards 'b1' and 'b2'",
        ),
        (
            # b2 defaults to line 2, which b1 already uses
            HEAD
            + board("b1", 1, "scribe_line = 2")
            + board("b2", 2)
            + '[scribe]\nport = "socket://s:1"\n',
            "duplicate scribe_line 2: boards 'b1' and 'b2'",
        ),
        (HEAD + board("b1", 1) + "[scribe]\npulse_unit_us = 10\n", r"\[scribe\]: give its port"),
        (
            HEAD + board("b1", 1) + '[scribe]\nport = "loop://"\nserial_number = "S"\n',
            r"\[scribe\]: give port or serial_number, not both",
        ),
        (
            HEAD + board("b1", 1) + '[scribe]\nport = "loop://"\npulse_unit_us = 0\n',
            r"\[scribe\]: pulse_unit_us must be an integer 1..1000 us, got 0",
        ),
        (HEAD + board("b1", 1) + "[scribe]\nbaud = 1\n", r"\[scribe\]: unknown key 'baud'"),
        (HEAD + "scribe = 1\n" + board("b1", 1), r"scribe must be a \[scribe\] table"),
        (HEAD + board("b1", 1) + '[power]\nmeter = "fluke"\n', r"unknown meter 'fluke' \(valid"),
        (HEAD + board("b1", 1) + "[power]\nvolts = 3\n", r"\[power\]: unknown key 'volts'"),
        (
            HEAD + board("b1", 1) + '[power]\nmeter = "scribe-ina"\n',
            r"meter = 'scribe-ina' needs a \[scribe\] table",
        ),
        (
            HEAD + board("b1", 1) + '[power]\nmeter = "none"\nport = "loop://"\n',
            r"\[power\]: port is only for meter = 'ppk2', not 'none'",
        ),
        (
            HEAD + board("b1", 1) + "[power]\nsupply_v = 0\n",
            r"supply_v must be a number in \(0, 5.5\] V, got 0",
        ),
        (HEAD + board("b1", 1) + "[power]\nsupply_v = 'x'\n", "supply_v must be a number"),
        (
            HEAD + board("b1", 1, port="loop://") + '[power]\nmeter = "ppk2"\nport = "loop://"\n',
            r"board 'b1' and \[power\] ppk2 are on one port",
        ),
        (
            HEAD + board("b1", 1) + "[emulator]\n",
            r"board 'b1': no port or serial_number with \[emulator\]",
        ),
        (
            HEAD + '[[board]]\nname = "b1"\nstage = 1\n[emulator]\ntime_scale = -1\n',
            r"\[emulator\]: time_scale must be a number >= 0, got -1",
        ),
        (
            HEAD + '[[board]]\nname = "b1"\nstage = 1\n[emulator]\nseed = 1.5\n',
            r"\[emulator\]: seed must be an integer >= 0, got 1.5",
        ),
        (
            HEAD + '[[board]]\nname = "b1"\nstage = 1\n[emulator]\nspeed = 1\n',
            r"\[emulator\]: unknown key 'speed'",
        ),
        (
            HEAD + '[[board]]\nname = "b1"\nstage = 1\n[power]\nmeter = "ppk2"\n[emulator]\n',
            "the emulator has no ppk2",
        ),
    ],
)
def test_validation_errors(tmp_path: Path, text: str, pattern: str) -> None:
    load_error(tmp_path, text, pattern)


def test_unknown_port_path(tmp_path: Path) -> None:
    text = HEAD + board("b1", 1, port=str(tmp_path / "ttyACM9"))
    message = load_error(
        tmp_path, text, "board 'b1': unknown port .*ttyACM9: no such device", check_ports=True
    )
    assert "list_ports" in message
    # Not checked when asked not to.
    assert load_inventory(tmp_path / "boards.toml", check_ports=False).board(1).port


def test_unknown_scribe_and_ppk2_ports(tmp_path: Path) -> None:
    base = HEAD + board("b1", 1, port="loop://")
    load_error(
        tmp_path,
        base + f'[scribe]\nport = "{tmp_path}/scribe"\n',
        r"\[scribe\]: unknown port",
        check_ports=True,
    )
    load_error(
        tmp_path,
        base + f'[power]\nmeter = "ppk2"\nport = "{tmp_path}/ppk2"\n',
        r"\[power\] ppk2: unknown port",
        check_ports=True,
    )


# ------------------------------------------------------------------------------ serial numbers


def port_info(device: str, serial_number: str | None) -> ListPortInfo:
    info = ListPortInfo(device, skip_link_detection=True)
    info.serial_number = serial_number
    return info


@pytest.fixture
def plugged(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[ListPortInfo]]:
    """What ``serial.tools.list_ports.comports()`` reports (the lowest boundary)."""
    ports = [
        port_info("/dev/ttyACM0", "F4:12:FA:4F:8B:30"),
        port_info("/dev/ttyACM1", "F4:12:FA:4F:8C:74"),
        port_info("/dev/ttyS0", None),
    ]
    monkeypatch.setattr(serial.tools.list_ports, "comports", lambda *a, **k: list(ports))
    yield ports


SERIAL_BOARDS = HEAD + (
    '[[board]]\nname = "b1"\nstage = 1\nserial_number = "F4:12:FA:4F:8B:30"\n'
    '[[board]]\nname = "b2"\nstage = 2\nserial_number = "{second}"\n'
)


def test_serial_numbers_found(tmp_path: Path, plugged: list[ListPortInfo]) -> None:
    assert list_serial_ports()[0] == ("/dev/ttyACM0", "F4:12:FA:4F:8B:30")
    assert find_serial_number("F4:12:FA:4F:8C:74") == "/dev/ttyACM1"
    inventory = load_inventory(write(tmp_path, SERIAL_BOARDS.format(second="F4:12:FA:4F:8C:74")))
    assert inventory.board(2).serial_number == "F4:12:FA:4F:8C:74"
    assert inventory.board(2).port is None  # resolved when opened, so re-plugging is fine


def test_serial_number_not_plugged_in(tmp_path: Path, plugged: list[ListPortInfo]) -> None:
    message = load_error(
        tmp_path,
        SERIAL_BOARDS.format(second="DEADBEEF"),
        "board 'b2': no serial port with serial number 'DEADBEEF' is plugged in",
        check_ports=True,
    )
    assert "F4:12:FA:4F:8B:30 (/dev/ttyACM0)" in message and "ttyS0" not in message


def test_serial_number_on_two_ports(plugged: list[ListPortInfo]) -> None:
    plugged.append(port_info("/dev/ttyACM7", "F4:12:FA:4F:8C:74"))
    with pytest.raises(
        BoardError,
        match=r"board b2: serial number .* is on several ports: /dev/ttyACM1, /dev/ttyACM7",
    ):
        find_serial_number("F4:12:FA:4F:8C:74", label="b2")


def test_no_serial_ports_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serial.tools.list_ports, "comports", lambda *a, **k: [])
    with pytest.raises(BoardError, match=r"serial numbers present: none\)"):
        find_serial_number("X")


def test_symlinked_ports_are_one_port(tmp_path: Path, pty_pair: tuple[int, str]) -> None:
    _, pty_path = pty_pair
    link = tmp_path / "by-id"
    link.symlink_to(pty_path)
    text = HEAD + board("b1", 1, port=str(link)) + board("b2", 2, port=pty_path)
    message = load_error(tmp_path, text, "board 'b1' and board 'b2' are on one port")
    assert os.path.realpath(pty_path) in message
