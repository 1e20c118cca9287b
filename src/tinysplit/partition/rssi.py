"""Pairwise RSSI of a set of physical boards: what placement optimises over.

A :class:`RssiMatrix` names ``B`` boards and holds a symmetric ``B x B`` matrix of RSSI in dBm
(NaN: no usable link; the diagonal is NaN). :func:`load_rssi_matrix` reads one from:

* a TOML or JSON table ``{"boards": [names...], "rssi_dbm": [[...], ...]}`` where ``null``,
  ``"nan"``, ``nan`` (TOML) mean no link; or ``links = [{a = "b1", b = "b2", rssi_dbm = -60}, ...]``
  instead of the full matrix (pairs not listed have no link);
* board positions ``{"positions": [[x, y], ...]}`` (or ``spacing_m`` for boards in a line, or a
  named layout such as ``desk``) through the calibrated path-loss model
  (:func:`rssi_from_positions`, the simulator's shadowing draw for the same seed);
* per-link values ``{"rssi_dbm": [r12, r23, ...]}`` (a layout like ``paper``): a chain whose only
  links are board k <-> k+1;
* the output of ``tinysplit survey --json`` / ``--out`` (its boards, in stage order).

Measured matrices are rarely symmetric: the two ends of a link hear each other a few dB apart.
Values up to :data:`MAX_ASYMMETRY_DB` apart are averaged; a link known from one end only takes
that value; larger differences are an error (one end is probably wrong).
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tinysplit.errors import ConfigError

FloatArray = npt.NDArray[np.float64]

#: Largest difference (dB) between the two directions of a link that is averaged.
MAX_ASYMMETRY_DB = 6.0
#: Valid RSSI values, dBm.
RSSI_RANGE_DBM = (-130.0, 20.0)
#: ``format`` of a ``tinysplit survey`` matrix file.
SURVEY_FORMAT = "tinysplit-rssi-matrix"


@dataclass(frozen=True, slots=True, kw_only=True)
class RssiMatrix:
    """Named boards and their symmetric pairwise RSSI.

    Attributes:
        names: board names, one per board (unique).
        dbm: ``dbm[a][b]``, RSSI of the link between boards ``a`` and ``b`` in dBm; NaN where
            there is no usable link and on the diagonal.
    """

    names: tuple[str, ...]
    dbm: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        n = len(self.names)
        if n < 2:
            raise ConfigError(f"an RSSI matrix needs at least 2 boards, got {n}")
        if any(not isinstance(s, str) or not s for s in self.names):
            raise ConfigError("RSSI matrix: board names must be non-empty strings")
        if len(set(self.names)) != n:
            raise ConfigError("RSSI matrix: board names must be unique")
        if len(self.dbm) != n or any(len(row) != n for row in self.dbm):
            raise ConfigError(f"RSSI matrix must be {n} x {n} (one row and column per board)")
        arr = np.array(self.dbm, dtype=np.float64)
        if not np.isnan(np.diag(arr)).all():
            raise ConfigError("RSSI matrix: the diagonal must be empty (a board has no self-link)")
        low, high = RSSI_RANGE_DBM
        values = arr[~np.isnan(arr)]
        if values.size and not ((values >= low) & (values <= high)).all():
            raise ConfigError(f"RSSI matrix: values must be within {low:g}..{high:g} dBm")
        same = (np.isnan(arr) & np.isnan(arr.T)) | np.isclose(arr, arr.T, rtol=0.0, atol=1e-9)
        if not same.all():
            a, b = (int(v[0]) for v in np.nonzero(~same))
            raise ConfigError(
                f"RSSI matrix must be symmetric: {self.names[a]}->{self.names[b]} differs from "
                f"{self.names[b]}->{self.names[a]} (load it with load_rssi_matrix to average)"
            )
        lonely = [self.names[i] for i in range(n) if np.isnan(arr[i]).all()]
        if lonely:
            raise ConfigError(f"RSSI matrix: board {lonely[0]} has no link to any other board")

    @property
    def boards(self) -> int:
        """Number of boards B."""
        return len(self.names)

    @property
    def array(self) -> FloatArray:
        """The matrix as a new ``B x B`` float array (NaN: no link)."""
        return np.array(self.dbm, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, readable by :func:`load_rssi_matrix` (no link = null)."""
        return {
            "boards": list(self.names),
            "rssi_dbm": [[None if math.isnan(v) else v for v in row] for row in self.dbm],
        }

    @classmethod
    def from_array(
        cls,
        dbm: npt.ArrayLike | Sequence[Sequence[float | None]],
        names: Sequence[str] | None = None,
        *,
        where: str = "RSSI matrix",
    ) -> RssiMatrix:
        """Build from a square array, symmetrising it (see the module docstring).

        Args:
            dbm: ``B x B`` values in dBm; NaN (or None) for no link; the diagonal is ignored.
            names: board names (``b0``, ``b1``, ... when None).
            where: what to name in error messages.

        Raises:
            ConfigError: not square, names of the wrong count, directions more than
                :data:`MAX_ASYMMETRY_DB` apart, out-of-range values, a board with no link.
        """
        try:
            raw = np.array(
                [[math.nan if v is None else v for v in row] for row in np.asarray(dbm, object)],
                dtype=np.float64,
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: RSSI values must be numbers or null ({exc})") from None
        if raw.ndim != 2 or raw.shape[0] != raw.shape[1]:
            raise ConfigError(f"{where}: the RSSI matrix must be square, got shape {raw.shape}")
        n = raw.shape[0]
        names = tuple(names) if names is not None else tuple(f"b{i}" for i in range(n))
        if len(names) != n:
            raise ConfigError(f"{where}: {len(names)} board names for a {n} x {n} matrix")
        np.fill_diagonal(raw, math.nan)
        return cls(names=names, dbm=_symmetric(raw, names, where))


def _symmetric(raw: FloatArray, names: Sequence[str], where: str) -> tuple[tuple[float, ...], ...]:
    """Average the two directions of every link (one known direction is taken as is)."""
    low, high = RSSI_RANGE_DBM
    bad = ~np.isnan(raw) & ((raw < low) | (raw > high))
    if bad.any():
        a, b = (int(v[0]) for v in np.nonzero(bad))
        raise ConfigError(
            f"{where}: {names[a]}->{names[b]} = {raw[a, b]:g} dBm is outside {low:g}..{high:g}"
        )
    both = ~np.isnan(raw) & ~np.isnan(raw.T)
    gap = np.where(both, np.abs(raw - raw.T), 0.0)
    if (gap > MAX_ASYMMETRY_DB).any():
        a, b = (int(v[0]) for v in np.nonzero(gap > MAX_ASYMMETRY_DB))
        raise ConfigError(
            f"{where}: {names[a]}->{names[b]} ({raw[a, b]:g} dBm) and the reverse "
            f"({raw[b, a]:g} dBm) differ by more than {MAX_ASYMMETRY_DB:g} dB"
        )
    sym = np.where(both, 0.5 * (raw + raw.T), np.where(np.isnan(raw), raw.T, raw))
    return tuple(tuple(float(v) for v in row) for row in sym)


def rssi_from_positions(
    positions_m: Sequence[Sequence[float]],
    transport: str,
    seed: int = 0,
    *,
    names: Sequence[str] | None = None,
) -> RssiMatrix:
    """RSSI of boards at ``positions_m`` (x, y[, z] metres) from the calibrated path-loss model.

    The shadowing draw is the simulator's for the same seed (``PipelineConfig(positions_m=...,
    seed=seed)`` sees the same links).

    Raises:
        ConfigError: fewer than two boards, bad or coincident positions, unknown transport.
    """
    from tinysplit.links.signal import calibrated_rssi_matrix

    matrix = calibrated_rssi_matrix(positions_m, transport, np.random.default_rng([seed, 999]))
    clipped = np.clip(matrix, *RSSI_RANGE_DBM)  # boards kilometres apart are simply dead
    return RssiMatrix.from_array(clipped, names, where="positions")


def load_rssi_matrix(
    path: str | Path,
    *,
    boards: int | None = None,
    transport: str | None = None,
    seed: int = 0,
) -> RssiMatrix:
    """Read an RSSI matrix from a file (TOML or JSON) or a named layout (module docstring).

    Args:
        path: the file, or a named layout of :mod:`tinysplit.sim.layout` (``desk``, ``room``,
            ``paper``).
        boards: the number of boards the caller needs (None: any); layouts given by spacing
            need it.
        transport: for positions: the transport whose TX power sets the RSSI (overrides the
            file's ``transport`` key).
        seed: for positions: the shadowing seed (the file's ``seed`` key when given).

    Raises:
        ConfigError: unreadable or malformed file, a matrix of the wrong size for ``boards``,
            not square, out-of-range values, directions too far apart, a board with no link;
            one line naming the file.
    """
    from tinysplit.sim.layout import builtin_layouts

    text = str(path)
    file = Path(text)
    if not file.is_file() and text in builtin_layouts():
        table: Any = dict(builtin_layouts()[text])
        where = f"layout {text!r}"
    else:
        where = text
        try:
            raw = file.read_text("utf-8")
        except OSError as exc:
            raise ConfigError(
                f"{where}: cannot read the RSSI matrix ({exc.strerror or exc})"
            ) from exc
        try:
            table = json.loads(raw) if file.suffix.lower() == ".json" else tomllib.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            kind = "JSON" if file.suffix.lower() == ".json" else "TOML"
            raise ConfigError(f"{where}: not valid {kind} ({exc})") from None
    matrix = _from_table(table, where, boards=boards, transport=transport, seed=seed)
    if boards is not None and matrix.boards != boards:
        raise ConfigError(f"{where}: the matrix has {matrix.boards} boards, {boards} are needed")
    return matrix


def _from_table(
    table: Any, where: str, *, boards: int | None, transport: str | None, seed: int
) -> RssiMatrix:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: an RSSI matrix file must hold a table (object)")
    if table.get("format") == SURVEY_FORMAT:
        return _from_survey(table, where)
    names = table.get("boards")
    if names is not None and (
        not isinstance(names, list) or not all(isinstance(n, str) for n in names)
    ):
        raise ConfigError(f"{where}: boards must be a list of board names")
    rssi = table.get("rssi_dbm")
    if isinstance(rssi, list) and rssi and all(isinstance(row, list) for row in rssi):
        return RssiMatrix.from_array(_numbers(rssi, where), names, where=where)
    if "links" in table:
        return _from_links(table["links"], names, where)
    if "positions" in table or "spacing_m" in table or "rssi_dbm" in table:
        return _from_layout(table, names, where, boards, transport, seed)
    raise ConfigError(
        f"{where}: give rssi_dbm (a matrix), links, positions, spacing_m, or a survey file"
    )


def _numbers(rows: list[Any], where: str) -> list[list[float]]:
    """Rows of numbers with ``null`` / ``"nan"`` / nan meaning no link."""
    out: list[list[float]] = []
    for i, row in enumerate(rows):
        values: list[float] = []
        for j, v in enumerate(row):
            if v is None or (isinstance(v, str) and v.strip().lower() == "nan"):
                values.append(math.nan)
            elif isinstance(v, int | float) and not isinstance(v, bool):
                values.append(float(v))
            else:
                raise ConfigError(f"{where}: rssi_dbm[{i}][{j}] = {v!r} is not a number or null")
        out.append(values)
    if any(len(r) != len(out) for r in out):
        raise ConfigError(
            f"{where}: rssi_dbm must be square: {len(out)} rows of "
            f"{sorted({len(r) for r in out})} values"
        )
    return out


def _from_links(links: Any, names: list[str] | None, where: str) -> RssiMatrix:
    if names is None:
        raise ConfigError(f"{where}: a links table needs the boards list")
    index = {n: i for i, n in enumerate(names)}
    raw = np.full((len(names), len(names)), math.nan)
    if not isinstance(links, list):
        raise ConfigError(f"{where}: links must be a list of {{a, b, rssi_dbm}} tables")
    for k, link in enumerate(links):
        if not isinstance(link, Mapping) or {"a", "b", "rssi_dbm"} - set(link):
            raise ConfigError(f"{where}: links[{k}] needs a, b and rssi_dbm")
        a, b, value = link["a"], link["b"], link["rssi_dbm"]
        if not isinstance(a, str) or not isinstance(b, str):
            raise ConfigError(f"{where}: links[{k}].a and .b must be board names (strings)")
        if a not in index or b not in index or a == b:
            raise ConfigError(f"{where}: links[{k}] joins unknown or identical boards {a!r}, {b!r}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: links[{k}].rssi_dbm must be a number")
        raw[index[a], index[b]] = float(value)
    return RssiMatrix.from_array(raw, names, where=where)


def _from_layout(
    table: Mapping[str, Any],
    names: list[str] | None,
    where: str,
    boards: int | None,
    transport: str | None,
    seed: int,
) -> RssiMatrix:
    """Positions, spacing or per-link values, validated by :func:`sim.layout.layout_from_table`."""
    from tinysplit.sim.layout import layout_from_table

    if "positions" in table:
        count = len(table["positions"]) if isinstance(table["positions"], list) else 0
    elif "rssi_dbm" in table:
        count = len(table["rssi_dbm"]) + 1 if isinstance(table["rssi_dbm"], list) else 0
    elif boards is None:
        raise ConfigError(f"{where}: boards in a line (spacing_m) need the number of boards")
    else:
        count = boards
    keys = {k: table[k] for k in ("positions", "spacing_m", "rssi_dbm") if k in table}
    layout = layout_from_table(keys, count, where)
    if layout.rssi_dbm is not None:
        raw = np.full((count, count), math.nan)
        for k, value in enumerate(layout.rssi_dbm):
            raw[k, k + 1] = raw[k + 1, k] = value
        return RssiMatrix.from_array(raw, names, where=where)
    assert layout.positions_m is not None
    kind = transport or table.get("transport")
    if not isinstance(kind, str):
        raise ConfigError(f"{where}: positions need a transport (the file's or the caller's)")
    file_seed = table.get("seed", seed)
    if isinstance(file_seed, bool) or not isinstance(file_seed, int):
        raise ConfigError(f"{where}: seed must be an integer")
    return rssi_from_positions(layout.positions_m, kind, file_seed, names=names)


def _from_survey(data: Mapping[str, Any], where: str) -> RssiMatrix:
    """The boards' block of a ``tinysplit survey`` matrix (the host's row and column dropped)."""
    from tinysplit.testbed.hw.survey import Survey

    survey = Survey.from_dict(dict(data), where=where)
    idx = [i for i, node in enumerate(survey.nodes) if node.kind == "board"]
    raw = np.array(
        [
            [math.nan if survey.matrix[i][j] is None else survey.matrix[i][j] for j in idx]
            for i in idx
        ],
        dtype=np.float64,
    )
    return RssiMatrix.from_array(raw, [survey.nodes[i].name for i in idx], where=where)
