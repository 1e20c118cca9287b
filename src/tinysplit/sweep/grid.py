"""Sweep grids: axes, shared options, their text syntax, TOML grid files and the point expansion.

A grid is the cartesian product of six axes (transport x profile x window x strategy x placement
x seed) under one set of shared options (model, boards, layout, inferences, mode). Axis values
are written as comma lists (``ble,wifi``); integer axes also take inclusive ranges (``0..4``).
Link profiles are per transport: a bare profile name must exist for every transport of the grid,
``TRANSPORT:NAME`` applies to that transport only and ``default`` is each transport's default, so
the profile axis is expanded per transport (``docs/sweep.md``).
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from tinysplit.errors import ConfigError
from tinysplit.protocol.frames import MAX_RELIABLE_WINDOW

#: Most points one sweep may have (a typo like ``--seed 0..1000000`` stops at once).
MAX_POINTS = 100_000
TRANSPORTS = ("ble", "wifi", "espnow")
STRATEGIES = ("paper", "greedy", "optimal")
PLACEMENTS = ("chain", "rssi")
MODES = ("paper", "reliable")
#: Axis names in point order (also the grid file's axis keys and the archive's ``params``).
AXES = ("transport", "profile", "window", "strategy", "placement", "seed")
#: Shared option names (the grid file's other keys).
SHARED = ("model", "devices", "device_profile", "positions", "rssi", "inferences", "mode")
DEFAULT_PROFILE = "default"
_T = TypeVar("_T")


def split_values(text: str, axis: str) -> tuple[str, ...]:
    """Split a comma list; raises ConfigError on an empty axis or an empty item."""
    items = tuple(part.strip() for part in text.split(","))
    if not text.strip() or any(not item for item in items):
        raise ConfigError(f"--{axis} {text!r}: empty value (give a comma-separated list)")
    return items


def parse_choices(text: str, axis: str, choices: Iterable[str]) -> tuple[str, ...]:
    """A comma list whose items are all in ``choices``."""
    valid = tuple(choices)
    values = split_values(text, axis)
    for value in values:
        if value not in valid:
            raise ConfigError(f"--{axis}: unknown value {value!r} (valid: {', '.join(valid)})")
    return _unique(values)


def parse_ints(text: str, axis: str, *, minimum: int) -> tuple[int, ...]:
    """A comma list of integers and inclusive ranges ``A..B`` (``0..4,9``), each >= ``minimum``."""
    values: list[int] = []
    for item in split_values(text, axis):
        start, sep, end = item.partition("..")
        try:
            low = int(start)
            high = int(end) if sep else low
        except ValueError:
            raise ConfigError(f"--{axis}: {item!r} is not an integer or a range A..B") from None
        if high < low:
            raise ConfigError(f"--{axis}: range {item!r} is empty (start > end)")
        if high - low >= MAX_POINTS:
            raise ConfigError(f"--{axis}: range {item!r} has more than {MAX_POINTS:,} values")
        if low < minimum:
            raise ConfigError(f"--{axis}: values must be >= {minimum}, got {low}")
        values.extend(range(low, high + 1))
    return _unique(values)


def _unique(values: Iterable[_T]) -> tuple[_T, ...]:
    return tuple(dict.fromkeys(values))


@dataclass(frozen=True, slots=True, kw_only=True)
class SharedOptions:
    """What every point of a sweep shares.

    Attributes:
        model: built-in model name or ``.onnx`` path.
        devices: boards to split the model over (None: the fewest that fit).
        device_profile: device profile for partitioning.
        positions: layout name or file (None: ``paper`` for 5 boards, else ``desk``); excludes
            ``rssi``.
        rssi: pairwise RSSI matrix file (``partition.rssi.load_rssi_matrix``); needed by the
            ``rssi`` placement, and then the links of the ``chain`` placement too.
        inferences: inputs per point.
        mode: protocol mode (``reliable`` or ``paper``).
    """

    model: str = "paper"
    devices: int | None = 5
    device_profile: str = "paper"
    positions: str | None = None
    rssi: str | None = None
    inferences: int = 10
    mode: str = "reliable"

    def __post_init__(self) -> None:
        if self.devices is not None and (isinstance(self.devices, bool) or self.devices < 1):
            raise ConfigError(f"devices must be a positive integer or auto, got {self.devices}")
        if isinstance(self.inferences, bool) or self.inferences < 1:
            raise ConfigError(f"inferences must be >= 1, got {self.inferences}")
        if self.mode not in MODES:
            raise ConfigError(f"unknown mode {self.mode!r} (valid: {', '.join(MODES)})")
        if self.rssi is not None and self.positions is not None:
            raise ConfigError("give --rssi or --positions, not both: both set the links")

    def layout(self, boards: int) -> str:
        """The layout name or file used with ``boards`` boards."""
        return self.positions or ("paper" if boards == 5 else "desk")

    def fingerprint(self) -> dict[str, Any]:
        """The options plus what their results depend on beyond them (file and data hashes).

        Two sweeps with different fingerprints cannot share a sweep directory.
        """
        from tinysplit.links.calibration import calibration_hash

        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("rssi", "positions", "model"):
            path = Path(str(data[name]))
            if data[name] is not None and path.is_file():
                data[f"{name}_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        data["calibration_sha256"] = calibration_hash()
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class SweepPoint:
    """One point of a grid: one simulated run."""

    transport: str
    profile: str
    window: int
    strategy: str
    placement: str
    seed: int

    @property
    def name(self) -> str:
        """Unique, file-name-safe id, e.g. ``ble_paper_w6_optimal_chain_s0``."""
        return (
            f"{self.transport}_{self.profile}_w{self.window}_{self.strategy}_{self.placement}"
            f"_s{self.seed}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The axis values (the archive run's ``params``)."""
        return {name: getattr(self, name) for name in AXES}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SweepPoint:
        """Inverse of :meth:`to_dict`; raises ConfigError on missing or extra keys."""
        if set(data) != set(AXES):
            raise ConfigError(f"a sweep point needs exactly the keys {', '.join(AXES)}")
        return cls(**{k: data[k] for k in AXES})


