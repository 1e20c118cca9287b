"""Result archive writer: one directory per run, written atomically, safe against interruption.

Records go to a hidden ``.tmp-*`` directory inside the results directory: every
:meth:`ArchiveWriter.add` appends its rows to the CSV files there and rewrites ``manifest.json``
(``"complete": false``), so a killed process leaves a loadable, incomplete archive behind.
:meth:`ArchiveWriter.close` rewrites the tables in their documented column order, writes the final
manifest and renames the directory to ``<UTC stamp>_<testbed>_<transport>_<git sha>`` (``-2``,
``-3``... when that name is taken; an archive is never overwritten). See ``docs/results-format.md``.
"""

from __future__ import annotations

import csv
import dataclasses
import errno
import hashlib
import json
import os
import platform
import re
import secrets
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tinysplit
from tinysplit.errors import ConfigError
from tinysplit.links.calibration import (
    active_calibration,
    calibration_hash,
    default_profile,
    section,
)
from tinysplit.results.schema import (
    COLUMNS,
    EXTRA_PREFIX,
    SCHEMA_VERSION,
    TIME_COLUMNS,
    Kind,
    format_cell,
    jsonable,
)
from tinysplit.sim.energy import STATES
from tinysplit.sim.metrics import summarize

if TYPE_CHECKING:
    from tinysplit.sim.pipeline import SimResult

_NAME = re.compile(r"[A-Za-z0-9.+-]+")


