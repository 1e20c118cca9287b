"""The settings of an emulated board: the ``config`` keys, their ranges and defaults.

The ranges and defaults are the firmware's (``ts_console_stage.h``, the ``TINYSPLIT_*`` Kconfig
options): ``stage`` / ``stages`` 1..16, ``mode`` paper or reliable, ``window`` 1..16,
``ack_timeout_ms`` 1..60000, ``max_timeouts`` 0..1000.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from tinysplit.testbed.hw.emulator.lineproto import CommandError, parse_u32

#: Bytes per ``data`` line and per ``read`` reply (``TS_CONSOLE_STAGE_DATA_MAX``).
DATA_MAX = 512
MAX_STAGES = 16
MAX_WINDOW = 16
ACK_TIMEOUT_MS_MAX = 60_000
MAX_TIMEOUTS_MAX = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """A board's settings (the ``config`` keys), with the firmware's Kconfig defaults."""

    stage: int
    stages: int
    mode: str = "reliable"
    window: int = 6
    ack_timeout_ms: int = 200
    max_timeouts: int = 20

    def text(self) -> str:
        """The six ``key=value`` words of a ``config`` reply."""
        return " ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))

    def with_value(self, key: str, value: str) -> Settings:
        """A copy with ``key`` set from its text; raises ``err range`` for a bad value."""
        if key == "mode":
            number: int | None = 0 if value in ("paper", "reliable") else None
        else:
            number = parse_u32(value)
        limits = {"stage": (1, MAX_STAGES), "stages": (1, MAX_STAGES), "window": (1, MAX_WINDOW),
                  "ack_timeout_ms": (1, ACK_TIMEOUT_MS_MAX), "max_timeouts": (0, MAX_TIMEOUTS_MAX),
                  "mode": (0, 0)}  # fmt: skip
        low, high = limits[key]
        if number is None or not low <= number <= high:
            raise CommandError("range", f"bad value {value} for {key}")
        values: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        values[key] = value if key == "mode" else number
        return Settings(**values)
