"""The data behind the paper's figures, checked against the simulator's own records."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.report.archives import CUTS, MODEL, POSITIONS_M, WINDOWS, Recorded, write_bench_like
from tinysplit.model import load_model
from tinysplit.report import MissingDataError, Runs, load_runs
from tinysplit.report import paper as data
from tinysplit.sim.metrics import summarize


def test_failure_rate_per_device_and_window(recorded: Recorded, runs: Runs) -> None:
    frame = data.failure_rate_by_window(runs)
    assert list(frame.columns) == ["series", "window", "board", "attempts", "failures",
                                   "failure_rate"]  # fmt: skip
    assert list(dict.fromkeys(frame.series)) == ["ble", "espnow"]
    for series in ("ble", "espnow"):
        sweep = recorded.runs_of(f"window_sweep[{series}]")
        for window in WINDOWS:
            results = [r for r in sweep if r.config.window == window]
            rows = frame[(frame.series == series) & (frame.window == window)].set_index("board")
            pipeline = rows.loc[0]
            assert pipeline.attempts == len(results)
            assert pipeline.failures == sum(bool(r.failed) for r in results)
            for board in (1, 2):
                events = [e for r in results for e in r.link_events if e.stage == board]
                if not events:  # never reached: the board upstream lost every tensor
                    assert board not in rows.index
                    continue
                lost = sum(not e.result.delivered for e in events)
                assert (rows.loc[board].attempts, rows.loc[board].failures) == (len(events), lost)
                assert rows.loc[board].failure_rate == lost / len(events)
    ble = frame[(frame.series == "ble") & (frame.board == 1)].set_index("window").failure_rate
    assert ble.to_dict() == {1: 0.0, 6: 0.0, 12: 1.0}  # the host buffer overflows at 12


def test_send_time_per_window_over_failure_free_runs(recorded: Recorded, runs: Runs) -> None:
    frame = data.send_time_by_window(runs).set_index(["series", "window"])
    for series in ("ble", "espnow"):
        sweep = recorded.runs_of(f"window_sweep[{series}]")
        for window in WINDOWS:
            clean = [summarize(r)["network_s"] for r in sweep
                     if r.config.window == window and not r.failed]  # fmt: skip
            row = frame.loc[(series, window)]
            assert (row.runs, row.clean_runs) == (2, len(clean))
            if not clean:
                assert math.isnan(row.cumulative_send_s)
                continue
            assert row.cumulative_send_s == pytest.approx(np.mean(clean))
            assert row.sem_s == pytest.approx(np.std(clean, ddof=1) / math.sqrt(len(clean)))
    assert frame.loc[("ble", 12)].clean_runs == 0


def test_network_vs_inference_per_inference(recorded: Recorded, runs: Runs) -> None:
    frame = data.network_vs_inference(runs).set_index("series")
    for series in ("ble", "espnow"):
        summaries = [summarize(r) for r in recorded.runs_of(f"latency[{series}]")]
        network = sum(s["network_s"] for s in summaries)
        compute = sum(s["inference_s"] for s in summaries)
        row = frame.loc[series]
        assert row.inferences == 3
        assert row.network_s == pytest.approx(network / 3)
        assert row.inference_s == pytest.approx(compute / 3)
        assert row.network_to_inference == pytest.approx(network / compute)


def test_board_times_are_the_scribe_intervals(recorded: Recorded, runs: Runs) -> None:
    frame = data.board_times(runs)
    ble = frame[frame.series == "ble"].set_index("board")
    assert list(ble.index) == [1, 2, 3]
    summaries = [summarize(r) for r in recorded.runs_of("latency[ble]")]
    for k, board in enumerate((1, 2, 3)):
        for key in ("receive_s", "inference_s", "send_s"):
            expected = np.nanmean([s["stages"][k][key] for s in summaries]) if not (
                (board == 1 and key == "receive_s") or (board == 3 and key == "send_s")
            ) else math.nan  # fmt: skip
            assert ble.loc[board, key] == pytest.approx(expected, nan_ok=True)


@pytest.mark.parametrize(
    ("figure", "x"), [(data.time_vs_bytes, "bytes"), (data.time_vs_rssi, "rssi_dbm")]
)
def test_transfer_scatter_and_correlation(
    recorded: Recorded, runs: Runs, figure: object, x: str
) -> None:
    scatter = figure(runs)  # type: ignore[operator]
    assert (scatter.x, scatter.y) == (x, "duration_s")
    for series in ("ble", "espnow"):
        events = [e for r in recorded.runs_of(f"latency[{series}]") for e in r.link_events]
        xs = [e.bytes if x == "bytes" else e.rssi_dbm for e in events]
        ys = [e.result.duration_s for e in events]
        points = scatter.points[scatter.points.series == series]
        assert list(points[x]) == xs and list(points.duration_s) == ys
        assert list(points.link) == [f"{e.stage}->{e.stage + 1}" for e in events]
        r = scatter.correlation.set_index("series").loc[series]
        assert r.points == len(events) == 6
        assert r.pearson_r == pytest.approx(np.corrcoef(xs, ys)[0, 1])
    # Two tensor sizes (4,096 B and 1,024 B): the bigger one takes longer on every link.
    assert scatter.correlation.set_index("series").pearson_r.abs().gt(0).all()


def test_time_per_kb_with_rssi_and_distance(recorded: Recorded, runs: Runs) -> None:
    scatter = data.time_per_kb_vs_rssi(runs)
    points = scatter.points.set_index(["series", "link"])
    for series in ("ble", "espnow"):
        events = [e for r in recorded.runs_of(f"latency[{series}]") for e in r.link_events]
        per_kb, rssi = [], []
        for stage in (1, 2):
            mine = [e for e in events if e.stage == stage]
            row = points.loc[(series, f"{stage}->{stage + 1}")]
            per_kb.append(np.mean([e.result.duration_s * 1000 / e.bytes for e in mine]))
            rssi.append(np.mean([e.rssi_dbm for e in mine]))
            assert row.transfers == 3
            assert row.time_per_kb_s == pytest.approx(per_kb[-1])
            assert row.rssi_dbm == pytest.approx(rssi[-1])
            expected_m = (
                math.dist(POSITIONS_M[stage - 1], POSITIONS_M[stage])
                if series == "espnow"
                else math.nan
            )
            assert row.distance_m == pytest.approx(expected_m, nan_ok=True)
        r = scatter.correlation.set_index("series").loc[series, "pearson_r"]
        assert r == pytest.approx(np.corrcoef(rssi, per_kb)[0, 1])
    assert list(points.loc["espnow"].distance_m) == [0.5, 1.0]


def test_tensor_sizes_highlight_the_tensors_each_plan_sends(recorded: Recorded, runs: Runs) -> None:
    (sizes,) = data.tensor_sizes(runs)
    graph = load_model(MODEL)
    assert sizes.model == MODEL
    assert list(sizes.layers.output_bytes) == [layer.output_bytes for layer in graph.layers]
    assert list(sizes.layers.layer) == list(range(1, len(graph) + 1))
    assert sizes.layers.cut_point.sum() == len(graph.cut_points)
    # The latency runs' split (a manual plan) is the first; partition runs add their labels.
    assert sizes.cuts == {
        "manual (all); paper (ble)": CUTS["paper"],
        "optimal (ble)": CUTS["optimal"],
    }
    by_layer = sizes.layers.set_index("layer").output_bytes
    for label, cuts in sizes.cuts.items():
        name = "optimal" if label.startswith("optimal") else "paper"
        plan = recorded.plans[("ble", name)]
        sent = tuple(s.outgoing.size_bytes for s in plan.stages[:-1])
        assert sizes.sent_bytes[label] == sent
        assert tuple(int(by_layer[c]) for c in cuts) == sent  # the highlighted bars


def test_missing_families_raise_with_the_family_named(tmp_path: Path) -> None:
    only_stream = load_runs([write_bench_like(tmp_path, families=("stream",)).path])
    with pytest.raises(MissingDataError, match=r"Fig\. 3\) needs window_sweep\[\.\.\.\] runs"):
        data.failure_rate_by_window(only_stream)
    with pytest.raises(MissingDataError, match=r"needs latency\[\.\.\.\] runs"):
        data.time_vs_bytes(only_stream)
    with pytest.raises(MissingDataError, match=r"latency.*or partition"):
        data.tensor_sizes(only_stream)


def test_pearson_is_nan_without_spread() -> None:
    assert math.isnan(data.pearson([1.0, 1.0], [2.0, 3.0]))
    assert math.isnan(data.pearson([1.0], [2.0]))
    assert data.pearson([1.0, 2.0, 3.0], [2.0, 4.0, 7.0]) == pytest.approx(
        np.corrcoef([1, 2, 3], [2, 4, 7])[0, 1]
    )
