"""The parts of a board inventory: pipeline boards, scribe, power meter, emulator settings.

Frozen dataclasses validated on construction (:class:`~tinysplit.errors.ConfigError` naming the
part); :mod:`tinysplit.testbed.hw.inventory` assembles them from ``boards.toml``, checks them
against each other and re-exports them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from tinysplit.errors import ConfigError

__all__ = [
    "MAX_SCRIBE_LINES",
    "MAX_STAGES",
    "METERS",
    "TRANSPORTS",
    "BoardSpec",
    "EmulatorSpec",
    "PowerSpec",
    "ScribeSpec",
]

TRANSPORTS = ("ble", "wifi", "espnow")
METERS = ("none", "scribe-ina", "ppk2")
MAX_STAGES = 16
"""Most stages a pipeline can have (the firmware's ``stages`` range)."""
MAX_SCRIBE_LINES = 8
"""Most scribe inputs (GPIO fallback mode; the MCPWM capture mode has 6)."""
_NAME = re.compile(r"[A-Za-z0-9_.-]+\Z")
_MAC = re.compile(r"[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}\Z")


@dataclass(frozen=True, slots=True, kw_only=True)
class BoardSpec:
    """One pipeline board.

    Attributes:
        name: the board's name in messages and archives.
        stage: its 1-based stage in the pipeline.
        port: serial device path or pyserial URL (None: use ``serial_number``, or emulated).
        serial_number: USB serial number, resolved to a port when the board is opened.
        mac: radio MAC address, lowercase ``aa:bb:cc:dd:ee:ff``.
        position_m: position in metres (2 or 3 coordinates), for survey and placement.
        scribe_line: the scribe input its mark GPIO is wired to (None without a scribe).
    """

    name: str
    stage: int
    port: str | None = None
    serial_number: str | None = None
    mac: str | None = None
    position_m: tuple[float, ...] | None = None
    scribe_line: int | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(f"board name {self.name!r} must be letters, digits, '-', '_' or '.'")
        who = f"board {self.name!r}"
        if not _is_int(self.stage) or not 1 <= self.stage <= MAX_STAGES:
            raise ConfigError(
                f"{who}: stage must be an integer 1..{MAX_STAGES}, got {self.stage!r}"
            )
        if self.port is not None and self.serial_number is not None:
            raise ConfigError(f"{who}: give port or serial_number, not both")
        for key in ("port", "serial_number"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"{who}: {key} must be a non-empty string, got {value!r}")
        if self.mac is not None and (
            not isinstance(self.mac, str) or not _MAC.match(self.mac.lower())
        ):
            raise ConfigError(
                f"{who}: bad MAC {self.mac!r} (expected six hex bytes like 'f4:12:fa:4f:8b:30')"
            )
        if self.mac is not None:
            object.__setattr__(self, "mac", self.mac.lower().replace("-", ":"))
        if self.position_m is not None:
            object.__setattr__(self, "position_m", _position(who, self.position_m))
        if self.scribe_line is not None and (
            not _is_int(self.scribe_line) or not 1 <= self.scribe_line <= MAX_SCRIBE_LINES
        ):
            raise ConfigError(
                f"{who}: scribe_line must be an integer 1..{MAX_SCRIBE_LINES}, "
                f"got {self.scribe_line!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The ``[[board]]`` table (keys left out when unset)."""
        data: dict[str, Any] = {"name": self.name, "stage": self.stage}
        for key in ("port", "serial_number", "mac", "scribe_line"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        if self.position_m is not None:
            data["position_m"] = list(self.position_m)
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class ScribeSpec:
    """The scribe board that timestamps every stage's mark pulses.

    Attributes:
        port: serial device path or pyserial URL (None: ``serial_number``, or emulated).
        serial_number: USB serial number, resolved when the scribe is opened.
        lines: stage -> scribe input line (from the boards' ``scribe_line``).
        pulse_unit_us: the mark pulse unit in microseconds, the same on boards and scribe.
    """

    port: str | None = None
    serial_number: str | None = None
    lines: dict[int, int] = field(default_factory=dict)
    pulse_unit_us: int = 10

    def __post_init__(self) -> None:
        if self.port is not None and self.serial_number is not None:
            raise ConfigError("[scribe]: give port or serial_number, not both")
        if not _is_int(self.pulse_unit_us) or not 1 <= self.pulse_unit_us <= 1000:
            raise ConfigError(
                f"[scribe]: pulse_unit_us must be an integer 1..1000 us, got {self.pulse_unit_us!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The ``[scribe]`` table (``lines`` lives in the boards' ``scribe_line``)."""
        data: dict[str, Any] = {"pulse_unit_us": self.pulse_unit_us}
        if self.port is not None:
            data["port"] = self.port
        if self.serial_number is not None:
            data["serial_number"] = self.serial_number
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerSpec:
    """The power meter.

    Attributes:
        meter: ``none``, ``scribe-ina`` (INA219/INA226 read by the scribe) or ``ppk2``.
        port: the PPK2's serial port (None: the only PPK2 plugged in); ppk2 only.
        supply_v: the boards' supply voltage in volts (the PPK2 source voltage).
    """

    meter: str = "none"
    port: str | None = None
    supply_v: float = 3.3

    def __post_init__(self) -> None:
        if self.meter not in METERS:
            raise ConfigError(f"[power]: unknown meter {self.meter!r} (valid: {', '.join(METERS)})")
        if self.port is not None and self.meter != "ppk2":
            raise ConfigError(f"[power]: port is only for meter = 'ppk2', not {self.meter!r}")
        if not _is_number(self.supply_v) or not 0 < self.supply_v <= 5.5:
            raise ConfigError(
                f"[power]: supply_v must be a number in (0, 5.5] V, got {self.supply_v!r}"
            )
        object.__setattr__(self, "supply_v", float(self.supply_v))

    def to_dict(self) -> dict[str, Any]:
        """The ``[power]`` table."""
        data: dict[str, Any] = {"meter": self.meter, "supply_v": self.supply_v}
        if self.port is not None:
            data["port"] = self.port
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class EmulatorSpec:
    """Settings of an emulated testbed (boards on ptys, see ``tinysplit.testbed.hw.emulator``).

    Attributes:
        time_scale: wall-clock seconds per simulated second; 0 runs as fast as possible,
            keeping the order of events.
        seed: seed of the emulator's random choices.
    """

    time_scale: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not _is_number(self.time_scale) or not 0 <= self.time_scale < math.inf:
            raise ConfigError(
                f"[emulator]: time_scale must be a number >= 0, got {self.time_scale!r}"
            )
        if not _is_int(self.seed) or self.seed < 0:
            raise ConfigError(f"[emulator]: seed must be an integer >= 0, got {self.seed!r}")
        object.__setattr__(self, "time_scale", float(self.time_scale))

    def to_dict(self) -> dict[str, Any]:
        """The ``[emulator]`` table."""
        return {"time_scale": self.time_scale, "seed": self.seed}


def _position(who: str, value: Any) -> tuple[float, ...]:
    if (
        not isinstance(value, tuple | list)
        or len(value) not in (2, 3)
        or not all(_is_number(v) and math.isfinite(v) for v in value)
    ):
        raise ConfigError(f"{who}: position_m must be 2 or 3 numbers (metres), got {value!r}")
    return tuple(float(v) for v in value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
