"""RSSI survey of a testbed: ``tinysplit survey --inventory boards.toml``, and its matrix file.

Two views go into one matrix:

* **The boards' own view.** Every board's console answers ``rssi`` with the RSSI of its UP link
  (packets from stage k-1) and DOWN link (packets from stage k+1), as its transport measures it
  (``docs/protocol.md``, "Console").
* **The host's view** (BLE only). The host scans the boards' advertisements with bleak
  (:mod:`tinysplit.testbed.hw.ble_scan`) and records the median RSSI of each board's
  advertisements at the host. Without a Bluetooth adapter the survey says so and keeps the
  boards' view, unless the scan is required.

The matrix file (JSON, written atomically; ``docs/hardware.md`` "RSSI matrix file") lists the
nodes (the boards by stage, then the host) and ``matrix[i][j]``: the RSSI in dBm that node ``i``
measured on packets from node ``j`` (null when unknown), with ``source[i][j]`` saying who
measured it (``board`` or ``host``). :func:`load_survey` reads it back for placement and
simulation, with clear errors for a damaged file or missing links.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tinysplit.errors import BoardError, ConfigError
from tinysplit.fileio import write_text_atomic

if TYPE_CHECKING:
    from bleak.backends.scanner import BaseBleakScanner

    from tinysplit.testbed.hw.ble_scan import BoardAdvert
    from tinysplit.testbed.hw.inventory import BoardSpec, Inventory

log = logging.getLogger(__name__)

#: ``format`` of the matrix file.
MATRIX_FORMAT = "tinysplit-rssi-matrix"
#: ``version`` of the matrix file layout.
MATRIX_VERSION = 1
#: Name of the host's node.
HOST = "host"
#: RSSI values outside this range (dBm) are not measurements.
RSSI_RANGE_DBM = (-130.0, 20.0)
#: The model an emulated testbed is started with for a survey: the survey runs no inference, so
#: the smallest MobileNet keeps the emulator's start (it quantizes the model) short.
EMULATED_SURVEY_MODEL = "mobilenet_v1:alpha=0.25,input_size=32"

Source = Literal["board", "host"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SurveyNode:
    """One node of the matrix: a pipeline board or the host.

    Attributes:
        name: board name (as in the inventory) or ``host``.
        kind: ``board`` or ``host``.
        stage: the board's 1-based stage (None for the host).
        port: the board's serial port as opened (None for the host or when unknown).
        mac: the board's MAC from the inventory.
        address: the Bluetooth address the host heard it advertise from (BLE scan only).
    """

    name: str
    kind: Literal["board", "host"]
    stage: int | None = None
    port: str | None = None
    mac: str | None = None
    address: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "name": self.name,
            "kind": self.kind,
            "stage": self.stage,
            "port": self.port,
            "mac": self.mac,
            "address": self.address,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Survey:
    """A surveyed RSSI matrix (see the module docstring for its meaning).

    Attributes:
        nodes: the boards in stage order (stages 1..n), then the host.
        matrix: ``matrix[i][j]``, RSSI in dBm node ``i`` measured on packets from node ``j``.
        sources: who measured each entry (``board`` / ``host``; None where the value is None).
        created_utc: when the survey ran (ISO 8601, UTC).
        inventory: the inventory file surveyed.
        transport: the boards' transport.
        scan_s: how long the host scanned (None: no scan).
        notes: what the survey could not measure, one sentence each.
        adverts: what the host heard, per board (BLE scan only).
    """

    nodes: tuple[SurveyNode, ...]
    matrix: tuple[tuple[float | None, ...], ...]
    sources: tuple[tuple[Source | None, ...], ...]
    created_utc: str
    inventory: str | None
    transport: str
    scan_s: float | None = None
    notes: tuple[str, ...] = ()
    adverts: tuple[dict[str, Any], ...] = field(default=())

    @property
    def boards(self) -> tuple[SurveyNode, ...]:
        """The board nodes, by stage."""
        return tuple(n for n in self.nodes if n.kind == "board")

    def index(self, name: str) -> int:
        """Position of the node called ``name``.

        Raises:
            ConfigError: no such node.
        """
        for i, node in enumerate(self.nodes):
            if node.name == name:
                return i
        raise ConfigError(f"no node {name!r} in the RSSI matrix")

    def rssi(self, receiver: str, sender: str) -> float | None:
        """RSSI (dBm) ``receiver`` measured on packets from ``sender``, None when unknown."""
        return self.matrix[self.index(receiver)][self.index(sender)]

    def link_rssi(self, *, where: str = "RSSI matrix") -> tuple[float, ...]:
        """RSSI of each pipeline link stage k -> k+1, for ``PipelineConfig.rssi_dbm``.

        A link's value is the mean of what its two ends measured (either alone when only one
        did): the simulator's links are symmetric.

        Raises:
            ConfigError: a link that neither end measured; the message names every such link.
        """
        boards = self.boards
        values: list[float] = []
        missing: list[str] = []
        for k in range(len(boards) - 1):
            a, b = self.index(boards[k].name), self.index(boards[k + 1].name)
            seen = [v for v in (self.matrix[a][b], self.matrix[b][a]) if v is not None]
            if not seen:
                missing.append(
                    f"{boards[k].name} -> {boards[k + 1].name} (stage {k + 1} -> {k + 2})"
                )
                continue
            values.append(sum(seen) / len(seen))
        if missing:
            raise ConfigError(
                f"{where}: no RSSI for link {', '.join(missing)}: neither board reported it "
                "(were the links up? run tinysplit survey again with the pipeline started)"
            )
        return tuple(values)

    def to_dict(self) -> dict[str, Any]:
        """The matrix file's JSON object."""
        return {
            "format": MATRIX_FORMAT,
            "version": MATRIX_VERSION,
            "created_utc": self.created_utc,
            "inventory": self.inventory,
            "transport": self.transport,
            "scan_s": self.scan_s,
            "nodes": [n.to_dict() for n in self.nodes],
            "matrix": [list(row) for row in self.matrix],
            "source": [list(row) for row in self.sources],
            "adverts": list(self.adverts),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "RSSI matrix") -> Survey:
        """Inverse of :meth:`to_dict`, checking every field.

        Raises:
            ConfigError: anything malformed; the message names ``where`` and the field.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: not a JSON object")
        if data.get("format") != MATRIX_FORMAT:
            raise ConfigError(f"{where}: not an RSSI matrix file (format {data.get('format')!r})")
        if data.get("version") != MATRIX_VERSION:
            raise ConfigError(
                f"{where}: RSSI matrix version {data.get('version')!r}, this tinysplit reads "
                f"version {MATRIX_VERSION}"
            )
        nodes = _nodes(data.get("nodes"), where)
        size = len(nodes)
        matrix = _square(data.get("matrix"), size, "matrix", where)
        sources = _square(data.get("source"), size, "source", where)
        values: list[tuple[float | None, ...]] = []
        kinds: list[tuple[Source | None, ...]] = []
        low, high = RSSI_RANGE_DBM
        for i in range(size):
            row_values: list[float | None] = []
            row_sources: list[Source | None] = []
            for j in range(size):
                value, source = matrix[i][j], sources[i][j]
                at = f"{where}: matrix[{i}][{j}] ({nodes[i].name} hearing {nodes[j].name})"
                if value is None:
                    if source is not None:
                        raise ConfigError(f"{at}: a source without a value")
                    row_values.append(None)
                    row_sources.append(None)
                    continue
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ConfigError(f"{at}: {value!r} is not a number or null")
                if not low <= float(value) <= high:
                    raise ConfigError(f"{at}: {value} dBm is outside {low:g}..{high:g} dBm")
                if i == j:
                    raise ConfigError(f"{at}: a node does not hear itself (the diagonal is null)")
                if source not in ("board", "host"):
                    raise ConfigError(f"{at}: source must be 'board' or 'host', got {source!r}")
                row_values.append(float(value))
                row_sources.append(source)
            values.append(tuple(row_values))
            kinds.append(tuple(row_sources))
        scan_s = data.get("scan_s")
        if scan_s is not None and (isinstance(scan_s, bool) or not isinstance(scan_s, int | float)):
            raise ConfigError(f"{where}: scan_s must be a number or null")
        notes = data.get("notes", [])
        adverts = data.get("adverts", [])
        if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
            raise ConfigError(f"{where}: notes must be a list of strings")
        if not isinstance(adverts, list) or not all(isinstance(a, dict) for a in adverts):
            raise ConfigError(f"{where}: adverts must be a list of objects")
        for key in ("created_utc", "transport"):
            if not isinstance(data.get(key), str):
                raise ConfigError(f"{where}: {key} must be a string")
        inventory = data.get("inventory")
        if inventory is not None and not isinstance(inventory, str):
            raise ConfigError(f"{where}: inventory must be a string or null")
        return cls(
            nodes=nodes,
            matrix=tuple(values),
            sources=tuple(kinds),
            created_utc=data["created_utc"],
            inventory=inventory,
            transport=data["transport"],
            scan_s=None if scan_s is None else float(scan_s),
            notes=tuple(notes),
            adverts=tuple(adverts),
        )


def load_survey(
    path: str | Path, *, boards: int | None = None, require_links: bool = True
) -> Survey:
    """Read a matrix file written by :func:`save_survey` (``tinysplit survey --out``).

    Args:
        path: the JSON file.
        boards: the number of pipeline boards the caller needs (None: any).
        require_links: every link stage k -> k+1 must have an RSSI (see
            :meth:`Survey.link_rssi`).

    Raises:
        ConfigError: unreadable or malformed file, a different number of boards, or links
            without an RSSI; one line naming the file.
    """
    file = Path(path)
    where = str(file)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the RSSI matrix ({exc.strerror or exc})") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{where}: not JSON ({exc})") from exc
    matrix = Survey.from_dict(data, where=where)
    if boards is not None and len(matrix.boards) != boards:
        raise ConfigError(
            f"{where}: the matrix has {len(matrix.boards)} boards, the pipeline needs {boards}"
        )
    if require_links:
        matrix.link_rssi(where=where)
    return matrix


def save_survey(matrix: Survey, path: str | Path) -> Path:
    """Write ``matrix`` as JSON atomically; returns the path.

    Raises:
        ConfigError: the file cannot be written.
    """
    target = Path(path)
    text = json.dumps(matrix.to_dict(), indent=2, allow_nan=False) + "\n"
    write_text_atomic(target, text, what="RSSI matrix")
    return target


# ------------------------------------------------------------------------------------ survey


@dataclass(frozen=True, slots=True, kw_only=True)
class BoardView:
    """What one board's console reported.

    Attributes:
        up_dbm: RSSI of its UP link (packets from the previous stage), None when it has none.
        down_dbm: RSSI of its DOWN link (packets from the next stage), None when it has none.
        port: the port it was reached on.
        hello: its ``hello`` fields.
    """

    up_dbm: float | None
    down_dbm: float | None
    port: str
    hello: Mapping[str, str] = field(default_factory=dict)


def survey(
    inventory: Inventory,
    *,
    scan_s: float | None = 5.0,
    require_scan: bool = False,
    scanner_backend: type[BaseBleakScanner] | None = None,
    ports: Mapping[str, str] | None = None,
    timeout_s: float = 5.0,
) -> Survey:
    """Survey the testbed: every board's link RSSI, and (BLE) the host's scan.

    Args:
        inventory: the boards.
        scan_s: seconds of BLE scanning by the host; None skips the scan.
        require_scan: fail when the host cannot scan (no adapter) instead of going on without.
        scanner_backend: a bleak scanner backend class (None: the platform's).
        ports: port of each board by name, overriding the inventory's (an emulator's ptys).
        timeout_s: reply timeout of each console command, seconds.

    Raises:
        BoardError: a board cannot be opened, does not answer, runs another stage than the
            inventory says, or gives a malformed ``rssi`` reply; or, with ``require_scan``, the
            host has no Bluetooth adapter.
        ConfigError: ``require_scan`` for a transport or testbed the host cannot scan.
    """
    boards = inventory.boards
    views = [_board_view(b, (ports or {}).get(b.name), timeout_s) for b in boards]
    notes: list[str] = []
    adverts: list[BoardAdvert] = []
    scanned: float | None = None
    if scan_s is not None:
        why_not = _scan_unavailable(inventory)
        if why_not is not None:
            if require_scan:
                raise ConfigError(f"{inventory.path}: cannot scan: {why_not}")
            notes.append(f"no host scan: {why_not}")
        else:
            from tinysplit.testbed.hw.ble_scan import NoBluetoothAdapter, scan_boards

            try:
                adverts = scan_boards(scan_s, backend=scanner_backend)
                scanned = scan_s
            except NoBluetoothAdapter as exc:
                if require_scan:
                    raise
                notes.append(f"{exc}: the host's view is missing, the boards' view is complete")
    n = len(boards)
    size = n + 1
    matrix: list[list[float | None]] = [[None] * size for _ in range(size)]
    sources: list[list[Source | None]] = [[None] * size for _ in range(size)]
    for k, view in enumerate(views):
        if view.up_dbm is not None and k > 0:
            matrix[k][k - 1], sources[k][k - 1] = view.up_dbm, "board"
        if view.down_dbm is not None and k < n - 1:
            matrix[k][k + 1], sources[k][k + 1] = view.down_dbm, "board"
        for key, value, linked in (("up", view.up_dbm, k > 0), ("down", view.down_dbm, k < n - 1)):
            if value is not None and not linked:
                notes.append(f"{boards[k].name} reported {key}={value:g} dBm for a link it lacks")
    heard = _match_adverts(boards, adverts, notes) if scanned is not None else {}
    for k, advert in heard.items():
        matrix[n][k], sources[n][k] = advert.rssi_dbm, "host"
    if scanned is not None:
        notes += [
            f"the host heard no advertisement of {b.name} (stage {b.stage})"
            for k, b in enumerate(boards)
            if k not in heard
        ]
    nodes = [
        SurveyNode(
            name=b.name,
            kind="board",
            stage=b.stage,
            port=views[k].port,
            mac=b.mac,
            address=heard[k].address if k in heard else None,
        )
        for k, b in enumerate(boards)
    ]
    host = HOST if all(b.name != HOST for b in boards) else f"{HOST}-pc"  # a board named "host"
    nodes.append(SurveyNode(name=host, kind="host"))
    return Survey(
        nodes=tuple(nodes),
        matrix=tuple(tuple(row) for row in matrix),
        sources=tuple(tuple(row) for row in sources),
        created_utc=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        inventory=str(Path(inventory.path).resolve()),
        transport=inventory.transport,
        scan_s=scanned,
        notes=tuple(notes),
        adverts=tuple(a.to_dict() for a in adverts),
    )


@contextmanager
def emulated_ports(inventory: Inventory) -> Iterator[dict[str, str]]:
    """Start the emulated boards of an ``[emulator]`` inventory; yields their ports by name.

    The boards' links get the RSSI the bench would give them: from the inventory's
    ``position_m`` when every board has one, else the bench's default layout (the paper's link
    RSSIs for 5 boards, boards 0.5 m apart otherwise). The emulator stops on exit.

    Raises:
        ConfigError: not an emulated inventory.
        BoardError: the emulator did not start.
    """
    from tinysplit.model import load_model
    from tinysplit.partition import partition
    from tinysplit.sim.layout import load_layout
    from tinysplit.sim.pipeline import PipelineConfig
    from tinysplit.testbed.hw.emulator import start_emulator

    if inventory.emulator is None:
        raise ConfigError(f"{inventory.path}: not an emulated testbed (no [emulator] table)")
    n = inventory.stages
    plan = partition(
        load_model(EMULATED_SURVEY_MODEL),
        strategy="paper",
        devices=n,
        profile="esp32s3-n8r8",
        transport=inventory.transport,
    )
    positions = tuple(b.position_m for b in inventory.boards if b.position_m is not None)
    if n > 1 and len(positions) == n:
        config = PipelineConfig(
            transport=inventory.transport, positions_m=positions, seed=inventory.emulator.seed
        )
    else:
        layout = load_layout("paper" if n == 5 else "desk", n)
        config = PipelineConfig(
            transport=inventory.transport,
            rssi_dbm=layout.rssi_dbm,
            positions_m=layout.positions_m,
            seed=inventory.emulator.seed,
        )
    with (
        tempfile.TemporaryDirectory(prefix="tinysplit-survey-") as work,
        start_emulator(inventory, plan, config, work) as handle,
    ):
        yield dict(handle.ports)


def _scan_unavailable(inventory: Inventory) -> str | None:
    """Why the host cannot scan this testbed's boards, or None when it can."""
    if inventory.emulated:
        return "the boards are emulated (no radios to hear)"
    if inventory.transport != "ble":
        return f"the boards run {inventory.transport}; the host scans BLE advertisements only"
    return None


