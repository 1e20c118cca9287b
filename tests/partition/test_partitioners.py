"""Partitioners: optimality against brute force, MobileNet comparisons, error messages."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.model.onnx_graphs import residual_block
from tests.partition.chains import Step, chain_graph
from tinysplit.errors import ConfigError, PartitionError
from tinysplit.model import Graph, import_model, load_model
from tinysplit.partition import (
    TRANSPORTS,
    DeviceProfile,
    MemoryModel,
    Plan,
    layer_compute_s,
    load_transport,
    partition,
)

steps = st.one_of(
    st.just(Step("relu")),
    st.builds(
        Step,
        op=st.just("conv"),
        channels=st.integers(1, 12),
        size=st.sampled_from([1, 2, 4, 8]),
        kernel=st.sampled_from([1, 3]),
        depthwise=st.booleans(),
    ),
)


@st.composite
def chains_and_boards(draw: st.DrawFn) -> tuple[Graph, DeviceProfile]:
    """A random Conv/Relu chain and a board on which some of its stages fit and some do not.

    Capacities are measured on a roomy board: each kind gets the largest usage among the stages
    of one random split (so that split fits), and sometimes one kind is then cut to the usage of
    a random stage (so maybe nothing fits).
    """
    g = chain_graph(draw(st.lists(steps, min_size=2, max_size=7)), (draw(st.integers(1, 6)), 4, 4))
    psram = draw(st.booleans())
    roomy = DeviceProfile(
        name="random",
        accounting=draw(st.sampled_from(["detailed", "paper"])),
        flash_bytes=2**40,
        psram_bytes=2**40 if psram else 0,
        sram_heap_bytes=2**40,
        bias_bytes=draw(st.sampled_from([2, 8])),
        param_copy=psram and draw(st.booleans()),
        code_bytes=dict.fromkeys(TRANSPORTS, 100),
        transport_buffer_bytes=dict.fromkeys(TRANSPORTS, 10),
    )
    mem = MemoryModel(g, roomy, "ble")
    cuts = sorted(draw(st.sets(st.sampled_from(g.cut_points)))) if g.cut_points else []
    lasts = np.array([*cuts, len(g.layers) - 1])
    firsts = np.array([0, *(c + 1 for c in cuts)])
    capacity = {k: int(v.max()) for k, v in mem.usage(firsts, lasts).items()}
    if draw(st.booleans()):
        a, b = sorted(draw(st.lists(st.sampled_from(range(len(g.layers))), min_size=2, max_size=2)))
        kind = draw(st.sampled_from(sorted(capacity)))
        capacity[kind] = min(capacity[kind], int(mem.usage(np.array([a]), np.array([b]))[kind][0]))
    if roomy.accounting == "paper":
        return g, dataclasses.replace(roomy, flash_bytes=capacity["total"])
    board = dataclasses.replace(
        roomy,
        flash_bytes=capacity["flash"],
        psram_bytes=capacity.get("psram", 0),
        sram_heap_bytes=capacity["sram"],
    )
    return g, board


def splits(g: Graph, devices: int) -> Iterator[tuple[int, ...]]:
    """Every way to cut ``g`` into ``devices`` stages: the 0-based last layer of each stage."""
    for cuts in itertools.combinations(g.cut_points, devices - 1):
        yield (*cuts, len(g.layers) - 1)


def brute(
    g: Graph, board: DeviceProfile, objective: str, devices: int, rate: float
) -> tuple[float, float] | None:
    """Best (max, sum) of stage costs over all fitting splits, computed stage by stage."""
    mem = MemoryModel(g, board, "ble")
    times = np.concatenate(([0.0], np.cumsum(layer_compute_s(g))))
    best = None
    for lasts in splits(g, devices):
        firsts = (0, *(x + 1 for x in lasts[:-1]))
        if not all(mem.stage_memory(a, b).fits for a, b in zip(firsts, lasts, strict=True)):
            continue
        sent = [g.boundary_bytes(b) for b in lasts[:-1]] + [0]
        if objective == "bytes":
            costs = [float(s) for s in sent]
        else:
            costs = [
                float(times[b + 1] - times[a]) + s * 8.0 / rate
                for a, b, s in zip(firsts, lasts, sent, strict=True)
            ]
        value = (max(costs), sum(costs))
        best = value if best is None else min(best, value)
    return best


def plan_value(plan: Plan) -> tuple[float, float]:
    if plan.objective == "bytes":
        sent = [s.outgoing.size_bytes for s in plan.stages[:-1]]
        return float(plan.max_sent_bytes), float(sum(sent))
    return plan.bottleneck_s, plan.latency_s


def assert_fits(g: Graph, plan: Plan) -> None:
    mem = MemoryModel(g, plan.profile, plan.transport)
    for s in plan.stages:
        assert mem.stage_memory(s.first_layer - 1, s.last_layer - 1).fits
    assert set(plan.cuts) <= set(g.cut_points)


@settings(max_examples=150, deadline=None)
@given(chains_and_boards(), st.sampled_from(["bytes", "bottleneck"]), st.floats(1e3, 1e6))
def test_optimal_equals_brute_force(
    case: tuple[Graph, DeviceProfile], objective: str, rate: float
) -> None:
    g, board = case
    best = {n: brute(g, board, objective, n, rate) for n in range(1, len(g.cut_points) + 2)}
    feasible = [n for n, v in best.items() if v is not None]
    for devices in [None, *best]:
        want = devices or (feasible[0] if feasible else None)

        def run(devices: int | None = devices) -> Plan:
            return partition(
                g, devices=devices, profile=board, objective=objective, link_rate_bps=rate
            )

        if want is None or best[want] is None:
            with pytest.raises(PartitionError):
                run()
            continue
        plan = run()
        assert plan.devices == want
        assert_fits(g, plan)
        value = plan_value(plan)
        assert value[0] == pytest.approx(best[want][0], rel=1e-12)
        assert value[1] == pytest.approx(best[want][1], rel=1e-9)


@settings(max_examples=100, deadline=None)
@given(chains_and_boards(), st.data())
def test_paper_and_greedy_fit_and_greedy_never_sends_more(
    case: tuple[Graph, DeviceProfile], data: st.DataObject
) -> None:
    g, board = case
    devices = data.draw(st.none() | st.integers(1, len(g.cut_points) + 1))
    try:
        paper = partition(g, strategy="paper", devices=devices, profile=board)
    except PartitionError:
        with pytest.raises(PartitionError):
            partition(g, strategy="optimal", devices=devices, profile=board)
        return
    greedy = partition(g, strategy="greedy", devices=devices, profile=board)
    optimal = partition(
        g, strategy="optimal", devices=paper.devices, profile=board, objective="bytes"
    )
    for plan in (paper, greedy):
        assert_fits(g, plan)
        assert plan.devices == paper.devices
    assert optimal.max_sent_bytes <= greedy.max_sent_bytes <= paper.max_sent_bytes


@pytest.fixture(scope="module", params=["mobilenet_v1", "paper"])
def mobilenet(request: pytest.FixtureRequest) -> Graph:
    return load_model(request.param)


@pytest.mark.parametrize("board", ["paper", "esp32s3-n8r8", "esp32s3-n16r8"])
def test_optimal_never_sends_more_than_paper_or_greedy(mobilenet: Graph, board: str) -> None:
    fewest = partition(mobilenet, profile=board).devices
    for devices in range(fewest, fewest + 4):
        best = partition(mobilenet, devices=devices, profile=board, objective="bytes")
        for strategy in ("paper", "greedy"):
            other = partition(mobilenet, strategy=strategy, devices=devices, profile=board)
            assert other.devices == best.devices == devices
            assert best.max_sent_bytes <= other.max_sent_bytes
            assert_fits(mobilenet, other)


def test_paper_model_five_devices(paper_graph: Graph) -> None:
    mobilenet = paper_graph
    table_1 = [(1, 23), (24, 37), (38, 49), (50, 59), (60, 67)]
    table_1_max_sent = max(mobilenet.boundary_bytes(last - 1) for _, last in table_1[:-1])
    paper = partition(mobilenet, strategy="paper", devices=5, profile="paper")
    best = partition(mobilenet, devices=5, profile="paper", objective="bytes")
    assert paper.devices == best.devices == 5
    assert [s.device for s in paper.stages] == [1, 2, 3, 4, 5]
    assert all(s.total_memory_bytes <= 4 * 2**20 for s in paper.stages)
    assert best.max_sent_bytes < table_1_max_sent
    assert partition(mobilenet, profile="paper").devices == 3


def test_plan_contents(mobilenet: Graph) -> None:
    plan = partition(mobilenet, devices=3, profile="esp32s3-n16r8", transport="wifi")
    times = layer_compute_s(mobilenet)
    ble = load_transport("ble")
    assert plan.link_rate_bps == load_transport("wifi").link_rate_bps
    assert sum(s.estimated_compute_s for s in plan.stages) == pytest.approx(times.sum())
    for s in plan.stages[:-1]:
        assert s.outgoing.size_bytes == mobilenet.boundary_bytes(s.last_layer - 1)
        assert s.outgoing.frames["ble"] == -(-s.outgoing.size_bytes // ble.payload_bytes)
        assert s.estimated_send_s == pytest.approx(s.outgoing.size_bytes * 8 / plan.link_rate_bps)
        assert s.outgoing.nhwc_shape[-1] == mobilenet.shapes[s.outgoing.name][1]
    last = plan.stages[-1]
    assert last.outgoing.name == mobilenet.output_name
    assert last.estimated_send_s == 0.0
    for s in plan.stages:
        assert s.total_memory_bytes == (
            s.weights_bytes + s.code_bytes + s.peak_activation_bytes + s.transport_buffer_bytes
        )


def test_never_cuts_inside_a_residual_block() -> None:
    g = import_model(residual_block(), name="res")
    for devices in range(1, len(g.cut_points) + 2):
        for strategy in ("paper", "greedy", "optimal"):
            plan = partition(g, strategy=strategy, devices=devices, profile="esp32s3-n8r8")
            assert set(plan.cuts) <= {0, 1, 5, 6}


def test_layer_larger_than_any_device() -> None:
    g = chain_graph(
        [Step("conv", channels=4, size=4), Step("conv", channels=512, size=4, kernel=3)], (4, 4, 4)
    )
    board = DeviceProfile(
        name="small",
        flash_bytes=50_000,
        psram_bytes=0,
        sram_heap_bytes=10_000,
        code_bytes=dict.fromkeys(TRANSPORTS, 1000),
        transport_buffer_bytes=dict.fromkeys(TRANSPORTS, 0),
    )
    with pytest.raises(
        PartitionError, match=r"layer 2 \(conv1\) of model 'chain'.*'small'.*weights 37.0 KiB.*sram"
    ):
        partition(g, profile=board)


def test_too_few_and_too_many_devices(paper_graph: Graph) -> None:
    g = paper_graph
    with pytest.raises(PartitionError, match=r"needs at least 3 'paper' devices.*asked for 2"):
        partition(g, devices=2, profile="paper")
    with pytest.raises(PartitionError, match=r"needs at least 3"):
        partition(g, strategy="paper", devices=2, profile="paper")
    with pytest.raises(PartitionError, match=r"at most 67 devices \(asked for 68\)"):
        partition(g, devices=68, profile="paper")
    with pytest.raises(
        PartitionError,
        match=r"layer 1 \(conv1\).*one 'esp32s3-n4' device.*sram 2.12 MiB > 250.0 KiB",
    ):
        partition(g, profile="esp32s3-n4")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "best"}, r"unknown strategy 'best' \(valid: paper, greedy, optimal\)"),
        ({"objective": "energy"}, r"unknown objective 'energy' \(valid: bottleneck, bytes\)"),
        ({"devices": 0}, "devices must be a positive integer"),
        ({"devices": True}, "devices must be a positive integer"),
        ({"devices": 2.0}, "devices must be a positive integer"),
        ({"transport": "zigbee"}, "unknown transport 'zigbee'"),
        ({"profile": "esp8266"}, "unknown device profile 'esp8266'"),
        ({"link_rate_bps": 0}, "link_rate_bps must be a positive number"),
        ({"link_rate_bps": float("nan")}, "link_rate_bps must be a positive number"),
        ({"link_rate_bps": "fast"}, "link_rate_bps must be a positive number"),
    ],
)
def test_bad_options(kwargs: dict[str, object], message: str) -> None:
    g = chain_graph([Step("relu")], (1, 2, 2))
    with pytest.raises(ConfigError, match=message):
        partition(g, **kwargs)  # type: ignore[arg-type]