@dataclass(frozen=True, slots=True, kw_only=True)
class GridSpec:
    """Axes of a sweep and its shared options; :meth:`points` is their product.

    Raises:
        ConfigError: an empty axis, an unknown transport, strategy or placement, a window that
            the mode cannot use, a negative seed, or the ``rssi`` placement without an RSSI file.
    """

    transports: tuple[str, ...] = ("ble",)
    profiles: tuple[str, ...] = (DEFAULT_PROFILE,)
    windows: tuple[int, ...] = (6,)
    strategies: tuple[str, ...] = ("paper",)
    placements: tuple[str, ...] = ("chain",)
    seeds: tuple[int, ...] = (0,)
    shared: SharedOptions = field(default_factory=SharedOptions)

    def __post_init__(self) -> None:
        for axis, values, choices in (
            ("transport", self.transports, TRANSPORTS),
            ("strategy", self.strategies, STRATEGIES),
            ("placement", self.placements, PLACEMENTS),
        ):
            parse_choices(",".join(values), axis, choices)
        for axis, ints, minimum in (("window", self.windows, 1), ("seed", self.seeds, 0)):
            if not ints:
                raise ConfigError(f"--{axis}: empty axis")
            if any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in ints):
                raise ConfigError(f"--{axis}: values must be integers >= {minimum}")
        split_values(",".join(self.profiles), "profile")
        too_big = [w for w in self.windows if w > MAX_RELIABLE_WINDOW]
        if self.shared.mode == "reliable" and too_big:
            raise ConfigError(
                f"--window {too_big[0]}: reliable mode takes windows up to {MAX_RELIABLE_WINDOW}"
            )
        size = math.prod(
            len(axis)
            for axis in (self.transports, self.profiles, self.windows, self.strategies,
                         self.placements, self.seeds)
        )  # fmt: skip
        if size > MAX_POINTS:
            raise ConfigError(
                f"the grid has {size:,} points, more than {MAX_POINTS:,}: split it into sweeps"
            )
        if "rssi" in self.placements and self.shared.rssi is None:
            raise ConfigError("--placement rssi needs --rssi FILE (a pairwise RSSI matrix)")

    def profiles_for(self, transport: str) -> tuple[str, ...]:
        """The resolved profile names of ``transport`` on the profile axis.

        Raises:
            ConfigError: a bare name that ``transport`` lacks, an unknown qualified name, or no
                profile at all for ``transport``.
        """
        from tinysplit.links.calibration import default_profile, profile_names

        names = profile_names(transport)
        out: list[str] = []
        for value in self.profiles:
            owner, sep, name = value.rpartition(":")
            if sep and owner not in TRANSPORTS:
                raise ConfigError(f"--profile {value!r}: {owner!r} is not a transport")
            if sep and owner != transport:
                continue
            if name == DEFAULT_PROFILE:
                name = default_profile(transport)
            if name not in names:
                hint = "" if sep else f" (write TRANSPORT:{name} to use it on one transport only)"
                raise ConfigError(
                    f"--profile: {transport} has no profile {name!r} (valid: {', '.join(names)})"
                    + hint
                )
            out.append(name)
        if not out:
            raise ConfigError(f"--profile names no {transport} profile (add {transport}:NAME)")
        return _unique(out)

    def points(self) -> tuple[SweepPoint, ...]:
        """Every point, in axis order (transport slowest, seed fastest), without duplicates."""
        return tuple(
            SweepPoint(transport=t, profile=p, window=w, strategy=s, placement=pl, seed=seed)
            for t in self.transports
            for p in self.profiles_for(t)
            for w in self.windows
            for s in self.strategies
            for pl in self.placements
            for seed in self.seeds
        )

    def to_dict(self) -> dict[str, Any]:
        """Axes and shared options as plain JSON (the sweep directory's ``sweep.json``)."""
        axes = (self.transports, self.profiles, self.windows, self.strategies, self.placements)
        data: dict[str, Any] = {
            name: list(values) for name, values in zip(AXES, (*axes, self.seeds), strict=True)
        }
        return data | {f.name: getattr(self.shared, f.name) for f in fields(self.shared)}


