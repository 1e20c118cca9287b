"""Archive schema: the version, the tables' columns and kinds, and how values become text.

Shared by the writer (:mod:`tinysplit.results.archive`) and the loader
(:mod:`tinysplit.results.load`); ``docs/results-format.md`` documents every column.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import Any, Literal

#: Version of the archive layout; bumped on any change a reader of the previous one would misread.
#: 2: boards are physical boards (stages may run on several, ``placement``): ``board`` columns in
#: ``inferences`` and ``links``, ``stages`` in ``summary``.
SCHEMA_VERSION = 2

Kind = Literal["str", "int", "float", "bool"]

#: The scribe's event times of one inference on one board (``inferences.csv``).
TIME_COLUMNS = tuple(
    f"{event}_{edge}_s" for event in ("receive", "inference", "send") for edge in ("start", "end")
)
_TIMES: tuple[tuple[str, Kind], ...] = tuple((c, "float") for c in TIME_COLUMNS)
_RADIO: tuple[tuple[str, Kind], ...] = tuple(
    (f"{end}_{way}_s", "float") for end in ("sender", "receiver", "relay") for way in ("tx", "rx")
)
_KEY: tuple[tuple[str, Kind], ...] = (("case", "str"), ("run", "int"))

#: Columns of every table, in file order, with their kind (summary: then ``extra_*`` columns).
COLUMNS: Mapping[str, tuple[tuple[str, Kind], ...]] = {
    "inferences": (
        *_KEY,
        ("inference", "int"),
        ("stage", "int"),
        ("injected_s", "float"),
        *_TIMES,
        ("completed", "bool"),
        ("failed", "bool"),
        ("board", "int"),
    ),
    "links": (
        *_KEY,
        ("inference", "int"),
        ("link", "str"),
        ("stage", "int"),
        ("bytes", "int"),
        ("rssi_dbm", "float"),
        ("window", "int"),
        ("mode", "str"),
        ("delivered", "bool"),
        ("duration_s", "float"),
        ("app_frames", "int"),
        ("retransmissions", "int"),
        ("drops", "int"),
        ("link_retries", "int"),
        ("bytes_on_air", "int"),
        *_RADIO,
        ("sender_board", "int"),
        ("receiver_board", "int"),
    ),
    "energy": (
        *_KEY,
        ("board", "int"),
        ("state", "str"),
        ("energy_j", "float"),
        ("duration_s", "float"),
        ("mean_current_ma", "float"),
    ),
    "summary": (
        *_KEY,
        ("transport", "str"),
        ("profile", "str"),
        ("mode", "str"),
        ("window", "int"),
        ("seed", "int"),
        ("boards", "int"),
        ("plan", "str"),
        ("inferences", "int"),
        ("completed", "int"),
        ("failed", "int"),
        ("duration_s", "float"),
        ("latency_p50_s", "float"),
        ("latency_p95_s", "float"),
        ("latency_mean_s", "float"),
        ("throughput_per_s", "float"),
        ("network_s", "float"),
        ("inference_s", "float"),
        ("network_to_inference", "float"),
        ("energy_total_j", "float"),
        ("energy_per_inference_j", "float"),
        ("stages", "int"),
    ),
}
#: Columns added after version 1, and how to fill them when reading a version 1 archive (every
#: stage on its own board then): ``(table, column) -> (source column, offset)``.
ADDED_IN_2: Mapping[tuple[str, str], tuple[str, int]] = {
    ("inferences", "board"): ("stage", 0),
    ("links", "sender_board"): ("stage", 0),
    ("links", "receiver_board"): ("stage", 1),
    ("summary", "stages"): ("boards", 0),
}
#: Prefix of the summary columns flattened from ``add(..., extra=...)``.
EXTRA_PREFIX = "extra_"


def format_cell(value: Any, kind: Kind | None) -> str:
    """One CSV cell: empty for a missing value or NaN, ``true``/``false`` for booleans."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool) or kind == "bool":
        return "true" if value else "false"
    if kind == "float" or isinstance(value, float):
        return repr(float(value))  # shortest text that reads back to the same float
    return str(value)


def jsonable(value: Any) -> Any:
    """Plain JSON of ``value``: enums as their value, tuples and arrays as lists, numpy scalars as
    numbers, NaN/inf as null, anything else as its text."""
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if hasattr(value, "tolist") and not isinstance(value, str | int | float):
        return jsonable(value.tolist())  # numpy scalars and arrays
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)
