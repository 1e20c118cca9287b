"""Read a result archive back as pandas DataFrames (pandas is imported only here, on use)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinysplit.errors import ConfigError
from tinysplit.results.schema import ADDED_IN_2, COLUMNS, SCHEMA_VERSION, Kind

if TYPE_CHECKING:
    import pandas as pd

_BOOLS = {"true": True, "false": False}


@dataclass(frozen=True, slots=True, kw_only=True)
class Archive:
    """One result archive (``docs/results-format.md`` documents every column).

    Attributes:
        path: the archive directory.
        manifest: the parsed ``manifest.json``.
        inferences: one row per (case, run, inference, stage): scribe event times in seconds.
        links: one row per tensor transfer: bytes, frames, retransmissions, radio seconds.
        energy: one row per (case, run, board, state) in joules, plus a ``total`` row per board
            with its mean current in mA.
        summary: one row per (case, run): latency, throughput, network vs compute, energy, and
            the ``extra_*`` columns given to the writer.
    """

    path: Path
    manifest: dict[str, Any]
    inferences: pd.DataFrame
    links: pd.DataFrame
    energy: pd.DataFrame
    summary: pd.DataFrame

    @property
    def complete(self) -> bool:
        """False for an interrupted run (or a hidden ``.tmp-*`` directory read as is)."""
        return bool(self.manifest.get("complete", False))


def load(path: str | Path) -> Archive:
    """Read the archive in directory ``path``.

    Columns have their documented dtypes: ``bool`` for flags, ``int64`` for counts, ``float64``
    for times, sizes in floats and energies (NaN where the CSV cell is empty), ``str`` for names;
    ``extra_*`` summary columns get the types pandas infers. Empty tables keep their columns.
    A version 1 archive (every stage on its own board) gets the columns added since: ``board``
    = ``stage``, ``sender_board`` / ``receiver_board`` = ``stage`` / ``stage + 1``, ``stages`` =
    ``boards``.

    Raises:
        ConfigError: ``path`` is not a directory or not an archive (no ``manifest.json``), the
            manifest is unreadable or not JSON, its ``schema_version`` is newer than
            :data:`SCHEMA_VERSION`, or a CSV file is missing or malformed.
    """
    root = Path(path)
    if not root.is_dir():
        raise ConfigError(f"{root}: not a directory")
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise ConfigError(f"{root}: not a result archive (no manifest.json)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{manifest_path}: cannot read it ({_one_line(exc)})") from exc
    version = manifest.get("schema_version") if isinstance(manifest, dict) else None
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ConfigError(f"{manifest_path}: not a result archive manifest (no schema_version)")
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"{root}: archive schema_version {version} is newer than this tinysplit reads "
            f"({SCHEMA_VERSION}); upgrade tinysplit"
        )
    tables = {name: _read_table(root, name, version) for name in COLUMNS}
    return Archive(path=root, manifest=manifest, **tables)


def _read_table(root: Path, name: str, version: int) -> pd.DataFrame:
    """Read ``<name>.csv`` with the schema's dtypes (filling columns a version 1 archive lacks)."""
    import pandas as pd

    file = root / f"{name}.csv"
    if not file.is_file():
        raise ConfigError(f"{root}: missing {file.name} (damaged or unfinished archive)")
    try:
        raw = pd.read_csv(file, dtype=str, keep_default_na=False, na_filter=False)
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # pandas parse errors are ValueError
        raise ConfigError(f"{file}: cannot read it ({_one_line(exc)})") from exc
    known = dict(COLUMNS[name])
    if version < 2:
        for (table, column), (source, offset) in ADDED_IN_2.items():
            if table == name and column not in raw.columns and source in raw.columns:
                raw[column] = [str(int(v) + offset) if v else v for v in raw[source]]
    missing = [c for c in known if c not in raw.columns]
    if missing:
        raise ConfigError(f"{file}: missing columns {', '.join(missing)}")
    columns = {c: _convert(raw[c], kind, file) for c, kind in known.items()}
    others = [c for c in raw.columns if c not in known]
    if others:
        # Extra columns carry no declared kind: let pandas infer it; only empty cells are NaN.
        inferred = pd.read_csv(file, usecols=others, keep_default_na=False, na_values=[""])
        columns.update({c: inferred[c] for c in others})
    return pd.DataFrame(columns, index=pd.RangeIndex(len(raw)))


def _convert(column: pd.Series, kind: Kind, file: Path) -> pd.Series:
    try:
        match kind:
            case "str":
                return column
            case "int":
                return column.astype("int64")
            case "float":
                return column.replace("", "nan").astype("float64")
            case "bool":
                flags = column.map(_BOOLS)
                if flags.isna().any():
                    raise ValueError("not true/false")
                return flags.astype(bool)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{file}: column {column.name} holds a value that is not {kind} ({_one_line(exc)})"
        ) from exc


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
