"""Calibrated radio link models: BLE (windowed GATT writes), Wi-Fi SoftAP + TCP, ESP-NOW.

Models are imported lazily by :func:`make_link`; see :mod:`tinysplit.links.base` for the contract.
"""

from __future__ import annotations

from tinysplit.links.base import LinkConditions, LinkModel, Mode, TransferResult, Transport
from tinysplit.links.calibration import default_profile, profile_names
from tinysplit.links.estimate import link_time_s

__all__ = [
    "LinkConditions",
    "LinkModel",
    "Mode",
    "TransferResult",
    "Transport",
    "default_profile",
    "link_time_s",
    "make_link",
    "profile_names",
]


def make_link(transport: str, profile: str | None = None) -> LinkModel:
    """Build the link model of ``transport`` with a named calibration profile.

    Args:
        transport: ``ble``, ``wifi`` or ``espnow``.
        profile: profile name; the transport's default when None.

    Raises:
        ConfigError: unknown transport or profile.
    """
    from tinysplit.errors import ConfigError

    try:
        kind = Transport(transport)
    except ValueError:
        raise ConfigError(f"unknown transport {transport!r} (valid: ble, wifi, espnow)") from None
    match kind:
        case Transport.BLE:
            from tinysplit.links.ble import BleLink

            return BleLink.from_profile(profile)
        case Transport.WIFI:
            from tinysplit.links.wifi import WifiLink

            return WifiLink.from_profile(profile)
        case Transport.ESPNOW:
            from tinysplit.links.espnow import EspNowLink

            return EspNowLink.from_profile(profile)
