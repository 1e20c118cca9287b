"""Where the boards are: named layouts (``sim/data/layouts.toml``) or a user's TOML/JSON file.

A layout gives either ``rssi_dbm`` (one measured value per link, board k -> k+1) or board
``positions`` ([x, y] or [x, y, z] in metres), or ``spacing_m`` for boards in a line.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from tinysplit.errors import ConfigError


@dataclass(frozen=True, slots=True, kw_only=True)
class Layout:
    """Per-link RSSI or per-board positions for a pipeline of ``boards`` boards."""

    rssi_dbm: tuple[float, ...] | None = None
    positions_m: tuple[tuple[float, ...], ...] | None = None


@cache
def builtin_layouts() -> dict[str, Any]:
    """The named layouts shipped with tinysplit."""
    text = (resources.files("tinysplit.sim") / "data" / "layouts.toml").read_text("utf-8")
    return tomllib.loads(text)


def load_layout(spec: str | Path, boards: int) -> Layout:
    """Resolve a layout name or file for a pipeline of ``boards`` boards.

    Raises:
        ConfigError: unknown name, unreadable file, or values that do not fit the boards.
    """
    text = str(spec)
    if text in builtin_layouts():
        table = builtin_layouts()[text]
    else:
        path = Path(text)
        if not path.is_file():
            raise ConfigError(
                f"unknown layout {text!r}: use {', '.join(builtin_layouts())} or a .toml/.json file"
            )
        try:
            raw = path.read_text("utf-8")
            table = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read layout {text!r}: {exc}") from exc
    return layout_from_table(table, boards, text)


def layout_from_table(table: dict[str, Any], boards: int, name: str = "layout") -> Layout:
    """Validate one layout table (see the module docstring)."""
    if not isinstance(table, dict):
        raise ConfigError(
            f"{name}: a layout must be a table (object) of rssi_dbm, positions or spacing_m"
        )
    keys = [k for k in ("rssi_dbm", "positions", "spacing_m") if k in table]
    if len(keys) != 1:
        raise ConfigError(f"{name}: give exactly one of rssi_dbm, positions, spacing_m")
    try:
        if "rssi_dbm" in table:
            rssi = tuple(float(v) for v in table["rssi_dbm"])
            if len(rssi) != boards - 1:
                raise ConfigError(
                    f"{name}: rssi_dbm has {len(rssi)} values but {boards} boards have "
                    f"{boards - 1} links"
                )
            if any(not -130.0 <= r <= 20.0 for r in rssi):
                raise ConfigError(f"{name}: rssi_dbm values must be within -130..20 dBm")
            return Layout(rssi_dbm=rssi)
        if "spacing_m" in table:
            spacing = float(table["spacing_m"])
            if not spacing > 0:
                raise ConfigError(f"{name}: spacing_m must be > 0")
            return Layout(positions_m=tuple((k * spacing, 0.0) for k in range(boards)))
        positions = tuple(tuple(float(c) for c in p) for p in table["positions"])
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: values must be numbers ({exc})") from exc
    if len(positions) != boards:
        raise ConfigError(f"{name}: {len(positions)} positions for {boards} boards")
    if any(len(p) not in (2, 3) for p in positions):
        raise ConfigError(f"{name}: each position must be [x, y] or [x, y, z] in metres")
    return Layout(positions_m=positions)
