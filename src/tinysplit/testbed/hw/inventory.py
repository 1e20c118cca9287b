"""The board inventory, ``boards.toml``: which board runs which stage, and how to reach it.

Layout (see ``docs/examples/boards.toml`` for a commented example)::

    [transport]
    kind = "ble"                    # ble, wifi or espnow; without settings, a top-level
                                    # `transport = "ble"` does too
    [transport.ble]                 # optional free settings per transport, kept in the manifest
    att_mtu = 517

    [[board]]                       # one per pipeline board, stages 1..n each exactly once
    name = "b1"                     # letters, digits, '-', '_', '.'
    stage = 1
    port = "/dev/ttyACM0"           # a device path or pyserial URL, or instead:
    # serial_number = "F4:12:FA:4F:8B:30"   # the USB serial number, looked up when opening
    mac = "f4:12:fa:4f:8b:30"       # optional: the radio's MAC (ESP-NOW peers, BLE addresses)
    position_m = [0.0, 0.0]         # optional: where it stands, metres (2 or 3 coordinates)
    scribe_line = 1                 # optional: the scribe input it is wired to (default: stage)

    [scribe]                        # optional: the timestamping board (port or serial_number)
    port = "/dev/ttyACM5"
    pulse_unit_us = 10

    [power]                         # optional: meter = "none" (default), "scribe-ina" or "ppk2"
    meter = "scribe-ina"
    supply_v = 3.3

    [emulator]                      # marks an emulated testbed: no ports, the emulator makes them
    time_scale = 0.0
    seed = 0

TOML cannot hold both ``transport = "ble"`` and a ``[transport.ble]`` table, hence the
``[transport]`` table with ``kind`` when there are settings.

Every problem is a :class:`~tinysplit.errors.ConfigError` of one line naming the file.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tinysplit.errors import BoardError, ConfigError
from tinysplit.testbed.hw.inventory_specs import (
    METERS,
    TRANSPORTS,
    BoardSpec,
    EmulatorSpec,
    PowerSpec,
    ScribeSpec,
)

__all__ = [
    "METERS",
    "TRANSPORTS",
    "BoardSpec",
    "EmulatorSpec",
    "Inventory",
    "PowerSpec",
    "ScribeSpec",
    "load_inventory",
    "parse_inventory",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Inventory:
    """A validated inventory.

    Attributes:
        path: the file it was read from.
        transport: the transport the boards' firmware runs: ``ble``, ``wifi`` or ``espnow``.
        boards: the pipeline boards sorted by stage, stages 1..n.
        scribe: the scribe, if any.
        power: the power meter (``meter = "none"`` when the file has no ``[power]``).
        emulator: set for an emulated testbed (then no ports are given).
        transport_settings: the ``[transport.<transport>]`` table of the selected transport.
        all_transport_settings: every ``[transport.<name>]`` table by transport name (an
            extension of the lead's contract, see :meth:`settings_for`).
    """

    path: Path
    transport: str
    boards: tuple[BoardSpec, ...]
    scribe: ScribeSpec | None = None
    power: PowerSpec = field(default_factory=PowerSpec)
    emulator: EmulatorSpec | None = None
    transport_settings: Mapping[str, Any] = field(default_factory=dict)
    all_transport_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"{self.path}:"
        if self.transport not in TRANSPORTS:
            raise ConfigError(
                f"{where} unknown transport {self.transport!r} (valid: {', '.join(TRANSPORTS)})"
            )
        if not self.boards:
            raise ConfigError(f"{where} no [[board]] tables: list the pipeline boards")
        boards = tuple(sorted(self.boards, key=lambda b: b.stage))
        object.__setattr__(self, "boards", boards)
        _check_unique(where, "board name", [(b.name, b.name) for b in boards])
        _check_unique(where, "stage", [(b.stage, b.name) for b in boards])
        for k in range(1, len(boards) + 1):
            if boards[k - 1].stage != k:
                stages = ", ".join(str(b.stage) for b in boards)
                raise ConfigError(
                    f"{where} missing stage {k}: the boards have stages {stages}, "
                    f"a pipeline of {len(boards)} boards needs stages 1..{len(boards)}"
                )
        _check_unique(where, "MAC", [(b.mac, b.name) for b in boards if b.mac])
        self._check_endpoints(where)
        self._check_scribe(where)
        if self.power.meter == "scribe-ina" and self.scribe is None:
            raise ConfigError(f"{where} [power] meter = 'scribe-ina' needs a [scribe] table")
        if self.power.meter == "ppk2" and self.emulator is not None:
            raise ConfigError(
                f"{where} the emulator has no ppk2; use meter = 'scribe-ina' or 'none'"
            )
        if not self.transport_settings and self.transport in self.all_transport_settings:
            object.__setattr__(
                self, "transport_settings", self.all_transport_settings[self.transport]
            )

    def _check_endpoints(self, where: str) -> None:
        named: list[tuple[str, BoardSpec | ScribeSpec | PowerSpec]] = [
            (f"board {b.name!r}", b) for b in self.boards
        ]
        if self.scribe is not None:
            named.append(("[scribe]", self.scribe))
        if self.power.port is not None:
            named.append(("[power] ppk2", self.power))
        ports: list[tuple[str, str]] = []
        for who, spec in named:
            serial_number = getattr(spec, "serial_number", None)
            if self.emulator is not None:
                if spec.port is not None or serial_number is not None:
                    raise ConfigError(
                        f"{where} {who}: no port or serial_number with [emulator] "
                        "(the emulator creates the ports)"
                    )
            elif spec.port is None and serial_number is None and not isinstance(spec, PowerSpec):
                raise ConfigError(f"{where} {who}: give its port or serial_number")
            if spec.port is not None:
                ports.append((_port_key(spec.port), who))
            if serial_number is not None:
                ports.append((f"serial number {serial_number!r}", who))
        seen: dict[str, str] = {}
        for key, who in ports:
            if key in seen:
                raise ConfigError(f"{where} {seen[key]} and {who} are on one port ({key})")
            seen[key] = who

    def _check_scribe(self, where: str) -> None:
        if self.scribe is None:
            for b in self.boards:
                if b.scribe_line is not None:
                    raise ConfigError(
                        f"{where} board {b.name!r} has a scribe_line but there is no [scribe]"
                    )
            return
        boards = tuple(
            b if b.scribe_line is not None else replace(b, scribe_line=b.stage) for b in self.boards
        )
        object.__setattr__(self, "boards", boards)
        _check_unique(where, "scribe_line", [(b.scribe_line, b.name) for b in boards])
        lines = {b.stage: b.scribe_line for b in boards if b.scribe_line is not None}
        if self.scribe.lines and self.scribe.lines != lines:
            raise ConfigError(f"{where} [scribe] lines {self.scribe.lines} differ from the boards'")
        object.__setattr__(self, "scribe", replace(self.scribe, lines=lines))

    @property
    def stages(self) -> int:
        """Number of pipeline stages (boards)."""
        return len(self.boards)

    @property
    def emulated(self) -> bool:
        """True for an emulated testbed (``[emulator]`` present)."""
        return self.emulator is not None

    def board(self, stage: int) -> BoardSpec:
        """The board of a 1-based stage.

        Raises:
            ConfigError: no such stage.
        """
        if not 1 <= stage <= len(self.boards):
            raise ConfigError(f"{self.path}: no stage {stage} (stages 1..{len(self.boards)})")
        return self.boards[stage - 1]

    def settings_for(self, transport: str) -> Mapping[str, Any]:
        """The ``[transport.<transport>]`` settings (empty when the file has none)."""
        return self.all_transport_settings.get(transport, {})

    def to_dict(self) -> dict[str, Any]:
        """The inventory as TOML-shaped data (for run manifests); ``parse_inventory`` reads it."""
        data: dict[str, Any] = {
            "transport": {"kind": self.transport, **dict(self.all_transport_settings)},
            "board": [b.to_dict() for b in self.boards],
            "power": self.power.to_dict(),
        }
        if self.scribe is not None:
            data["scribe"] = self.scribe.to_dict()
        if self.emulator is not None:
            data["emulator"] = self.emulator.to_dict()
        return data


def load_inventory(path: str | Path, *, check_ports: bool = True) -> Inventory:
    """Read and validate an inventory file.

    Args:
        path: the ``boards.toml`` file.
        check_ports: also check that every port path exists and every USB serial number is
            plugged in (pyserial URLs are not checked; moot with ``[emulator]``).

    Raises:
        ConfigError: unreadable file, bad TOML, or any validation error; one line naming the
            file.
    """
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the inventory: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    return parse_inventory(data, path=file, check_ports=check_ports)


def parse_inventory(
    data: Mapping[str, Any], *, path: str | Path, check_ports: bool = False
) -> Inventory:
    """Validate TOML-shaped inventory data (see the module docstring) read from ``path``.

    Raises:
        ConfigError: any validation error, naming ``path``.
    """
    file = Path(path)
    try:
        _known(data, "", ("transport", "board", "scribe", "power", "emulator"))
        transport, settings = _transport(data.get("transport"))
        raw_boards = data.get("board", [])
        if not isinstance(raw_boards, list) or not all(isinstance(b, dict) for b in raw_boards):
            raise ConfigError("'board' must be [[board]] tables")
        boards = tuple(_board(i, table) for i, table in enumerate(raw_boards, 1))
        scribe = None
        if "scribe" in data:
            table = _table(data, "scribe", ("port", "serial_number", "pulse_unit_us"))
            scribe = ScribeSpec(**table)
        power = PowerSpec(**_table(data, "power", ("meter", "port", "supply_v")))
        emulator = None
        if "emulator" in data:
            emulator = EmulatorSpec(**_table(data, "emulator", ("time_scale", "seed")))
    except (ConfigError, TypeError) as exc:
        raise ConfigError(f"{file}: {exc}") from None
    inventory = Inventory(
        path=file,
        transport=transport,
        boards=boards,
        scribe=scribe,
        power=power,
        emulator=emulator,
        all_transport_settings=settings,
    )
    if check_ports and inventory.emulator is None:
        _check_ports(inventory)
    return inventory


def _check_ports(inventory: Inventory) -> None:
    from tinysplit.testbed.hw.serial_port import find_serial_number, is_url

    named: list[tuple[str, str | None, str | None]] = [
        (f"board {b.name!r}", b.port, b.serial_number) for b in inventory.boards
    ]
    if inventory.scribe is not None:
        named.append(("[scribe]", inventory.scribe.port, inventory.scribe.serial_number))
    if inventory.power.port is not None:
        named.append(("[power] ppk2", inventory.power.port, None))
    for who, port, serial_number in named:
        if port is not None and not is_url(port) and not os.path.exists(port):
            raise ConfigError(
                f"{inventory.path}: {who}: unknown port {port}: no such device "
                "(is it plugged in? check `python -m serial.tools.list_ports -v`)"
            )
        if serial_number is not None:
            try:
                find_serial_number(serial_number, label=who.removeprefix("board "))
            except BoardError as exc:
                raise ConfigError(f"{inventory.path}: {exc}") from None


def _transport(value: Any) -> tuple[str, dict[str, dict[str, Any]]]:
    if value is None:
        raise ConfigError('missing transport: add transport = "ble" (or wifi, espnow)')
    if isinstance(value, str):
        return value, {}
    if not isinstance(value, dict):
        raise ConfigError(f"transport must be a name or a [transport] table, got {value!r}")
    _known(value, "[transport]", ("kind", *TRANSPORTS))
    kind = value.get("kind")
    if not isinstance(kind, str):
        raise ConfigError('[transport] needs kind = "ble" (or wifi, espnow)')
    settings: dict[str, dict[str, Any]] = {}
    for name in TRANSPORTS:
        if name in value:
            if not isinstance(value[name], dict):
                raise ConfigError(f"[transport.{name}] must be a table")
            settings[name] = dict(value[name])
    return kind, settings


def _board(index: int, table: Mapping[str, Any]) -> BoardSpec:
    name = table.get("name")
    if not isinstance(name, str):
        raise ConfigError(f"board #{index}: missing name (a string)")
    who = f"board {name!r}"
    _known(table, who, tuple(BoardSpec.__dataclass_fields__))
    if "stage" not in table:
        raise ConfigError(f"{who}: missing stage")
    position = table.get("position_m")
    if isinstance(position, list):
        position = tuple(position)
    return BoardSpec(**{**table, "position_m": position})


def _table(data: Mapping[str, Any], key: str, valid: tuple[str, ...]) -> dict[str, Any]:
    table = data.get(key, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{key} must be a [{key}] table")
    _known(table, f"[{key}]", valid)
    return dict(table)


def _known(table: Mapping[str, Any], where: str, valid: tuple[str, ...]) -> None:
    for key in table:
        if key not in valid:
            prefix = f"{where}: " if where else ""
            raise ConfigError(f"{prefix}unknown key {key!r} (valid: {', '.join(valid)})")


def _check_unique(where: str, what: str, items: list[tuple[Any, str]]) -> None:
    seen: dict[Any, str] = {}
    for value, name in items:
        if value in seen:
            raise ConfigError(
                f"{where} duplicate {what} {value!r}: boards {seen[value]!r} and {name!r}"
            )
        seen[value] = name


def _port_key(port: str) -> str:
    """A port's identity: symlinks such as ``/dev/serial/by-id/...`` resolved."""
    if "://" in port:
        return port
    return os.path.realpath(port)
