"""Device profiles (read from ``data/devices.toml``) and per-transport frame/link defaults.

A :class:`DeviceProfile` holds what the memory model needs about one board: flash, PSRAM and
internal SRAM capacities, the firmware code size and radio buffer memory per transport, and the
bytes per stored weight and bias value; every number in the data file names its source. A
:class:`TransportSpec` holds the tensor payload per frame and the default link rate of one
transport, taken from its calibrated link model (``links/data/esp32s3.toml``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from tinysplit.errors import ConfigError

#: How a profile counts stage memory: per memory kind, or the paper's single sum.
ACCOUNTINGS = ("detailed", "paper")


def _data_text(name: str) -> str:
    return resources.files("tinysplit.partition").joinpath("data").joinpath(name).read_text("utf-8")


@cache
def _devices_toml() -> dict[str, Any]:
    return tomllib.loads(_data_text("devices.toml"))


def _int_field(owner: str, key: str, value: object, *, minimum: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{owner}: {key} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportSpec:
    """Frame and link defaults of one transport.

    Attributes:
        name: transport id (``"ble"``, ``"wifi"``, ``"espnow"``).
        payload_bytes: tensor bytes carried by one frame (wire-protocol header not subtracted).
        link_rate_bps: default application goodput in bit/s, used by the bottleneck objective.
    """

    name: str
    payload_bytes: int
    link_rate_bps: float

    def __post_init__(self) -> None:
        _int_field(f"transport {self.name!r}", "payload_bytes", self.payload_bytes, minimum=1)
        if not self.link_rate_bps > 0:
            raise ConfigError(f"transport {self.name!r}: link_rate_bps must be > 0")

    def frames(self, size_bytes: int) -> int:
        """Frames needed to carry ``size_bytes`` of tensor data (ceiling division)."""
        return -(-size_bytes // self.payload_bytes)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "name": self.name,
            "payload_bytes": self.payload_bytes,
            "link_rate_bps": self.link_rate_bps,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TransportSpec:
        """Inverse of :meth:`to_dict`; raises :class:`ConfigError` on missing or bad fields."""
        try:
            return cls(
                name=str(data["name"]),
                payload_bytes=data["payload_bytes"],
                link_rate_bps=float(data["link_rate_bps"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"bad transport entry {dict(data)!r}: {exc}") from exc


@cache
def load_transports() -> Mapping[str, TransportSpec]:
    """Every transport's spec, from the default profile of its calibrated link model.

    A frame carries what one tinysplit DATA frame of the link's largest application frame holds
    in reliable mode (the 16 B header subtracted), and sending is priced at the profile's sourced
    goodput: the same numbers the simulated testbed runs with.
    """
    from tinysplit.links import Transport, make_link
    from tinysplit.links.calibration import sourced_goodput_bps
    from tinysplit.protocol import data_payload_bytes

    return MappingProxyType(
        {
            t.value: TransportSpec(
                name=t.value,
                payload_bytes=data_payload_bytes(make_link(t.value).frame_bytes, "reliable"),
                link_rate_bps=sourced_goodput_bps(t.value),
            )
            for t in Transport
        }
    )


#: Transport ids.
TRANSPORTS: tuple[str, ...] = tuple(load_transports())


def load_transport(name: str) -> TransportSpec:
    """Return one transport's spec; raises :class:`ConfigError` listing the valid ids."""
    transports = load_transports()
    if name not in transports:
        raise ConfigError(f"unknown transport {name!r} (valid: {', '.join(transports)})")
    return transports[name]


