"""Grid syntax, validation, expansion and grid files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinysplit.errors import ConfigError
from tinysplit.sweep import GridSpec, SharedOptions, SweepPoint, grid_from_options, load_grid_file
from tinysplit.sweep.grid import parse_choices, parse_ints, split_values


def test_ints_take_lists_and_inclusive_ranges() -> None:
    assert parse_ints("0..4", "seed", minimum=0) == (0, 1, 2, 3, 4)
    assert parse_ints("1, 6,16,6", "window", minimum=1) == (1, 6, 16)
    assert parse_ints("3..3,0", "seed", minimum=0) == (3, 0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5..2", "range '5..2' is empty"),
        ("", "empty value"),
        ("1,,2", "empty value"),
        ("one", "is not an integer"),
        ("-1..2", "must be >= 0"),
    ],
)
def test_bad_ints(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_ints(text, "seed", minimum=0)


def test_choices() -> None:
    assert parse_choices("wifi,ble", "transport", ("ble", "wifi")) == ("wifi", "ble")
    with pytest.raises(ConfigError, match="unknown value 'zigbee'"):
        parse_choices("ble,zigbee", "transport", ("ble", "wifi"))
    with pytest.raises(ConfigError, match="empty value"):
        split_values(" ", "profile")


def test_expansion_is_the_product_in_axis_order() -> None:
    spec = grid_from_options(
        {"transport": "ble,wifi", "window": "1,6", "strategy": "paper,optimal", "seed": "0..2"}
    )
    points = spec.points()
    assert len(points) == 2 * 2 * 2 * 3
    assert points[0] == SweepPoint(
        transport="ble", profile="paper", window=1, strategy="paper", placement="chain", seed=0
    )
    assert [p.seed for p in points[:3]] == [0, 1, 2]  # seed varies fastest
    assert {p.profile for p in points if p.transport == "wifi"} == {"lwip-default"}
    assert len({p.name for p in points}) == len(points)


def test_profiles_are_per_transport() -> None:
    spec = grid_from_options(
        {"transport": "ble,wifi", "profile": "default,ble:bluedroid-2m,wifi:lwip-tuned"}
    )
    assert spec.profiles_for("ble") == ("paper", "bluedroid-2m")
    assert spec.profiles_for("wifi") == ("lwip-default", "lwip-tuned")
    assert len(spec.points()) == 4
    # "default" and the default's own name are one point
    assert len(grid_from_options({"profile": "default,paper"}).points()) == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"transport": "ble,wifi", "profile": "paper"}, "wifi has no profile 'paper'"),
        ({"profile": "ble:nope"}, "ble has no profile 'nope'"),
        ({"profile": "zigbee:x"}, "'zigbee' is not a transport"),
        ({"profile": "wifi:lwip-tuned"}, "names no ble profile"),
    ],
)
def test_bad_profiles(options: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        grid_from_options(options).points()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"window": "6,17"}, "reliable mode takes windows up to 16"),
        ({"placement": "rssi"}, "--placement rssi needs --rssi"),
        ({"transport": "ble,lora"}, "unknown value 'lora'"),
        ({"seed": "5..2"}, "is empty"),
        ({"inferences": 0}, "inferences must be >= 1"),
        ({"mode": "fast"}, "unknown mode 'fast'"),
        ({"rssi": "m.toml", "positions": "desk"}, "not both"),
    ],
)
def test_bad_grids(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        grid_from_options(options)


def test_paper_mode_takes_big_windows() -> None:
    spec = grid_from_options({"window": "24", "mode": "paper"})
    assert spec.points()[0].window == 24


def test_defaults_follow_the_benchmark() -> None:
    spec = GridSpec()
    assert spec.shared == SharedOptions(model="paper", devices=5, device_profile="paper")
    assert spec.shared.layout(5) == "paper"
    assert spec.shared.layout(3) == "desk"
    assert grid_from_options({"devices": "auto"}).shared.devices is None


def test_grid_file(tmp_path: Path) -> None:
    (tmp_path / "m.toml").write_text("")
    file = tmp_path / "grid.toml"
    file.write_text(
        'transport = ["ble", "espnow"]\nwindow = [1, 6]\nseed = "0..2"\nmodel = "paper"\n'
        'devices = "auto"\ninferences = 4\ndevice_profile = "paper"\nrssi = "m.toml"\n'
    )
    options = load_grid_file(file)
    assert options["rssi"] == str(tmp_path / "m.toml")
    spec = grid_from_options(options | {"window": "16"})  # flags override the file
    assert spec.windows == (16,)
    assert spec.seeds == (0, 1, 2)
    assert spec.shared.devices is None
    assert spec.shared.inferences == 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("transport = [", "is not valid TOML"),
        ("speed = 3", "unknown key 'speed'"),
        ("window = []", "non-empty list"),
        ("inferences = 'many'", "must be an integer"),
        ("model = 3", "must be a string"),
    ],
)
def test_bad_grid_files(tmp_path: Path, text: str, message: str) -> None:
    file = tmp_path / "grid.toml"
    file.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_grid_file(file)


def test_missing_grid_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read grid file"):
        load_grid_file(tmp_path / "nope.toml")