def _board_view(board: BoardSpec, port: str | None, timeout_s: float) -> BoardView:
    """Open ``board``'s console, check it, and read its link RSSI."""
    from tinysplit.testbed.hw.console import Console
    from tinysplit.testbed.hw.serial_port import find_serial_number, open_serial

    label = f"{board.name} (stage {board.stage})"
    where = port or board.port
    if where is None:
        if board.serial_number is None:
            raise BoardError(f"board {label}: no port (an emulated board needs its emulator)")
        where = find_serial_number(board.serial_number, label=label)
    stream = open_serial(port=where, serial_number=None, label=label)
    with Console(stream, label=label, port=where, timeout_s=timeout_s) as console:
        hello = console.hello()
        stage = hello.get("stage")
        if stage is not None and stage != str(board.stage):
            raise BoardError(
                f"board {label} on {where} runs stage {stage}, the inventory says {board.stage} "
                f"(set it with the console: config stage={board.stage}, then reset)"
            )
        reply = console.command("rssi").require()
    values = [_rssi_word(reply.fields.get(key), key, label, where) for key in ("up", "down")]
    return BoardView(up_dbm=values[0], down_dbm=values[1], port=where, hello=hello)


def _rssi_word(value: str | None, key: str, label: str, where: str) -> float | None:
    if value is None:
        raise BoardError(f"board {label} on {where}: 'rssi' reply has no {key}= field")
    if value == "none":
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    low, high = RSSI_RANGE_DBM
    if not low <= number <= high:
        raise BoardError(f"board {label} on {where}: 'rssi' gave {key}={value}, not an RSSI")
    return number