class ArchiveWriter:
    """Collects simulated runs under case names and writes them as one result archive.

    Args:
        results_dir: directory holding archives; created when missing.
        testbed: testbed id for the directory name (letters, digits, ``.``, ``+``, ``-``).
        transport: transport id (or e.g. ``all``) for the directory name, same characters.
        manifest: extra configuration to record (options, seed, versions...), stored as
            ``session`` in ``manifest.json``; values that are not JSON become strings.

    Raises:
        ConfigError: ``results_dir`` cannot be created or written, or a bad testbed/transport.
    """

    def __init__(
        self,
        results_dir: str | Path,
        *,
        testbed: str,
        transport: str,
        manifest: Mapping[str, Any],
    ) -> None:
        for what, value in (("testbed", testbed), ("transport", transport)):
            if not _NAME.fullmatch(value):
                raise ConfigError(f"{what} {value!r} must be letters, digits, '.', '+' or '-'")
        self.results_dir = Path(results_dir)
        now = _utcnow()
        self._stamp = now.strftime("%Y%m%dT%H%M%SZ")
        self._info: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "complete": False,
            "created_utc": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "finished_utc": None,
            "testbed": testbed,
            "transport": transport,
            **_environment(),
            "session": jsonable(manifest),
        }
        self._plans: dict[str, Any] = {}
        self._cases: list[dict[str, Any]] = []
        self._rows: dict[str, list[dict[str, Any]]] = {name: [] for name in COLUMNS}
        self._extras: list[str] = []
        self._closed = False
        self._tmp = _make_tmp(self.results_dir, f".tmp-{self._stamp}-{os.getpid()}")
        for name in COLUMNS:
            self._write_table(name)
        self._write_manifest()

    @property
    def temp_dir(self) -> Path:
        """The hidden directory records go to until :meth:`close` renames it."""
        return self._tmp

    def add(
        self,
        case: str,
        result: SimResult,
        *,
        run: int = 0,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Record one simulated run of ``case`` and append its rows to the files on disk.

        Args:
            case: case name (e.g. ``latency[ble]``).
            result: the simulator's records.
            run: repetition number of this case (0-based), so one case can hold several runs.
            extra: more figures or labels of the run (benchmark name, group, params...), added to
                its summary row as ``extra_<key>`` columns (nested mappings as
                ``extra_<key>_<subkey>``; lists and other values as JSON text).

        Raises:
            ConfigError: an empty case name, a negative run, a (case, run) already recorded or
                non-string extra keys.
            RuntimeError: the writer is closed.
        """
        if self._closed:
            raise RuntimeError("ArchiveWriter.add() after close()")
        if not case or isinstance(run, bool) or run < 0:
            raise ConfigError(f"bad case {case!r} / run {run!r}: need a name and a run >= 0")
        if any(c["case"] == case and c["run"] == run for c in self._cases):
            raise ConfigError(f"case {case!r} run {run} is already recorded")
        flat = _flatten(extra or {}, EXTRA_PREFIX)
        plan = jsonable(result.plan.to_dict())
        plan_id = _short_hash(plan)
        rows = _rows(case, run, result, plan_id, flat)
        # Everything is computed before anything is written: a failing add records nothing.
        self._plans.setdefault(plan_id, plan)
        self._cases.append(
            {
                "case": case,
                "run": run,
                "config": jsonable(dataclasses.asdict(result.config)),
                "plan": plan_id,
                "rssi_dbm": jsonable(list(result.rssi_dbm)),
                "setup_s": jsonable(list(result.setup_s)),
                "placement": jsonable(
                    list(result.placement) or [[k] for k in range(len(result.plan.stages))]
                ),
                "extra": jsonable(extra or {}),
            }
        )
        new_extras = sorted(set(self._extras) | set(flat))
        for name, table_rows in rows.items():
            self._rows[name].extend(table_rows)
            if name == "summary" and new_extras != self._extras:
                self._extras = new_extras
                self._write_table(name)  # a new column: rewrite the (small) summary
            else:
                self._append(name, table_rows)
        self._write_manifest()

    def close(self, *, complete: bool) -> Path:
        """Finalize the archive and move it to its permanent name.

        Args:
            complete: False marks the manifest ``"complete": false`` (an interrupted run: every
                recorded run is kept).

        Returns:
            The archive directory, ``results_dir/<UTC stamp>_<testbed>_<transport>_<git sha>``.

        Raises:
            ConfigError: the directory cannot be written or renamed (the temporary one is kept).
            RuntimeError: the writer is already closed.
        """
        if self._closed:
            raise RuntimeError("ArchiveWriter.close() called twice")
        for name in COLUMNS:
            self._write_table(name)
        self._info["complete"] = bool(complete)
        self._info["finished_utc"] = _utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
        self._write_manifest()
        base = f"{self._stamp}_{self._info['testbed']}_{self._info['transport']}"
        base += f"_{self._info['git_sha']}"
        for n in range(1, 10_000):
            final = self.results_dir / (base if n == 1 else f"{base}-{n}")
            if final.exists():
                continue
            try:
                # Fails on a non-empty target, and archives are never empty: no overwrite race.
                self._tmp.rename(final)
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    continue
                raise ConfigError(f"cannot finalize result archive {final}: {exc}") from exc
            self._closed = True
            return final
        raise ConfigError(f"cannot finalize result archive: too many archives named {base}")

    def _columns(self, name: str) -> list[str]:
        columns = [c for c, _ in COLUMNS[name]]
        return columns + self._extras if name == "summary" else columns

    def _write_table(self, name: str) -> None:
        """Write a whole table from memory (its header alone when empty)."""
        columns = self._columns(name)
        kinds = _kinds(name, self._extras)
        path = self._tmp / f"{name}.csv"
        with _io_errors(path), path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            writer.writerows(_cells(self._rows[name], columns, kinds))

    def _append(self, name: str, rows: Sequence[Mapping[str, Any]]) -> None:
        columns = self._columns(name)
        kinds = _kinds(name, self._extras)
        path = self._tmp / f"{name}.csv"
        with _io_errors(path), path.open("a", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(_cells(rows, columns, kinds))

    def _write_manifest(self) -> None:
        data = {
            **self._info,
            "tables": {name: self._columns(name) for name in COLUMNS},
            "plans": self._plans,
            "cases": self._cases,
        }
        path = self._tmp / "manifest.json"
        part = path.with_name("manifest.json.part")
        with _io_errors(path):
            part.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
            os.replace(part, path)


def _rows(
    case: str, run: int, result: SimResult, plan_id: str, extra: Mapping[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    """The rows one run adds to each table."""
    config = result.config
    key = {"case": case, "run": run}
    completed, failed = set(result.completed), set(result.failed)
    inferences = [
        {
            **key,
            **{f: getattr(e, f) for f in ("inference", "stage")},
            "injected_s": (
                result.injected_s[e.inference]
                if e.stage == 1 and e.inference < len(result.injected_s)
                else None
            ),
            **{f: getattr(e, f) for f in TIME_COLUMNS},
            "completed": e.inference in completed,
            "failed": e.inference in failed,
            "board": e.board,
        }
        for e in result.stage_events
    ]
    links = [
        {
            **key,
            "inference": e.inference,
            "link": f"{e.stage}->{e.stage + 1}",
            "stage": e.stage,
            "bytes": e.bytes,
            "rssi_dbm": e.rssi_dbm,
            "window": e.window,
            "mode": str(config.mode.value),
            **dataclasses.asdict(e.result),
            "sender_board": e.sender,
            "receiver_board": e.receiver,
        }
        for e in result.link_events
    ]
    supply_v = float(section("power")["supply_v"])
    energy = []
    for board, states in enumerate(result.energy_j, start=1):
        base = {**key, "board": board, "duration_s": result.duration_s}
        names = [s for s in STATES if s in states] + sorted(set(states) - set(STATES))
        energy += [{**base, "state": s, "energy_j": states[s]} for s in names]
        total = sum(states.values())
        volt_seconds = supply_v * result.duration_s
        current = total / volt_seconds * 1000.0 if volt_seconds > 0 else None
        energy.append({**base, "state": "total", "energy_j": total, "mean_current_ma": current})
    s = summarize(result)
    summary = {
        **key,
        "transport": config.transport,
        "profile": config.link_profile or default_profile(config.transport),
        "mode": str(config.mode.value),
        "window": config.window,
        "seed": config.seed,
        "boards": len(result.energy_j) or _physical_boards(result),
        "plan": plan_id,
        **{f"latency_{q}_s": s["latency_s"][q] for q in ("p50", "p95", "mean")},
        **{c: s[c] for c, _ in COLUMNS["summary"] if c in s},
        "stages": len(result.plan.stages),  # summarize's ``stages`` is the per-stage list
        **extra,
    }
    return {"inferences": inferences, "links": links, "energy": energy, "summary": [summary]}


def _physical_boards(result: SimResult) -> int:
    """Boards a run used when it recorded no energy: the highest board any record names."""
    named = [e.board for e in result.stage_events] + [
        b for e in result.link_events for b in (e.sender, e.receiver)
    ]
    return max([len(result.plan.stages), *named])


def _kinds(name: str, extras: Sequence[str]) -> dict[str, Kind | None]:
    kinds: dict[str, Kind | None] = dict(COLUMNS[name])
    if name == "summary":
        kinds.update(dict.fromkeys(extras))
    return kinds


def _cells(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], kinds: Mapping[str, Kind | None]
) -> list[list[str]]:
    return [[format_cell(r.get(c), kinds[c]) for c in columns] for r in rows]


def _flatten(extra: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in extra.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"extra keys must be non-empty strings, got {key!r}")
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}_"))
            continue
        plain = jsonable(value)
        scalar = plain is None or isinstance(plain, str | int | float)
        flat[prefix + key] = plain if scalar else json.dumps(plain, sort_keys=True)
    return flat


def _short_hash(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _make_tmp(results_dir: Path, prefix: str) -> Path:
    """Create the hidden record directory (with the umask's permissions, unlike mkdtemp)."""
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        while True:
            tmp = results_dir / f"{prefix}-{secrets.token_hex(3)}"
            try:
                tmp.mkdir()
            except FileExistsError:
                continue
            return tmp
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"results dir {results_dir} cannot be written: {reason}") from exc


@contextmanager
def _io_errors(path: Path) -> Iterator[None]:
    """Turn an OSError while writing ``path`` into a one-line ConfigError."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"cannot write {path}: {reason}") from exc


def _environment() -> dict[str, Any]:
    """Versions, machine and calibration recorded with every archive."""
    sha, dirty = _git()
    user_file = active_calibration().path
    packages: dict[str, str | None] = {}
    for name in ("numpy", "onnx", "pandas"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    return {
        "git_sha": sha,
        "git_dirty": dirty,
        "tinysplit_version": tinysplit.__version__,
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
        },
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
        },
        "packages": packages,
        "calibration_hash": calibration_hash(),
        "calibration_file": None if user_file is None else str(user_file),
    }


def _git() -> tuple[str, bool | None]:
    """Short sha of the working directory's git HEAD and whether tracked files changed.

    Outside a repository (or without git) the sha is ``nogit`` and the flag None.
    """
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "nogit", None
    if not re.fullmatch(r"[0-9a-f]{4,64}", sha):
        return "nogit", None
    return sha, bool(status.strip())
