"""Placement and replicas in the simulator: physical boards, round-robin, order, RSSI, records."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.sim.fixed_link import FixedLink, three_stage_plan
from tinysplit.errors import ConfigError
from tinysplit.partition.paper import table_i_plan
from tinysplit.partition.replication import replicate_plan
from tinysplit.results import ArchiveWriter, load
from tinysplit.sim import PipelineConfig, SimResult, simulate
from tinysplit.sim.metrics import summarize

NAN = math.nan


def uniform(boards: int, dbm: float = -60.0) -> tuple[tuple[float, ...], ...]:
    """Every pair of ``boards`` boards at ``dbm``; no self link."""
    return tuple(tuple(NAN if a == b else dbm for b in range(boards)) for a in range(boards))


def run_paper(placement: tuple[tuple[int, ...], ...] | None, **kwargs: object) -> SimResult:
    config = PipelineConfig(
        transport="ble",
        inferences=30,
        rssi_matrix_dbm=uniform(7),
        placement=placement,
        **kwargs,  # type: ignore[arg-type]
    )
    return simulate(table_i_plan(), config)


#: The paper's cuts on boards 0-4, stage 2 (the BLE bottleneck: it receives 392 KiB and sends
#: 196 KiB on one radio) also on spare board 5, as replicate_plan(..., stage_time="radio") says.
REPLICATED = ((0,), (1, 5), (2,), (3,), (4,))


@pytest.fixture(scope="module")
def baseline() -> SimResult:
    return run_paper(None)


@pytest.fixture(scope="module")
def replicated() -> SimResult:
    return run_paper(REPLICATED)


def test_spare_boards_raise_ble_throughput(baseline: SimResult, replicated: SimResult) -> None:
    base, more = summarize(baseline), summarize(replicated)
    # Measured: 0.0243/s -> 0.0365/s (1.50x): stage 1's sender and stage 3's radio (27.4 s of
    # transfers per inference each) become the bottleneck instead of stage 2's 41.1 s.
    assert more["throughput_per_s"] > 1.4 * base["throughput_per_s"]
    assert more["completed"] == base["completed"] == 30 and more["failed"] == 0
    plan = replicate_plan(table_i_plan(), 7, stage_time="radio")
    assert plan.replicas == (1, 2, 1, 1, 1)


def test_round_robin_and_order(replicated: SimResult) -> None:
    for e in replicated.stage_events:
        expected = REPLICATED[e.stage - 1][e.inference % len(REPLICATED[e.stage - 1])] + 1
        assert e.board == expected
    for move in replicated.link_events:
        i, k = move.inference, move.stage
        assert move.sender == REPLICATED[k - 1][i % len(REPLICATED[k - 1])] + 1
        assert move.receiver == REPLICATED[k][i % len(REPLICATED[k])] + 1
    outputs = replicated.output_s
    assert len(outputs) == 30 and not any(math.isnan(t) for t in outputs)
    assert outputs == sorted(outputs)
    ends = {e.inference: e.inference_end_s for e in replicated.stage_events if e.stage == 5}
    assert all(out >= ends[i] for i, out in enumerate(outputs))
    # Every board starts its inferences in order.
    for board in range(1, 8):
        starts = [
            (e.inference, e.inference_start_s)
            for e in replicated.stage_events
            if e.board == board and e.stage > 1
        ]
        assert [s for _, s in sorted(starts)] == sorted(s for _, s in starts)


def test_same_seed_same_records(replicated: SimResult) -> None:
    again = run_paper(REPLICATED)
    assert again.stage_events == replicated.stage_events
    assert again.link_events == replicated.link_events
    assert again.energy_j == replicated.energy_j
    other = run_paper(REPLICATED, seed=1)
    assert other.link_events != replicated.link_events


def test_energy_per_physical_board(baseline: SimResult, replicated: SimResult) -> None:
    assert len(replicated.energy_j) == 7
    # Board 6 (index 5) runs stage 2 for odd inferences; board 7 is a switched-off spare.
    assert replicated.energy_j[5]["inference"] > 0 and replicated.energy_j[5]["radio_rx"] > 0
    assert replicated.energy_j[6] == dict.fromkeys(replicated.energy_j[6], 0.0)
    assert sum(baseline.energy_j[5].values()) == 0.0
    share = replicated.energy_j[1]["inference"] / baseline.energy_j[1]["inference"]
    assert share == pytest.approx(0.5)  # stage 2's board now computes half the inferences


def test_placement_permutation_changes_the_rssi_each_link_sees() -> None:
    rssi = np.full((4, 4), -90.0)
    np.fill_diagonal(rssi, NAN)
    rssi[0, 1] = rssi[1, 0] = -50.0
    rssi[2, 3] = rssi[3, 2] = -70.0
    matrix = tuple(tuple(float(v) for v in row) for row in rssi)
    plan = three_stage_plan()
    straight = simulate(
        plan,
        PipelineConfig(transport="ble", inferences=2, rssi_matrix_dbm=matrix),
        link=FixedLink(0.5),
    )
    swapped = simulate(
        plan,
        PipelineConfig(
            transport="ble", inferences=2, rssi_matrix_dbm=matrix, placement=((3,), (2,), (0,))
        ),
        link=FixedLink(0.5),
    )
    assert straight.rssi_dbm == [-50.0, -90.0]
    assert swapped.rssi_dbm == [-70.0, -90.0]
    assert {(e.sender, e.receiver, e.rssi_dbm) for e in swapped.link_events} == {
        (4, 3, -70.0),
        (3, 1, -90.0),
    }
    assert [sum(e.values()) > 0 for e in swapped.energy_j] == [True, False, True, True]


def test_no_placement_no_matrix_is_the_chain() -> None:
    config = PipelineConfig(transport="ble", rssi_dbm=(-60.0, -70.0), inferences=4)
    chain = simulate(three_stage_plan(), config, link=FixedLink(0.5))
    explicit = simulate(
        three_stage_plan(),
        dataclasses.replace(config, placement=((0,), (1,), (2,))),
        link=FixedLink(0.5),
    )
    assert chain.stage_events == explicit.stage_events
    assert [e.board for e in chain.stage_events] == [e.stage for e in chain.stage_events]
    assert chain.output_s == sorted(e.inference_end_s for e in chain.stage_events if e.stage == 3)


def test_windows_per_boundary() -> None:
    config = PipelineConfig(
        transport="ble", rssi_dbm=(-60.0, -70.0), inferences=2, windows=(3, 9), window=6
    )
    result = simulate(three_stage_plan(), config, link=FixedLink(0.5))
    assert {(e.stage, e.window) for e in result.link_events} == {(1, 3), (2, 9)}


def test_lost_tensors_do_not_stall_replicas() -> None:
    placement = ((0,), (1, 3), (2,))
    config = PipelineConfig(transport="ble", rssi_matrix_dbm=uniform(4), inferences=6,
                            placement=placement)  # fmt: skip
    result = simulate(three_stage_plan(), config, link=FixedLink(0.5, lose=True))
    assert result.failed == list(range(6)) and result.completed == []
    assert all(math.isnan(t) for t in result.output_s)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"placement": ((0,), (0,), (1,))}, "placement uses board 0 twice"),
        ({"placement": ((0,), (), (1,))}, "at least one board for every stage"),
        ({"placement": ((0,), (-1,), (1,))}, "integers >= 0"),
        ({"placement": ((0,), (1,), (9,)), "rssi_matrix_dbm": uniform(4)}, "board 9 but there"),
        ({"rssi_matrix_dbm": ((-60.0, -60.0), (-60.0,))}, "must be B x B"),
        ({"rssi_matrix_dbm": uniform(3, -200.0)}, "within -130..20 dBm"),
        ({"rssi_matrix_dbm": uniform(3), "rssi_dbm": (-60.0, -60.0)}, "give one of"),
        ({"windows": (0, 6)}, "windows must be integers >= 1"),
    ],
)
def test_bad_config_is_one_clear_line(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        PipelineConfig(transport="ble", **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"placement": ((0,), (1,)), "rssi_dbm": (-60.0,)}, "placement has 2 stages but the plan"),
        ({"windows": (6,), "rssi_dbm": (-60.0, -60.0)}, "windows has 1 values but the plan has 2"),
        ({"rssi_matrix_dbm": uniform(2)}, "placement uses board 2 but there are only 2 boards"),
        (
            {"rssi_matrix_dbm": ((NAN, NAN, -60.0), (NAN, NAN, -60.0), (-60.0, -60.0, NAN))},
            "no usable link between boards 0 and 1",
        ),
    ],
)
def test_plan_mismatch_is_one_clear_line(kwargs: dict[str, object], message: str) -> None:
    config = PipelineConfig(transport="ble", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=message):
        simulate(three_stage_plan(), config, link=FixedLink(0.5))


def test_archive_records_boards_and_reads_version_1(tmp_path: Path, replicated: SimResult) -> None:
    writer = ArchiveWriter(tmp_path, testbed="sim", transport="ble", manifest={})
    writer.add("replicas[ble]", replicated)
    archive = load(writer.close(complete=True))
    rows = archive.inferences
    assert list(rows.board) == [e.board for e in replicated.stage_events]
    assert list(archive.links.sender_board) == [e.sender for e in replicated.link_events]
    assert list(archive.links.receiver_board) == [e.receiver for e in replicated.link_events]
    assert sorted(set(archive.energy.board)) == list(range(1, 8))
    assert archive.summary.boards[0] == 7 and archive.summary.stages[0] == 5
    assert archive.manifest["cases"][0]["placement"] == [list(s) for s in REPLICATED]
    assert archive.manifest["cases"][0]["config"]["placement"] == [list(s) for s in REPLICATED]
    # A version 1 archive has none of the board columns: load fills them (stage k on board k).
    old = archive.path
    for name, drop in (("inferences", ["board"]), ("links", ["sender_board", "receiver_board"]),
                       ("summary", ["stages"])):  # fmt: skip
        frame = pd.read_csv(old / f"{name}.csv", dtype=str, keep_default_na=False)
        frame.drop(columns=drop).to_csv(old / f"{name}.csv", index=False)
    manifest = json.loads((old / "manifest.json").read_text())
    (old / "manifest.json").write_text(json.dumps({**manifest, "schema_version": 1}))
    v1 = load(old)
    assert list(v1.inferences.board) == list(v1.inferences.stage)
    assert list(v1.links.receiver_board) == list(v1.links.stage + 1)
    assert list(v1.summary.stages) == list(v1.summary.boards)


def test_round_robin_pairs_that_never_talk_need_no_link() -> None:
    # Two replicas feeding two: replica j only ever sends to replica j (inference i goes from
    # i mod 2 to i mod 2), so the crossed pairs 0-3 and 1-2 may have no link at all.
    linked = {(0, 2), (1, 3), (2, 4), (3, 4)}
    matrix = tuple(
        tuple(-60.0 if (a, b) in linked or (b, a) in linked else NAN for b in range(5))
        for a in range(5)
    )
    config = PipelineConfig(
        transport="ble", inferences=6, rssi_matrix_dbm=matrix, placement=((0, 1), (2, 3), (4,))
    )
    result = simulate(three_stage_plan(), config, link=FixedLink(0.5))
    assert len(result.completed) == 6
    pairs = {(e.sender, e.receiver) for e in result.link_events if e.stage == 1}
    assert pairs == {(1, 3), (2, 4)}  # 1-based physical boards
