"""The sweep directory: what a sweep shares, and one JSON record per finished point.

Layout of ``--out DIR``::

    sweep.json            format, shared options (with file and calibration hashes), last axes
    points/<point>.json   one finished point: its axis values and its whole run
    <archive>/            the result archives written by the sweeps (tinysplit.results)

Every file is written atomically (temporary file, then rename), so an interrupted sweep leaves
only whole records; a point is finished exactly when its record exists.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinysplit.errors import ConfigError
from tinysplit.sweep.grid import GridSpec, SweepPoint
from tinysplit.sweep.records import result_from_dict

if TYPE_CHECKING:
    from tinysplit.sim.pipeline import SimResult

FORMAT = 1
SPEC_FILE = "sweep.json"
POINTS_DIR = "points"


class SweepState:
    """A sweep directory opened for one grid.

    Args:
        root: the directory (created when missing).
        spec: the grid about to run.

    Raises:
        ConfigError: the directory cannot be written, is not a sweep directory, or holds a sweep
            whose shared options differ from ``spec``'s (the message names the first one).
    """

    def __init__(self, root: str | Path, spec: GridSpec) -> None:
        self.root = Path(root)
        self.points_dir = self.root / POINTS_DIR
        try:
            self.points_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--out {str(self.root)!r} cannot be created: {_why(exc)}") from exc
        shared = spec.shared.fingerprint()
        spec_file = self.root / SPEC_FILE
        if spec_file.exists():
            _check_shared(spec_file, shared)
        _write_json(spec_file, {"format": FORMAT, "shared": shared, "grid": spec.to_dict()})

    def path(self, point: SweepPoint) -> Path:
        """Where the record of ``point`` lives."""
        return self.points_dir / f"{point.name}.json"

    def finished(self, point: SweepPoint) -> bool:
        """Whether ``point`` has a record."""
        return self.path(point).is_file()

    def save(self, point: SweepPoint, result: dict[str, Any]) -> None:
        """Record a finished point (atomically)."""
        _write_json(
            self.path(point), {"format": FORMAT, "point": point.to_dict(), "result": result}
        )

    def load(self, point: SweepPoint) -> SimResult:
        """The run of a finished point.

        Raises:
            ConfigError: the record is unreadable or belongs to another point (delete it to run
                the point again).
        """
        path = self.path(point)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != FORMAT or data.get("point") != point.to_dict():
                raise ValueError("not this point's record")
            return result_from_dict(data["result"])
        except (OSError, ValueError, KeyError, AttributeError, ConfigError) as exc:
            raise ConfigError(
                f"point record {path} is damaged ({_why(exc)}): delete it to run the point again"
            ) from exc


def _check_shared(spec_file: Path, shared: dict[str, Any]) -> None:
    try:
        old = json.loads(spec_file.read_text(encoding="utf-8"))
        previous = old["shared"]
        if old.get("format") != FORMAT or not isinstance(previous, dict):
            raise ValueError("unknown format")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{spec_file} is not a tinysplit sweep file ({_why(exc)})") from exc
    for key in sorted(set(previous) | set(shared)):
        if previous.get(key) != shared.get(key):
            raise ConfigError(
                f"{spec_file.parent} holds a sweep with {key}={previous.get(key)!r}, not "
                f"{shared.get(key)!r}: keep the shared options or use another --out"
            )


def _write_json(path: Path, data: Any) -> None:
    """Write JSON atomically: a temporary file in the same directory, then rename."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        tmp.write_text(json.dumps(data, separators=(",", ":")) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {_why(exc)}") from exc


def _why(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or " ".join(str(exc).split()) or type(exc).__name__
