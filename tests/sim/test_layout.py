"""Board layouts: built-in names, files, and clear errors for bad ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinysplit.errors import ConfigError
from tinysplit.sim.layout import load_layout


def test_builtin_layouts() -> None:
    assert load_layout("paper", 5).rssi_dbm == (-66.0, -76.0, -71.0, -60.0)
    desk = load_layout("desk", 3)
    assert desk.positions_m == ((0.0, 0.0), (0.5, 0.0), (1.0, 0.0))


def test_files_in_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "lab.toml"
    toml.write_text("positions = [[0, 0], [1, 2], [3, 0, 1]]\n")
    assert load_layout(toml, 3).positions_m == ((0.0, 0.0), (1.0, 2.0), (3.0, 0.0, 1.0))
    js = tmp_path / "lab.json"
    js.write_text('{"rssi_dbm": [-70, -80]}')
    assert load_layout(js, 3).rssi_dbm == (-70.0, -80.0)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("5", "a layout must be a table"),
        ('{"rssi_dbm": [-70]}', "rssi_dbm has 1 values but 3 boards have 2 links"),
        ('{"rssi_dbm": [-70, 40]}', "within -130..20 dBm"),
        ('{"spacing_m": 0}', "spacing_m must be > 0"),
        ('{"positions": [[0, 0], [1, 1]]}', "2 positions for 3 boards"),
        ('{"positions": [[0], [1], [2]]}', "each position must be [x, y]"),
        ('{"rssi_dbm": [-70, -80], "spacing_m": 1}', "give exactly one of"),
        ('{"rssi_dbm": ["loud", -80]}', "values must be numbers"),
        ("{not json", "cannot read layout"),
    ],
)
def test_bad_layout_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_layout(path, 3)


def test_unknown_name() -> None:
    with pytest.raises(ConfigError, match="unknown layout 'attic'"):
        load_layout("attic", 3)
