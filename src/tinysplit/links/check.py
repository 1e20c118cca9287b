"""Calibration check: each link profile's bulk goodput against the number it was calibrated to.

Every profile in the calibration data names a sourced goodput range (``goodput_kbps``), the
window and protocol mode it was measured with, and its source. The check runs one bulk transfer
at strong signal through the link model and passes when the simulated goodput lies within
+-15 % of that range.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tinysplit.links import LinkConditions, Mode, make_link
from tinysplit.links.base import Transport
from tinysplit.links.calibration import profile_names, profile_table

#: Relative tolerance around the sourced range.
TOLERANCE = 0.15
#: Bulk transfer size: the paper's largest intermediate tensor (28x28x256 int16).
BULK_BYTES = 401_408
#: Strong-signal RSSI for the check, dBm (boards close together).
STRONG_RSSI_DBM = -50.0


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckRow:
    """One profile's check. Rates in kbit/s."""

    transport: str
    profile: str
    window: int
    mode: str
    simulated_kbps: float
    target_low_kbps: float
    target_high_kbps: float
    passed: bool
    source: str

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return asdict(self)


def check_profile(transport: str, profile: str, *, seed: int = 0) -> CheckRow:
    """Run one profile's bulk transfer and compare it with its sourced goodput."""
    table = profile_table(transport, profile)
    low, high = (float(v) for v in table["goodput_kbps"])
    window, mode = int(table["goodput_window"]), Mode(table["goodput_mode"])
    link = make_link(transport, profile)
    result = link.transfer(
        BULK_BYTES,
        LinkConditions(rssi_dbm=STRONG_RSSI_DBM, window=window, mode=mode),
        np.random.default_rng(seed),
    )
    kbps = BULK_BYTES * 8 / result.duration_s / 1e3
    return CheckRow(
        transport=transport,
        profile=profile,
        window=window,
        mode=str(mode),
        simulated_kbps=kbps,
        target_low_kbps=low,
        target_high_kbps=high,
        passed=low * (1 - TOLERANCE) <= kbps <= high * (1 + TOLERANCE) and result.delivered,
        source=str(table["goodput_source"]),
    )


def check_all(transports: Sequence[str] | None = None, *, seed: int = 0) -> list[CheckRow]:
    """Check every profile of the given transports (all when None)."""
    names = [t.value for t in Transport] if transports is None else list(transports)
    return [check_profile(t, p, seed=seed) for t in names for p in profile_names(t)]