def _match_adverts(
    boards: Sequence[BoardSpec], adverts: Sequence[BoardAdvert], notes: list[str]
) -> dict[int, BoardAdvert]:
    """Which advertisement is which board: by stage; several for one stage: the board's MAC.

    An ESP32-S3's Bluetooth address is its base MAC + 2 (ESP-IDF ``esp_read_mac``), so an
    inventory MAC picks the right one among several advertisers of a stage (another testbed
    nearby); without a match the strongest is taken and a note says so.
    """
    matched: dict[int, BoardAdvert] = {}
    for k, board in enumerate(boards):
        candidates = [a for a in adverts if a.stage == board.stage]
        if not candidates:
            continue
        if len(candidates) > 1:
            own = [a for a in candidates if _is_board_address(a.address, board.mac)]
            if len(own) == 1:
                candidates = own
            else:
                candidates = sorted(candidates, key=lambda a: -a.rssi_dbm)
                notes.append(
                    f"{len(candidates)} devices advertise stage {board.stage} "
                    f"({', '.join(a.address for a in candidates)}); took the strongest for "
                    f"{board.name} (give its mac in the inventory to choose)"
                )
        matched[k] = candidates[0]
    others = sorted({a.stage for a in adverts} - {b.stage for b in boards})
    if others:
        notes.append(f"heard boards of stages {others} that are not in the inventory")
    return matched


