"""Calibration data of the link, signal and power models, read from ``links/data/<chip>.toml``.

Every constant in those files carries a comment naming its source and kind (``[datasheet]``,
``[idf]`` default, ``[measured]``, ``[paper]``, ``[derived]``, ``[unverified]``). Top-level tables:
``signal``, ``power`` and one per transport (``ble``, ``wifi``, ``espnow``), each transport with a
``default_profile`` and named ``profiles``.

A user calibration file (written by ``tinysplit calibrate`` from a hardware run, or by hand) adds
fitted corrections on top of those data: a compute-time scale and, per transport, a transfer-time
scale and a fixed overhead per transfer. The simulator applies the active one
(:func:`active_calibration`), chosen by the ``TINYSPLIT_CALIBRATION`` environment variable, which
``tinysplit simulate --calibration FILE`` and ``pytest --calibration FILE`` set for their run
(:func:`calibration_override`); subprocesses inherit it. :func:`calibration_hash` then names that
file, so archive manifests record what was used. ``docs/hardware.md`` documents the format.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tinysplit.errors import ConfigError
from tinysplit.links.base import TransferResult, Transport

DEFAULT_CHIP = "esp32s3"
#: Environment variable naming the user calibration file the simulator applies (unset or empty:
#: none, the packaged data alone).
CALIBRATION_ENV = "TINYSPLIT_CALIBRATION"
#: Version of the user calibration file format.
CALIBRATION_FORMAT = 1


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
    """sha256 of the calibration data in force (recorded in run manifests).

    The chip's packaged data file, or, while a user calibration file is active
    (:func:`active_calibration`), that file: it names the packaged data it was fitted against
    (``links_data_sha256``, checked when it is loaded), so its hash identifies both.

    Raises:
        ConfigError: the active user calibration file is missing or invalid.
    """
    active = active_calibration()
    if active.path is not None and chip == DEFAULT_CHIP:
        return active.sha256
    return data_hash(chip)


def data_hash(chip: str = DEFAULT_CHIP) -> str:
    """sha256 of the chip's packaged calibration data file, ignoring any user calibration."""
    return hashlib.sha256(_data_file(chip).read_bytes()).hexdigest()


def compute_data_hash() -> str:
    """sha256 of the packaged compute-model data (``partition/data/compute-esp32s3.toml``)."""
    path = resources.files("tinysplit.partition") / "data" / "compute-esp32s3.toml"
    return hashlib.sha256(path.read_bytes()).hexdigest()


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


# ------------------------------------------------------------------------ user calibration files


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkFit:
    """Fitted correction of one transport's transfer times.

    A simulated transfer of model duration ``d`` takes ``max(0, time_scale * d + overhead_s)``.
    Radio-on times (and so radio energy) are left as the model has them: the correction stands
    for stack and application time the model misses, not for airtime.

    Attributes:
        time_scale: multiplies the model's transfer duration (> 0; 1 = unchanged).
        overhead_s: seconds added to every transfer (may be negative: a fitted intercept).
    """

    time_scale: float = 1.0
    overhead_s: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.time_scale) and self.time_scale > 0):
            raise ConfigError(f"time_scale must be a finite number > 0, got {self.time_scale}")
        if not math.isfinite(self.overhead_s):
            raise ConfigError(f"overhead_s must be a finite number, got {self.overhead_s}")

    @property
    def identity(self) -> bool:
        """True when the correction changes nothing."""
        return self.time_scale == 1.0 and self.overhead_s == 0.0

    def apply(self, result: TransferResult) -> TransferResult:
        """The transfer with its duration corrected (the same object when nothing changes)."""
        if self.identity:
            return result
        duration = max(0.0, self.time_scale * result.duration_s + self.overhead_s)
        return dataclasses.replace(result, duration_s=duration)


_NO_LINK_FIT = LinkFit()


@dataclass(frozen=True, slots=True, kw_only=True)
class UserCalibration:
    """Fitted corrections the simulator applies on top of the packaged model data.

    Attributes:
        path: the file they came from; None for the packaged data alone (no correction).
        sha256: sha256 of that file's bytes (of the packaged link data when ``path`` is None).
        compute_scale: multiplies every stage's estimated compute time (> 0).
        links: corrections per transport id; a transport without one is unchanged.
    """

    path: Path | None
    sha256: str
    compute_scale: float = 1.0
    links: Mapping[str, LinkFit] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.compute_scale) and self.compute_scale > 0):
            raise ConfigError(
                f"compute scale must be a finite number > 0, got {self.compute_scale}"
            )
        object.__setattr__(self, "links", MappingProxyType(dict(self.links)))

    def link(self, transport: str) -> LinkFit:
        """The correction of ``transport`` (the identity when the file has none)."""
        return self.links.get(str(transport), _NO_LINK_FIT)


