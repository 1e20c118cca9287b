"""Deployments: which physical boards run each stage of a plan, and how each link is set.

A plan says *what* each stage computes; a :class:`Deployment` (optional, ``plan.deployment``)
says *where*: the boards of every stage (more than one = replicas, served round-robin), the
window of every stage boundary, and the RSSI matrix the choice was made for, so that
``tinysplit simulate --plan`` reruns exactly what ``tinysplit partition --optimize`` chose.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinysplit.errors import ConfigError, TinysplitError
from tinysplit.protocol.frames import MAX_RELIABLE_WINDOW

#: What ``partition --optimize`` can choose besides the cuts.
OPTIMIZATIONS = ("placement", "window", "replication")
#: Per stage, the 0-based physical boards running it.
PlacementT = tuple[tuple[int, ...], ...]


def check_boards(
    raw: Any, boards: int | None = None, *, error: type[TinysplitError] = ConfigError
) -> PlacementT:
    """A placement (per stage, its boards; lists from JSON welcome) checked and as tuples.

    Args:
        raw: per stage, the 0-based physical boards running it.
        boards: how many boards there are (None: unknown, any index >= 0).
        error: the error class to raise (``PartitionError`` for the optimisers).

    Raises:
        ConfigError (or ``error``): not a list of board lists, a stage without a board, an index
            that is not an integer in ``0..boards-1``, or a board used twice.
    """
    try:
        placement = tuple(tuple(_index(b, error) for b in stage) for stage in raw)
    except TypeError as exc:
        raise error(f"placement must be a list of board lists per stage ({exc})") from None
    if not placement or any(not stage for stage in placement):
        raise error("placement needs at least one board for every stage")
    used = [b for stage in placement for b in stage]
    if boards is not None and any(b >= boards for b in used):
        outside = next(b for b in used if b >= boards)
        raise error(
            f"placement board {outside} is not within 0..{boards - 1}: boards must be distinct "
            f"indices of the {boards} boards"
        )
    twice = sorted({b for b in used if used.count(b) > 1})
    if twice:
        raise error(
            f"placement uses board {twice[0]} twice: boards must be distinct (one stage per board)"
        )
    return placement


def _index(value: Any, error: type[TinysplitError]) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise error(f"placement board indices must be integers >= 0, got {value!r}")
    return int(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Deployment:
    """Placement, replicas and per-link windows of a plan's stages.

    Attributes:
        boards: per stage, the 0-based physical boards running it (``len > 1``: replicas).
        board_names: the physical boards' names (from the RSSI matrix), one per board.
        rssi_dbm: the boards' pairwise RSSI matrix (dBm, NaN = no link) the choice was made for.
        windows: per stage boundary, the reliable-mode window of its senders.
        period_s: modelled steady-state seconds per inference (``partition.period``).
        optimized: which of :data:`OPTIMIZATIONS` were searched (the rest were kept as given).
    """

    boards: tuple[tuple[int, ...], ...]
    board_names: tuple[str, ...]
    rssi_dbm: tuple[tuple[float, ...], ...]
    windows: tuple[int, ...]
    period_s: float
    optimized: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        count = len(self.board_names)
        if len(self.rssi_dbm) != count or any(len(row) != count for row in self.rssi_dbm):
            raise ConfigError(f"deployment: rssi_dbm must be {count} x {count} (one per board)")
        check_boards(self.boards, count)
        if len(self.windows) != len(self.boards) - 1:
            raise ConfigError(
                f"deployment: {len(self.windows)} windows for {len(self.boards) - 1} stage "
                "boundaries"
            )
        if any(not 1 <= w <= MAX_RELIABLE_WINDOW for w in self.windows):
            raise ConfigError(f"deployment: windows must be within 1..{MAX_RELIABLE_WINDOW}")
        if not self.period_s > 0:
            raise ConfigError("deployment: period_s must be > 0")
        unknown = set(self.optimized) - set(OPTIMIZATIONS)
        if unknown:
            raise ConfigError(f"deployment: unknown optimization {sorted(unknown)[0]!r}")

    @property
    def replicas(self) -> tuple[int, ...]:
        """Boards per stage."""
        return tuple(len(group) for group in self.boards)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (a missing link is ``null``)."""
        return {
            "boards": [list(g) for g in self.boards],
            "board_names": list(self.board_names),
            "rssi_dbm": [[None if math.isnan(v) else v for v in row] for row in self.rssi_dbm],
            "windows": list(self.windows),
            "period_s": self.period_s,
            "optimized": list(self.optimized),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Deployment:
        """Inverse of :meth:`to_dict`; raises :class:`ConfigError` when malformed."""
        if not isinstance(data, Mapping):
            raise ConfigError("malformed plan: deployment must be an object")
        try:
            return cls(
                boards=tuple(tuple(_int(b) for b in group) for group in data["boards"]),
                board_names=tuple(str(n) for n in data["board_names"]),
                rssi_dbm=tuple(
                    tuple(math.nan if v is None else float(v) for v in row)
                    for row in data["rssi_dbm"]
                ),
                windows=tuple(_int(w) for w in data["windows"]),
                period_s=float(data["period_s"]),
                optimized=tuple(str(o) for o in data.get("optimized", ())),
            )
        except KeyError as exc:
            raise ConfigError(f"malformed plan: deployment has no {exc.args[0]!r}") from exc
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"malformed plan: deployment: {exc}") from exc


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value