def _is_board_address(address: str, mac: str | None) -> bool:
    if mac is None:
        return False
    try:
        base = int(mac.replace(":", ""), 16)
        heard = int(address.replace(":", "").replace("-", ""), 16)
    except ValueError:
        return False
    return heard in (base, (base + 2) & 0xFFFFFFFFFFFF)


def _nodes(value: Any, where: str) -> tuple[SurveyNode, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: nodes must be a non-empty list")
    nodes: list[SurveyNode] = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: nodes[{i}] must be an object")
        kind, name, stage = item.get("kind"), item.get("name"), item.get("stage")
        if kind not in ("board", "host") or not isinstance(name, str) or not name:
            raise ConfigError(f"{where}: nodes[{i}] needs a name and kind 'board' or 'host'")
        if kind == "board" and (isinstance(stage, bool) or not isinstance(stage, int)):
            raise ConfigError(f"{where}: nodes[{i}] ({name}) needs an integer stage")
        extras = {k: item.get(k) for k in ("port", "mac", "address")}
        if any(v is not None and not isinstance(v, str) for v in extras.values()):
            raise ConfigError(f"{where}: nodes[{i}] ({name}): port, mac, address are strings")
        nodes.append(
            SurveyNode(name=name, kind=kind, stage=stage if kind == "board" else None, **extras)
        )
    names = [n.name for n in nodes]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: node names must be unique")
    stages = [n.stage for n in nodes if n.kind == "board"]
    if stages != list(range(1, len(stages) + 1)):
        raise ConfigError(
            f"{where}: the boards must be listed by stage 1..{len(stages)}, got stages {stages}"
        )
    return tuple(nodes)


def _square(value: Any, size: int, key: str, where: str) -> list[list[Any]]:
    if not isinstance(value, list) or len(value) != size:
        got = len(value) if isinstance(value, list) else type(value).__name__
        raise ConfigError(f"{where}: {key} must have {size} rows (one per node), got {got}")
    for i, row in enumerate(value):
        if not isinstance(row, list) or len(row) != size:
            got = len(row) if isinstance(row, list) else type(row).__name__
            raise ConfigError(f"{where}: {key}[{i}] must have {size} entries, got {got}")
    return value