def _per_transport(owner: str, key: str, value: Mapping[str, int]) -> Mapping[str, int]:
    missing = [t for t in TRANSPORTS if t not in value]
    extra = [t for t in value if t not in TRANSPORTS]
    if missing or extra:
        raise ConfigError(
            f"{owner}: {key} needs exactly one entry per transport ({', '.join(TRANSPORTS)}); "
            f"missing {missing}, unknown {extra}"
        )
    for t, v in value.items():
        _int_field(owner, f"{key}.{t}", v)
    return MappingProxyType({t: value[t] for t in TRANSPORTS})


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceProfile:
    """Memory capacities and per-value sizes of one kind of board.

    Attributes:
        name: profile id, e.g. ``"esp32s3-n8r8"``.
        description: one line for humans.
        accounting: ``"detailed"`` (per memory kind) or ``"paper"`` (the paper's single sum against
            ``flash_bytes``).
        flash_bytes: flash chip size in bytes.
        psram_bytes: PSRAM size in bytes (0: none; activations then live in internal SRAM).
        sram_heap_bytes: internal SRAM heap available to the app in bytes.
        flash_reserved_bytes: flash used by bootloader, partition table, nvs and phy data, bytes.
        weight_bytes: bytes per stored weight value.
        bias_bytes: bytes per stored bias value.
        param_copy: whether ESP-DL copies weights from flash into PSRAM at load time.
        code_bytes: firmware image size in bytes per transport.
        transport_buffer_bytes: radio data buffers in internal SRAM, bytes per transport.
    """

    name: str
    description: str = ""
    accounting: str = "detailed"
    flash_bytes: int
    psram_bytes: int
    sram_heap_bytes: int
    flash_reserved_bytes: int = 0
    weight_bytes: int = 2
    bias_bytes: int = 2
    param_copy: bool = False
    code_bytes: Mapping[str, int] = field(default_factory=dict)
    transport_buffer_bytes: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        owner = f"device profile {self.name!r}"
        if self.accounting not in ACCOUNTINGS:
            raise ConfigError(
                f"{owner}: accounting must be one of {', '.join(ACCOUNTINGS)}, "
                f"got {self.accounting!r}"
            )
        for key in ("flash_bytes", "psram_bytes", "sram_heap_bytes", "flash_reserved_bytes"):
            _int_field(owner, key, getattr(self, key))
        for key in ("weight_bytes", "bias_bytes"):
            _int_field(owner, key, getattr(self, key), minimum=1)
        if self.flash_bytes <= self.flash_reserved_bytes:
            raise ConfigError(f"{owner}: flash_bytes must exceed flash_reserved_bytes")
        if not isinstance(self.param_copy, bool):
            raise ConfigError(f"{owner}: param_copy must be true or false")
        if self.param_copy and self.psram_bytes == 0:
            raise ConfigError(f"{owner}: param_copy needs PSRAM (psram_bytes is 0)")
        code = _per_transport(owner, "code_bytes", self.code_bytes)
        buffers = _per_transport(owner, "transport_buffer_bytes", self.transport_buffer_bytes)
        object.__setattr__(self, "code_bytes", code)
        object.__setattr__(self, "transport_buffer_bytes", buffers)

    @property
    def has_psram(self) -> bool:
        """True when the board has PSRAM for activations."""
        return self.psram_bytes > 0

    def capacities(self) -> dict[str, int]:
        """Capacity in bytes of every memory kind the accounting checks.

        ``detailed``: ``flash``, ``psram`` (only with PSRAM) and ``sram``. ``paper``: one
        ``total`` budget equal to ``flash_bytes``.
        """
        if self.accounting == "paper":
            return {"total": self.flash_bytes}
        caps = {"flash": self.flash_bytes}
        if self.has_psram:
            caps["psram"] = self.psram_bytes
        caps["sram"] = self.sram_heap_bytes
        return caps

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (for plans and run manifests)."""
        return {
            "name": self.name,
            "description": self.description,
            "accounting": self.accounting,
            "flash_bytes": self.flash_bytes,
            "psram_bytes": self.psram_bytes,
            "sram_heap_bytes": self.sram_heap_bytes,
            "flash_reserved_bytes": self.flash_reserved_bytes,
            "weight_bytes": self.weight_bytes,
            "bias_bytes": self.bias_bytes,
            "param_copy": self.param_copy,
            "code_bytes": dict(self.code_bytes),
            "transport_buffer_bytes": dict(self.transport_buffer_bytes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeviceProfile:
        """Inverse of :meth:`to_dict`; raises :class:`ConfigError` on missing or unknown fields."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a device profile must be a table, got {type(data).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"device profile {data.get('name', '?')!r}: unknown field(s) {', '.join(unknown)}"
            )
        if "name" not in data:
            raise ConfigError("device profile without a name")
        for key in ("code_bytes", "transport_buffer_bytes"):
            if not isinstance(data.get(key, {}), Mapping):
                raise ConfigError(f"device profile {data['name']!r}: {key} must be a table")
        try:
            return cls(**{k: data[k] for k in known if k in data})
        except TypeError as exc:  # a required field is missing
            raise ConfigError(f"device profile {data['name']!r}: {exc}") from exc


@cache
def _profiles() -> Mapping[str, DeviceProfile]:
    table = _devices_toml()["profiles"]
    return MappingProxyType(
        {name: DeviceProfile.from_dict({"name": name, **spec}) for name, spec in table.items()}
    )


#: Names of the built-in profiles, in the order of the data file.
PROFILE_NAMES: tuple[str, ...] = tuple(_profiles())
#: The profile used when none is given.
DEFAULT_PROFILE: str = str(_devices_toml()["default_profile"])


def load_profile(name: str) -> DeviceProfile:
    """Return a built-in device profile by name.

    Raises:
        ConfigError: the name is not a built-in profile; the message lists the valid names.
    """
    profiles = _profiles()
    if name not in profiles:
        raise ConfigError(f"unknown device profile {name!r} (valid: {', '.join(PROFILE_NAMES)})")
    return profiles[name]
