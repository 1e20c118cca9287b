"""``tinysplit survey``: the boards' consoles on ptys, the host's scan through bleak.

The boards' view comes from fake boards on ptys speaking the console protocol (``conftest.py``);
the host's view from virtual BLE boards scanned through unmodified bleak (``bleak_bumble.py``),
or from bleak's real BlueZ backend failing for want of D-Bus.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tests.testbed.hw.bleak_bumble import VirtualRadio, bleak_backends
from tests.testbed.hw.conftest import FakeBoard
from tinysplit.cli import main
from tinysplit.errors import BoardError, ConfigError
from tinysplit.testbed.hw.ble_scan import NoBluetoothAdapter
from tinysplit.testbed.hw.inventory import Inventory, load_inventory
from tinysplit.testbed.hw.survey import Survey, load_survey, save_survey, survey

NO_BUS = "unix:path=/nonexistent/tinysplit-test/system_bus_socket"
#: (up, down) each board reports: boards 1-2 hear each other at -48/-50, boards 2-3 at -61/-63.
LINKS = [("none", "-48"), ("-50", "-63"), ("-61", "none")]

MakeBoard = Callable[..., FakeBoard]


@pytest.fixture
def boards(fake_board: MakeBoard) -> list[FakeBoard]:
    """Three fake boards answering ``hello`` (with their stage) and ``rssi``."""
    return [
        fake_board({"rssi": f"TS1 ok up={up} down={down}"}, hello=f"stage={k} stages=3")
        for k, (up, down) in enumerate(LINKS, start=1)
    ]


def _inventory(tmp_path: Path, boards: Sequence[FakeBoard], transport: str = "ble") -> Path:
    lines = [f'transport = "{transport}"']
    for k, board in enumerate(boards, start=1):
        mac = f"f4:12:fa:00:00:{k:02x}"
        lines += ["[[board]]", f'name = "s3-{k}"', f"stage = {k}", f'port = "{board.port}"',
                  f'mac = "{mac}"']  # fmt: skip
    path = tmp_path / "boards.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _load(tmp_path: Path, boards: Sequence[FakeBoard], transport: str = "ble") -> Inventory:
    return load_inventory(_inventory(tmp_path, boards, transport))


def test_the_boards_view_fills_the_links(tmp_path: Path, boards: list[FakeBoard]) -> None:
    matrix = survey(_load(tmp_path, boards, "espnow"))
    assert [n.name for n in matrix.nodes] == ["s3-1", "s3-2", "s3-3", "host"]
    assert matrix.matrix == (
        (None, -48.0, None, None),
        (-50.0, None, -63.0, None),
        (None, -61.0, None, None),
        (None, None, None, None),
    )
    assert matrix.sources[1] == ("board", None, "board", None)
    assert matrix.rssi("s3-2", "s3-3") == -63.0
    assert matrix.link_rssi() == (-49.0, -62.0)
    assert matrix.scan_s is None
    assert matrix.notes == ("no host scan: the boards run espnow; the host scans BLE "
                            "advertisements only",)  # fmt: skip
    assert [b.received for b in boards] == [["hello", "rssi"]] * 3
    assert matrix.boards[0].port == boards[0].port


def test_the_host_scan_adds_its_row(tmp_path: Path, boards: list[FakeBoard]) -> None:
    radio = VirtualRadio()
    for stage, rssi in ((1, -44.0), (2, -57.0), (3, -69.0), (7, -80.0)):
        radio.add_board(stage, rssi_dbm=rssi)
    scanner, _ = bleak_backends(radio)
    matrix = survey(_load(tmp_path, boards), scan_s=0.4, scanner_backend=scanner)
    assert matrix.matrix[3] == (-44.0, -57.0, -69.0, None)
    assert matrix.sources[3] == ("host", "host", "host", None)
    assert matrix.matrix[0][3] is None  # boards do not measure the host
    assert [n.address for n in matrix.boards] == [b.address for b in radio.boards[:3]]
    assert matrix.scan_s == 0.4
    assert [a["stage"] for a in matrix.adverts] == [1, 2, 3, 7]
    assert matrix.notes == ("heard boards of stages [7] that are not in the inventory",)


def test_the_inventory_mac_picks_the_board_among_two_of_one_stage(
    tmp_path: Path, boards: list[FakeBoard]
) -> None:
    radio = VirtualRadio()
    radio.add_board(1, rssi_dbm=-40.0)  # another testbed's stage 1, louder
    radio.add_board(2, rssi_dbm=-57.0)
    radio.add_board(3, rssi_dbm=-69.0)
    radio.add_board(1, rssi_dbm=-52.0)  # ours: address C0:..:04
    text = (
        _inventory(tmp_path, boards).read_text().replace("f4:12:fa:00:00:01", "c0:00:00:00:00:02")
    )
    (tmp_path / "boards.toml").write_text(text)  # BT address = base MAC + 2
    scanner, _ = bleak_backends(radio)
    matrix = survey(load_inventory(tmp_path / "boards.toml"), scan_s=0.4, scanner_backend=scanner)
    assert matrix.boards[0].address == "C0:00:00:00:00:04"
    assert matrix.matrix[3][0] == -52.0
    assert matrix.notes == ()


def test_without_an_adapter_the_survey_goes_on_and_says_so(
    tmp_path: Path, boards: list[FakeBoard], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", NO_BUS)
    inventory = _load(tmp_path, boards)
    matrix = survey(inventory, scan_s=0.2)
    assert matrix.link_rssi() == (-49.0, -62.0)
    assert matrix.matrix[3] == (None,) * 4
    (note,) = matrix.notes
    assert note.startswith("no Bluetooth adapter found (the D-Bus system bus")
    assert note.endswith("the host's view is missing, the boards' view is complete")
    with pytest.raises(NoBluetoothAdapter, match="no Bluetooth adapter found"):
        survey(inventory, scan_s=0.2, require_scan=True)


def test_matrix_file_round_trip(tmp_path: Path, boards: list[FakeBoard]) -> None:
    matrix = survey(_load(tmp_path, boards), scan_s=None)
    path = save_survey(matrix, tmp_path / "rssi.json")
    assert not list(tmp_path.glob(".rssi.json.*"))  # written atomically, no temp file left
    again = load_survey(path, boards=3)
    assert again == matrix
    data = json.loads(path.read_text())
    assert data["format"] == "tinysplit-rssi-matrix" and data["version"] == 1
    assert data["inventory"] == str((tmp_path / "boards.toml").resolve())
    assert data["source"][0] == [None, "board", None, None]


def _matrix_file(tmp_path: Path, change: Callable[[dict[str, object]], None]) -> Path:
    data: dict[str, object] = {
        "format": "tinysplit-rssi-matrix",
        "version": 1,
        "created_utc": "2026-01-01T00:00:00Z",
        "inventory": None,
        "transport": "ble",
        "scan_s": None,
        "nodes": [
            {"name": "a", "kind": "board", "stage": 1},
            {"name": "b", "kind": "board", "stage": 2},
            {"name": "host", "kind": "host", "stage": None},
        ],
        "matrix": [[None, -50, None], [-52, None, None], [-60, -61, None]],
        "source": [[None, "board", None], ["board", None, None], ["host", "host", None]],
        "notes": [],
    }
    change(data)
    path = tmp_path / "m.json"
    path.write_text(json.dumps(data))
    return path


def _set(key: str, value: object) -> Callable[[dict[str, object]], None]:
    return lambda data: data.__setitem__(key, value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set("format", "x"), "not an RSSI matrix file"),
        (_set("version", 2), "RSSI matrix version 2"),
        (_set("matrix", [[None, -50, None], [-52, None, None]]), "matrix must have 3 rows"),
        (
            _set("matrix", [[None, -50], [-52, None, None], [-60, -61, None]]),
            r"matrix\[0\] must have 3 entries, got 2",
        ),
        (
            _set("matrix", [[None, -50, None], [None, None, None], [-60, -61, None]]),
            r"matrix\[1\]\[0\] \(b hearing a\): a source without a value",
        ),
        (
            _set("matrix", [[None, -500, None], [-52, None, None], [-60, -61, None]]),
            r"-500 dBm is outside -130..20 dBm",
        ),
        (
            _set("matrix", [[-1, -50, None], [-52, None, None], [-60, -61, None]]),
            "the diagonal is null",
        ),
        (
            _set("matrix", [[None, "x", None], [-52, None, None], [-60, -61, None]]),
            "'x' is not a number",
        ),
        (
            _set("source", [[None, "wifi", None], ["board", None, None], ["host", "host", None]]),
            "source must be 'board' or 'host'",
        ),
        (_set("nodes", [{"name": "a", "kind": "board", "stage": 2}]), "listed by stage 1..1"),
        (_set("nodes", []), "nodes must be a non-empty list"),
    ],
)
def test_bad_matrix_files_are_clear_errors(
    tmp_path: Path, change: Callable[[dict[str, object]], None], message: str
) -> None:
    path = _matrix_file(tmp_path, change)
    with pytest.raises(ConfigError, match=message) as info:
        load_survey(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_missing_links_and_sizes_are_named(tmp_path: Path) -> None:
    ok = _matrix_file(tmp_path, lambda data: None)
    assert load_survey(ok, boards=2).link_rssi() == (-51.0,)
    with pytest.raises(ConfigError, match="the matrix has 2 boards, the pipeline needs 5"):
        load_survey(ok, boards=5)

    def no_link(data: dict[str, object]) -> None:
        data["matrix"] = [[None, None, None], [None, None, None], [-60, -61, None]]
        data["source"] = [[None, None, None], [None, None, None], ["host", "host", None]]

    gap = _matrix_file(tmp_path, no_link)
    with pytest.raises(ConfigError, match=r"no RSSI for link a -> b \(stage 1 -> 2\)"):
        load_survey(gap)
    assert isinstance(load_survey(gap, require_links=False), Survey)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="not JSON"):
        load_survey(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="cannot read the RSSI matrix"):
        load_survey(tmp_path / "absent.json")


# ------------------------------------------------------------------------- boards misbehaving


def test_a_board_on_the_wrong_stage_is_named(tmp_path: Path, fake_board: MakeBoard) -> None:
    boards = [fake_board({"rssi": "TS1 ok up=none down=-50"}, hello="stage=1"),
              fake_board({"rssi": "TS1 ok up=-50 down=none"}, hello="stage=3")]  # fmt: skip
    with pytest.raises(BoardError, match=r"board s3-2 \(stage 2\) on .* runs stage 3"):
        survey(_load(tmp_path, boards), scan_s=None)


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ("TS1 ok up=-50", "'rssi' reply has no down= field"),
        ("TS1 ok up=-50 down=loud", "'rssi' gave down=loud, not an RSSI"),
        ("TS1 err unknown no command rssi", "'rssi' failed: err unknown"),
    ],
)
def test_bad_rssi_replies_are_board_errors(
    tmp_path: Path, fake_board: MakeBoard, reply: str, message: str
) -> None:
    board = fake_board({"rssi": reply})
    with pytest.raises(BoardError, match=message) as info:
        survey(_load(tmp_path, [board]), scan_s=None)
    assert f"s3-1 (stage 1) on {board.port}" in str(info.value)


def test_a_silent_board_times_out_naming_it(tmp_path: Path, fake_board: MakeBoard) -> None:
    board = fake_board(lambda line: None)
    with pytest.raises(BoardError, match=r"s3-1 \(stage 1\)") as info:
        survey(_load(tmp_path, [board]), scan_s=None, timeout_s=0.3)
    assert board.port in str(info.value)


def test_an_unplugged_board_is_named(tmp_path: Path, fake_board: MakeBoard) -> None:
    board = fake_board({"rssi": "TS1 ok up=none down=none"})
    inventory = _load(tmp_path, [board])
    board.unplug()
    with pytest.raises(BoardError, match=r"s3-1 \(stage 1\)") as info:
        survey(inventory, scan_s=None, timeout_s=1.0)
    assert board.port in str(info.value)


# ---------------------------------------------------------------------------------- the CLI


def test_survey_command_without_an_adapter(
    tmp_path: Path,
    boards: list[FakeBoard],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", NO_BUS)
    inventory = _inventory(tmp_path, boards)
    out = tmp_path / "rssi.json"
    args = ["survey", "--inventory", str(inventory), "--out", str(out), "--scan-s", "0.2"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "note: no Bluetooth adapter found (" in text
    assert "-63" in text and f"saved {out}" in text
    assert load_survey(out, boards=3).link_rssi() == (-49.0, -62.0)

    assert main([*args, "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["matrix"][1] == [-50.0, None, -63.0, None]
    assert captured.err.startswith("tinysplit: note: no Bluetooth adapter found (")

    assert main([*args, "--require-scan"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tinysplit: error: no Bluetooth adapter found (") and err.count("\n") == 1


def test_survey_command_bad_inventory_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "boards.toml").write_text('transport = "ble"\n[[board]]\nname = "a"\nstage = 2\n')
    assert main(["survey", "--inventory", str(tmp_path / "boards.toml"), "--no-scan"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tinysplit: error: ") and err.count("\n") == 1


def test_survey_command_on_the_emulated_testbed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The emulated boards (a subprocess on ptys) answer the survey like real ones."""
    from tinysplit.sim.layout import load_layout

    inventory = Path(__file__).parents[2] / "fixtures" / "emulated-boards.toml"
    out = tmp_path / "rssi.json"
    assert main(["survey", "--inventory", str(inventory), "--out", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert [n["name"] for n in data["nodes"]] == ["b1", "b2", "b3", "b4", "b5", "host"]
    assert all(n["port"].startswith("/dev/") for n in data["nodes"][:5])
    # The emulator gives the bench's default layout for five boards: the paper's link RSSIs.
    paper = load_layout("paper", 5).rssi_dbm
    assert load_survey(out, boards=5).link_rssi() == paper
    assert data["notes"] == ["no host scan: the boards are emulated (no radios to hear)"]
    assert "tinysplit: note: no host scan" in captured.err


def test_an_emulated_inventory_needs_its_emulator() -> None:
    inventory = load_inventory(Path(__file__).parents[2] / "fixtures" / "emulated-boards.toml")
    with pytest.raises(BoardError, match=r"board b1 \(stage 1\): no port"):
        survey(inventory, scan_s=None)
