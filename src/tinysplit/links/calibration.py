"""Calibration data of the link, signal and power models, read from ``links/data/<chip>.toml``.

Every constant in those files carries a comment naming its source and kind (``[datasheet]``,
``[idf]`` default, ``[measured]``, ``[paper]``, ``[derived]``, ``[unverified]``). Top-level tables:
``signal``, ``power`` and one per transport (``ble``, ``wifi``, ``espnow``), each transport with a
``default_profile`` and named ``profiles``.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from tinysplit.errors import ConfigError

DEFAULT_CHIP = "esp32s3"


def _data_file(chip: str) -> Traversable:
    path = resources.files("tinysplit.links") / "data" / f"{chip}.toml"
    if not path.is_file():
        raise ConfigError(f"no link calibration data for chip {chip!r}")
    return path


@lru_cache(maxsize=4)
def load_calibration(chip: str = DEFAULT_CHIP) -> Mapping[str, Any]:
    """All calibration tables of ``chip``.

    Raises:
        ConfigError: no data file for the chip.
    """
    return tomllib.loads(_data_file(chip).read_text("utf-8"))


def calibration_hash(chip: str = DEFAULT_CHIP) -> str:
    """sha256 of the chip's calibration data file (recorded in run manifests)."""
    return hashlib.sha256(_data_file(chip).read_bytes()).hexdigest()


def transport_table(transport: str, chip: str = DEFAULT_CHIP) -> Mapping[str, Any]:
    """The calibration table of one transport (``ble``, ``wifi``, ``espnow``)."""
    data = load_calibration(chip)
    if transport not in data or "profiles" not in data[transport]:
        raise ConfigError(f"unknown transport {transport!r} (valid: ble, wifi, espnow)")
    table: Mapping[str, Any] = data[transport]
    return table


def profile_names(transport: str, chip: str = DEFAULT_CHIP) -> tuple[str, ...]:
    """Names of the calibrated profiles of ``transport``."""
    return tuple(transport_table(transport, chip)["profiles"])


def default_profile(transport: str, chip: str = DEFAULT_CHIP) -> str:
    """The profile used when none is named."""
    return str(transport_table(transport, chip)["default_profile"])


def profile_table(
    transport: str, name: str | None = None, chip: str = DEFAULT_CHIP
) -> Mapping[str, Any]:
    """The raw table of one profile (the transport's default when ``name`` is None).

    Raises:
        ConfigError: unknown transport or profile (the message lists the valid ones).
    """
    table = transport_table(transport, chip)
    name = default_profile(transport, chip) if name is None else name
    profiles: Mapping[str, Any] = table["profiles"]
    if name not in profiles:
        raise ConfigError(f"unknown {transport} profile {name!r} (valid: {', '.join(profiles)})")
    result: Mapping[str, Any] = profiles[name]
    return result


def section(name: str, chip: str = DEFAULT_CHIP) -> Mapping[str, Any]:
    """A non-transport table such as ``signal`` or ``power``."""
    data = load_calibration(chip)
    if name not in data:
        raise ConfigError(f"calibration data for {chip!r} has no {name!r} table")
    result: Mapping[str, Any] = data[name]
    return result


def sourced_goodput_bps(transport: str, name: str | None = None, chip: str = DEFAULT_CHIP) -> float:
    """Midpoint of a profile's sourced bulk goodput (``goodput_kbps``) in bit/s.

    The partitioner prices sending a tensor at this rate, so plans match the simulated link.
    """
    low, high = (float(v) for v in profile_table(transport, name, chip)["goodput_kbps"])
    return (low + high) / 2 * 1e3


def rician_k_db(chip: str = DEFAULT_CHIP) -> float:
    """The calibrated Rician K factor of packet-to-packet fading, dB (``[signal]``)."""
    return float(section("signal", chip)["rician_k_db"])
