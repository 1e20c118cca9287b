"""Which physical board runs which stage, and what every link between them sees.

A plan's stages run on physical boards ``0..B-1``. ``placement[s]`` lists the boards running
stage ``s`` (its replicas, at least one); inference ``i`` runs on replica ``i mod r_s``. Without a
placement, stage ``k`` runs on board ``k`` and the pipeline is exactly the paper's chain. The RSSI
of the link from board ``a`` to board ``b`` comes from (first that is given):

* ``rssi_dbm``: one measured value per stage boundary, shared by every link of that boundary;
* ``rssi_matrix_dbm``: a ``B x B`` matrix (NaN: no usable link), entry ``[a][b]``;
* ``positions_m``: board positions through the calibrated path-loss model (``B x B`` as above).

The number of physical boards ``B`` is the matrix's size, else the number of positions, else the
highest board in the placement + 1, else the number of stages.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinysplit.errors import ConfigError
from tinysplit.links.signal import calibrated_rssi_matrix
from tinysplit.partition.deployment import PlacementT
from tinysplit.partition.period import pair_weights
from tinysplit.partition.plan import Plan
from tinysplit.partition.rssi import RSSI_RANGE_DBM


def normalize_matrix(raw: Any) -> tuple[tuple[float, ...], ...]:
    """Validate a square RSSI matrix in dBm (``None`` entries = NaN = no link).

    Raises:
        ConfigError: not square, empty, or a value outside -130..20 dBm.
    """
    try:
        matrix = tuple(tuple(math.nan if v is None else float(v) for v in row) for row in raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"rssi_matrix_dbm must be a B x B matrix of numbers ({exc})") from exc
    size = len(matrix)
    if size == 0 or any(len(row) != size for row in matrix):
        shape = "x".join(str(len(row)) for row in matrix[:3]) or "empty"
        raise ConfigError(f"rssi_matrix_dbm must be B x B (square), got {size} rows ({shape}...)")
    values = np.array(matrix)
    finite = values[np.isfinite(values)]
    low, high = RSSI_RANGE_DBM
    if np.any((finite < low) | (finite > high)) or np.any(np.isinf(values)):
        raise ConfigError(
            f"rssi_matrix_dbm values must be within {low:g}..{high:g} dBm (NaN: no link)"
        )
    return matrix


@dataclass(frozen=True, slots=True)
class Hop:
    """What one link from board ``sender`` to board ``receiver`` sees.

    Attributes:
        sender, receiver: physical boards, 0-based.
        rssi_dbm: RSSI of the (first) hop.
        relay_rssi_dbm: Wi-Fi only: the second hop through the SoftAP, when neither end is it.
    """

    sender: int
    receiver: int
    rssi_dbm: float
    relay_rssi_dbm: float | None


@dataclass(frozen=True, slots=True)
class ResolvedDeployment:
    """A plan's stages on physical boards, with every link they use.

    Attributes:
        placement: per stage, its boards (replicas), 0-based.
        boards: number of physical boards B.
        windows: per stage boundary, the application window.
        hops: per stage boundary, the link of every (sender, receiver) pair of that boundary.
    """

    placement: PlacementT
    boards: int
    windows: tuple[int, ...]
    hops: tuple[dict[tuple[int, int], Hop], ...]

    def board_of(self, stage: int, inference: int) -> int:
        """The physical board (0-based) running stage ``stage`` (0-based) of ``inference``."""
        replicas = self.placement[stage]
        return replicas[inference % len(replicas)]

    def stage_of(self) -> dict[int, int]:
        """Physical board -> the stage (0-based) it runs, for boards that run one."""
        return {b: s for s, boards in enumerate(self.placement) for b in boards}


def resolve(config: Any, stages: int) -> ResolvedDeployment:
    """Place a plan of ``stages`` stages as ``config`` says and work out every link it uses.

    Args:
        config: a :class:`tinysplit.sim.pipeline.PipelineConfig`.
        stages: the plan's number of stages.

    Raises:
        ConfigError: a placement or windows that do not match the plan, a board beyond the RSSI
            matrix or positions, RSSI values that do not match, a needed link with no RSSI.
    """
    placement = config.placement or tuple((k,) for k in range(stages))
    if len(placement) != stages:
        raise ConfigError(f"placement has {len(placement)} stages but the plan has {stages}")
    windows = config.windows or (config.window,) * (stages - 1)
    if len(windows) != stages - 1:
        raise ConfigError(
            f"windows has {len(windows)} values but the plan has {stages - 1} stage boundaries"
        )
    highest = max(b for boards in placement for b in boards)
    if config.rssi_matrix_dbm is not None:
        boards = len(config.rssi_matrix_dbm)
    elif config.positions_m is not None and config.rssi_dbm is None and config.placement:
        boards = len(config.positions_m)
    else:
        boards = max(highest + 1, stages)
    if highest >= boards:
        raise ConfigError(f"placement uses board {highest} but there are only {boards} boards")
    ap = config.ap_board - 1
    if config.transport == "wifi" and not 0 <= ap < boards:
        raise ConfigError(f"ap_board must be within 1..{boards}, got {config.ap_board}")
    hops = tuple(
        {
            (a, b): _hop(config, boundary, a, b, (stages, boards))
            for j, a in enumerate(placement[boundary])
            for k, b in enumerate(placement[boundary + 1])
            # Round-robin: only the replica pairs that carry some inference need a link.
            if pair_weights(len(placement[boundary]), len(placement[boundary + 1]))[j, k] > 0
        }
        for boundary in range(stages - 1)
    )
    return ResolvedDeployment(placement=placement, boards=boards, windows=tuple(windows), hops=hops)


def _hop(config: Any, boundary: int, a: int, b: int, size: tuple[int, int]) -> Hop:
    """The link a -> b of stage boundary ``boundary``; ``size`` = (stages, boards)."""
    stages, boards = size
    ap = config.ap_board - 1
    wifi = config.transport == "wifi"
    if config.rssi_dbm is not None:
        value = rssi_per_boundary(config, stages)[boundary]
        relay = value if wifi and ap not in (a, b) else None
        return Hop(a, b, value, relay)
    matrix = rssi_matrix(config, boards)
    if wifi and ap not in (a, b):
        return Hop(a, b, _needed(matrix, a, ap), _needed(matrix, ap, b))
    return Hop(a, b, _needed(matrix, a, b), None)


def rssi_per_boundary(config: Any, stages: int) -> tuple[float, ...]:
    """``config.rssi_dbm`` checked against ``stages`` stages (one value per boundary)."""
    values = tuple(float(r) for r in config.rssi_dbm)
    if len(values) != stages - 1:
        raise ConfigError(f"rssi_dbm has {len(values)} values but the plan has {stages - 1} links")
    return values


def _needed(matrix: np.ndarray, a: int, b: int) -> float:
    value = float(matrix[a, b])
    if math.isnan(value):
        raise ConfigError(
            f"no usable link between boards {a} and {b} (0-based; RSSI NaN) but one is needed"
        )
    return value


def rssi_matrix(config: Any, boards: int) -> np.ndarray:
    """The ``B x B`` RSSI matrix of ``config`` (dBm): given, or from board positions.

    Raises:
        ConfigError: neither a matrix nor positions, or a size that is not ``boards``.
    """
    if config.rssi_matrix_dbm is not None:
        return np.array(config.rssi_matrix_dbm, dtype=float)
    if config.positions_m is None:
        raise ConfigError(
            "give rssi_dbm (one value per link), rssi_matrix_dbm (B x B) or positions_m (per board)"
        )
    if len(config.positions_m) != boards:
        raise ConfigError(
            f"positions_m has {len(config.positions_m)} boards but the plan has {boards}"
        )
    rng = np.random.default_rng([config.seed, 999])
    return calibrated_rssi_matrix(config.positions_m, config.transport, rng)


def check_placement_fields(config: Any) -> None:
    """Checks of the placement fields that need no plan (run by ``PipelineConfig``).

    Raises:
        ConfigError: conflicting RSSI sources, a placement beyond the matrix or positions, bad
            windows.
    """
    given = (config.rssi_dbm is not None, config.positions_m is not None)
    if config.rssi_matrix_dbm is not None and any(given):
        raise ConfigError("give one of rssi_matrix_dbm, rssi_dbm or positions_m, not several")
    if config.placement is not None:
        size = _known_boards(config)
        highest = max(b for boards in config.placement for b in boards)
        if size is not None and highest >= size:
            raise ConfigError(
                f"placement uses board {highest} but there are only {size} boards (0..{size - 1})"
            )
    if config.windows is not None:
        bad = [w for w in config.windows if isinstance(w, bool) or not isinstance(w, int) or w < 1]
        if bad:
            raise ConfigError(f"windows must be integers >= 1, one per stage boundary, got {bad}")


def _known_boards(config: Any) -> int | None:
    if config.rssi_matrix_dbm is not None:
        return len(config.rssi_matrix_dbm)
    if config.positions_m is not None and config.rssi_dbm is None:
        return len(config.positions_m)
    return None


def pair_mean(values: Sequence[float]) -> float:
    """Mean of a boundary's per-pair values (the value itself with one pair)."""
    return values[0] if len(values) == 1 else float(np.mean(values))


def deployment_fields(plan: Plan) -> dict[str, Any]:
    """The :class:`~tinysplit.sim.pipeline.PipelineConfig` fields that run ``plan`` where its
    deployment (``partition --optimize``) says: placement, RSSI matrix and windows; empty for a
    plan without one."""
    chosen = plan.deployment
    if chosen is None:
        return {}
    return {
        "placement": chosen.boards,
        "rssi_matrix_dbm": chosen.rssi_dbm,
        "windows": chosen.windows,
    }