def load_grid_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML grid file into option values (``docs/sweep.md``).

    Keys are the axis names (a list or a comma/range string) and the shared option names; relative
    ``rssi`` and ``positions`` paths are resolved against the file's directory.

    Raises:
        ConfigError: unreadable or invalid TOML, an unknown key, or a value of the wrong type.
    """
    file = Path(path)
    try:
        table = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ConfigError(f"cannot read grid file {str(file)!r}: {reason}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"grid file {str(file)!r} is not valid TOML: {exc}") from exc
    unknown = sorted(set(table) - set(AXES) - set(SHARED))
    if unknown:
        raise ConfigError(
            f"grid file {str(file)!r}: unknown key {unknown[0]!r} "
            f"(valid: {', '.join((*AXES, *SHARED))})"
        )
    out: dict[str, Any] = {}
    for key, value in table.items():
        where = f"grid file {str(file)!r}: {key}"
        if key in AXES:
            items = value if isinstance(value, list) else [value]
            if not items or any(isinstance(v, bool) or not isinstance(v, str | int) for v in items):
                raise ConfigError(f"{where} must be a non-empty list of strings or integers")
            out[key] = ",".join(str(v) for v in items)
        elif key in ("devices", "inferences"):
            if not (isinstance(value, int) and not isinstance(value, bool)) and value != "auto":
                raise ConfigError(f"{where} must be an integer")
            out[key] = value
        else:
            if not isinstance(value, str):
                raise ConfigError(f"{where} must be a string")
            relative = key == "rssi" or (key == "positions" and (file.parent / value).is_file())
            out[key] = (
                str(file.parent / value) if relative and not Path(value).is_absolute() else value
            )
    return out


def grid_from_options(options: Mapping[str, Any]) -> GridSpec:
    """Build a grid from option values (text for the axes; unset options are absent or None).

    ``devices`` is an integer or ``"auto"`` (the fewest boards that fit).

    Raises:
        ConfigError: any bad value (see :class:`GridSpec` and the ``parse_*`` functions).
    """
    given = {k: v for k, v in options.items() if v is not None}
    shared_values = {k: given[k] for k in SHARED if k in given}
    if shared_values.get("devices") == "auto":
        shared_values["devices"] = None
    shared = SharedOptions(**shared_values)
    axes: dict[str, Any] = {"shared": shared}
    if "transport" in given:
        axes["transports"] = parse_choices(given["transport"], "transport", TRANSPORTS)
    if "profile" in given:
        axes["profiles"] = _unique(split_values(given["profile"], "profile"))
    if "window" in given:
        axes["windows"] = parse_ints(given["window"], "window", minimum=1)
    if "strategy" in given:
        axes["strategies"] = parse_choices(given["strategy"], "strategy", STRATEGIES)
    if "placement" in given:
        axes["placements"] = parse_choices(given["placement"], "placement", PLACEMENTS)
    if "seed" in given:
        axes["seeds"] = parse_ints(given["seed"], "seed", minimum=0)
    return GridSpec(**axes)
