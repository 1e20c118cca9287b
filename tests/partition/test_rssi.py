"""RSSI matrices: files, positions, layouts, survey output, and every bad input's one line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tinysplit.errors import ConfigError
from tinysplit.partition.rssi import RssiMatrix, load_rssi_matrix, rssi_from_positions
from tinysplit.sim.pipeline import PipelineConfig, link_hops

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "rssi-8-boards.toml"


def _same(a: RssiMatrix, b: RssiMatrix) -> bool:
    """Equal names and values (NaN equals NaN)."""
    return a.names == b.names and np.array_equal(a.array, b.array, equal_nan=True)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_example_file() -> None:
    m = load_rssi_matrix(EXAMPLE, boards=8)
    assert m.boards == 8 and m.names[0] == "board1" and m.names[-1] == "spare3"
    arr = m.array
    assert np.isnan(np.diag(arr)).all()
    np.testing.assert_array_equal(np.nan_to_num(arr, nan=1.0), np.nan_to_num(arr.T, nan=1.0))
    # The paper's chain links are the simulator's `paper` layout.
    assert [arr[k, k + 1] for k in range(4)] == [-66.0, -76.0, -71.0, -60.0]
    assert math.isnan(arr[4, 5])  # board5 and spare1 do not hear each other


def test_toml_nan_and_json_null(tmp_path: Path) -> None:
    toml = _write(
        tmp_path,
        "m.toml",
        'boards = ["a", "b", "c"]\nrssi_dbm = [[nan, -60, "nan"], [-60, nan, -70], '
        '["nan", -70, nan]]\n',
    )
    js = _write(
        tmp_path,
        "m.json",
        json.dumps(
            {
                "boards": ["a", "b", "c"],
                "rssi_dbm": [[None, -60, None], [-60, None, -70], [None, -70, None]],
            }
        ),
    )
    a, b = load_rssi_matrix(toml), load_rssi_matrix(js)
    assert _same(a, b)
    assert math.isnan(a.dbm[0][2]) and a.dbm[1][2] == -70.0
    assert _same(RssiMatrix.from_array(a.array, a.names), a)
    assert _same(load_rssi_matrix(_write(tmp_path, "again.json", json.dumps(a.to_dict()))), a)


def test_asymmetry_is_averaged_one_sided_links_kept(tmp_path: Path) -> None:
    m = RssiMatrix.from_array([[None, -60, None], [-64, None, -70], [-75, None, None]])
    assert m.dbm[0][1] == m.dbm[1][0] == -62.0  # 4 dB apart: averaged
    assert m.dbm[2][0] == m.dbm[0][2] == -75.0  # heard by one end only
    assert m.dbm[1][2] == -70.0
    assert m.names == ("b0", "b1", "b2")


def test_links_table(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "links.toml",
        'boards = ["x", "y", "z"]\n'
        'links = [{a = "x", b = "y", rssi_dbm = -55}, {a = "z", b = "y", rssi_dbm = -81.5}]\n',
    )
    m = load_rssi_matrix(path)
    assert m.dbm[1][2] == -81.5 and math.isnan(m.dbm[0][2])


def test_positions_match_the_simulator(tmp_path: Path) -> None:
    positions = [[0.0, 0.0], [1.0, 0.5], [2.5, 0.0], [4.0, 1.0]]
    m = rssi_from_positions(positions, "ble", seed=3)
    config = PipelineConfig(transport="ble", positions_m=tuple(tuple(p) for p in positions), seed=3)
    chain, _ = link_hops(config, 4)
    assert [m.dbm[k][k + 1] for k in range(3)] == pytest.approx(chain)
    path = _write(tmp_path, "pos.json", json.dumps({"positions": positions, "seed": 3}))
    assert _same(load_rssi_matrix(path, transport="ble"), m)
    assert not _same(load_rssi_matrix(path, transport="wifi"), m)  # another TX power


def test_layouts(tmp_path: Path) -> None:
    desk = load_rssi_matrix("desk", boards=6, transport="espnow")
    assert desk.boards == 6 and np.isfinite(desk.array[~np.eye(6, dtype=bool)]).all()
    paper = load_rssi_matrix("paper")  # per-link values: a chain
    assert paper.boards == 5 and paper.dbm[1][2] == -76.0 and math.isnan(paper.dbm[0][2])
    spaced = _write(tmp_path, "line.toml", "spacing_m = 2.0\ntransport = 'ble'\n")
    assert load_rssi_matrix(spaced, boards=3).boards == 3


def test_survey_output(tmp_path: Path) -> None:
    from tinysplit.testbed.hw.survey import Survey, SurveyNode, save_survey

    nodes = (
        SurveyNode(name="n1", kind="board", stage=1),
        SurveyNode(name="n2", kind="board", stage=2),
        SurveyNode(name="n3", kind="board", stage=3),
        SurveyNode(name="host", kind="host"),
    )
    survey = Survey(
        nodes=nodes,
        matrix=(
            (None, -61.0, None, None),
            (-63.0, None, -70.0, None),
            (None, None, None, None),
            (-50.0, -52.0, -55.0, None),
        ),
        sources=(
            (None, "board", None, None),
            ("board", None, "board", None),
            (None, None, None, None),
            ("host", "host", "host", None),
        ),
        created_utc="2026-01-01T00:00:00Z",
        inventory=None,
        transport="ble",
    )
    path = save_survey(survey, tmp_path / "survey.json")
    m = load_rssi_matrix(path, boards=3)
    assert m.names == ("n1", "n2", "n3")
    assert m.dbm[0][1] == -62.0 and m.dbm[1][2] == -70.0 and math.isnan(m.dbm[0][2])


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("rssi_dbm = [[nan, -60], [-60, nan], [1, 2]]", {}, "square"),
        ('boards = ["a"]\nrssi_dbm = [[nan, -60], [-60, nan]]', {}, "1 board names"),
        ("rssi_dbm = [[nan, -60], [-60, nan]]", {"boards": 3}, "2 boards, 3 are needed"),
        ("rssi_dbm = [[nan, -60], [-70, nan]]", {}, "differ by more than 6 dB"),
        ("rssi_dbm = [[nan, -160], [-160, nan]]", {}, "outside -130..20"),
        ('rssi_dbm = [[nan, "x"], [-60, nan]]', {}, "not a number"),
        ("rssi_dbm = [[nan, -60, nan], [-60, nan, nan], [nan, nan, nan]]", {}, "b2 has no link"),
        ("positions = [[0, 0], [1, 1]]", {}, "need a transport"),
        ("spacing_m = 1.0\ntransport = 'ble'", {}, "number of boards"),
        ("speed = 3", {}, "give rssi_dbm"),
        ("rssi_dbm = [[", {}, "not valid"),
    ],
)
def test_bad_files(tmp_path: Path, text: str, kwargs: dict[str, int], message: str) -> None:
    path = _write(tmp_path, "bad.toml", text + "\n")
    with pytest.raises(ConfigError, match=message) as info:
        load_rssi_matrix(path, **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_rssi_matrix(tmp_path / "nope.toml")


def test_dataclass_checks() -> None:
    with pytest.raises(ConfigError, match="symmetric"):
        RssiMatrix(names=("a", "b"), dbm=((math.nan, -60.0), (-61.0, math.nan)))
    with pytest.raises(ConfigError, match="diagonal"):
        RssiMatrix(names=("a", "b"), dbm=((-1.0, -60.0), (-60.0, math.nan)))
    with pytest.raises(ConfigError, match="unique"):
        RssiMatrix(names=("a", "a"), dbm=((math.nan, -60.0), (-60.0, math.nan)))
    with pytest.raises(ConfigError, match="at least 2"):
        RssiMatrix(names=("a",), dbm=((math.nan,),))