_TOP_KEYS = frozenset(
    {"format", "links_data_sha256", "compute_data_sha256", "source", "compute", "link"}
)


def load_user_calibration(path: str | Path) -> UserCalibration:
    """Read and check a user calibration file (see ``docs/hardware.md``, "Calibration file").

    Raises:
        ConfigError: unreadable file, not TOML, unknown keys, values out of range, or a file
            fitted against other packaged model data (its ``links_data_sha256`` /
            ``compute_data_sha256`` differ from this tinysplit's): re-run ``tinysplit calibrate``.
            The message names the file.
    """
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"calibration file {str(file)!r}: {exc.strerror or exc}") from exc
    return _parse_user_calibration(file, raw)


def _parse_user_calibration(file: Path, raw: bytes) -> UserCalibration:
    where = f"calibration file {str(file)!r}"
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{where}: not TOML ({exc})") from exc
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    if data.get("format") != CALIBRATION_FORMAT:
        raise ConfigError(
            f"{where}: format must be {CALIBRATION_FORMAT}, got {data.get('format')!r}"
        )
    for key, actual, what in (
        ("links_data_sha256", data_hash, "link data links/data/esp32s3.toml"),
        ("compute_data_sha256", compute_data_hash, "compute data"),
    ):
        if key in data and data[key] != actual():
            raise ConfigError(
                f"{where}: fitted against other packaged {what} ({str(data[key])[:12]}, this "
                f"tinysplit has {actual()[:12]}): re-run tinysplit calibrate on the run"
            )
    if not isinstance(data.get("source", {}), dict):
        raise ConfigError(f"{where}: [source] must be a table")
    compute = _table(data, "compute", where)
    _only(compute, {"scale"}, f"{where} [compute]")
    links: dict[str, LinkFit] = {}
    for transport, table in _table(data, "link", where).items():
        if transport not in {t.value for t in Transport}:
            raise ConfigError(
                f"{where}: unknown transport [link.{transport}] (valid: ble, wifi, espnow)"
            )
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [link.{transport}] must be a table")
        _only(table, {"time_scale", "overhead_s"}, f"{where} [link.{transport}]")
        try:
            links[transport] = LinkFit(
                time_scale=_number(
                    table.get("time_scale", 1.0), f"{where} link.{transport}.time_scale"
                ),
                overhead_s=_number(
                    table.get("overhead_s", 0.0), f"{where} link.{transport}.overhead_s"
                ),
            )
        except ConfigError as exc:
            raise ConfigError(f"{where} [link.{transport}]: {exc}") from None
    try:
        return UserCalibration(
            path=file,
            sha256=hashlib.sha256(raw).hexdigest(),
            compute_scale=_number(compute.get("scale", 1.0), f"{where} compute.scale"),
            links=links,
        )
    except ConfigError as exc:
        raise ConfigError(f"{where} [compute]: {exc}") from None


def _table(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{key}] must be a table")
    return value


def _only(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)} (valid: {', '.join(sorted(allowed))})"
        )


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where} must be a number, got {value!r}")
    return float(value)


@lru_cache(maxsize=8)
def _cached_user_calibration(path: str, mtime_ns: int, size: int) -> UserCalibration:
    del mtime_ns, size  # cache keys only: an edited file is read again
    return load_user_calibration(path)


def active_calibration() -> UserCalibration:
    """The corrections the simulator applies now.

    The file named by ``TINYSPLIT_CALIBRATION`` when set (read again whenever it changes), else
    the packaged data alone (``path`` None, no correction).

    Raises:
        ConfigError: the variable names a missing or invalid file (the message names both).
    """
    name = os.environ.get(CALIBRATION_ENV, "")
    if not name:
        return UserCalibration(path=None, sha256=data_hash())
    try:
        stat = os.stat(name)
    except OSError as exc:
        raise ConfigError(
            f"{CALIBRATION_ENV}={name}: calibration file cannot be read ({exc.strerror or exc})"
        ) from exc
    return _cached_user_calibration(os.path.abspath(name), stat.st_mtime_ns, stat.st_size)


@contextmanager
def calibration_override(path: str | Path | None) -> Iterator[UserCalibration]:
    """Make ``path`` the active user calibration inside the ``with`` block (None: no change).

    The file is checked first; the environment variable is set to its absolute path (so
    subprocesses such as the board emulator use it too) and restored on exit.

    Raises:
        ConfigError: the file is missing or invalid.
    """
    if path is None:
        yield active_calibration()
        return
    calibration = load_user_calibration(path)
    previous = os.environ.get(CALIBRATION_ENV)
    os.environ[CALIBRATION_ENV] = str(Path(path).resolve())
    try:
        yield calibration
    finally:
        if previous is None:
            os.environ.pop(CALIBRATION_ENV, None)
        else:
            os.environ[CALIBRATION_ENV] = previous
