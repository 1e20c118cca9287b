"""Stage memory model, checked by hand on tiny graphs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.model.onnx_graphs import residual_block
from tests.partition.chains import Step, chain_graph
from tinysplit.model import Graph, import_model
from tinysplit.partition import DeviceProfile, MemoryModel, load_profile

CODE = {"ble": 1000, "wifi": 2000, "espnow": 3000}
BUFFERS = {"ble": 100, "wifi": 200, "espnow": 300}


def board(**change: object) -> DeviceProfile:
    """A small detailed-accounting board: 10 kB flash (1 kB reserved), 5 kB PSRAM, 500 B SRAM."""
    base = DeviceProfile(
        name="tiny",
        flash_bytes=10_000,
        psram_bytes=5_000,
        sram_heap_bytes=500,
        flash_reserved_bytes=1_000,
        weight_bytes=2,
        bias_bytes=8,
        param_copy=True,
        code_bytes=CODE,
        transport_buffer_bytes=BUFFERS,
    )
    return dataclasses.replace(base, **change)  # type: ignore[arg-type]


@pytest.fixture
def tiny() -> Graph:
    """input 2x4x4 (64 B) -> conv3x3 2->4 (128 B) -> relu (128 B) -> conv1x1 4->2 (64 B)."""
    return chain_graph(
        [
            Step("conv", channels=4, size=4, kernel=3),
            Step("relu"),
            Step("conv", channels=2, size=4),
        ],
        (2, 4, 4),
    )


def test_whole_chain_detailed(tiny: Graph) -> None:
    m = MemoryModel(tiny, board(), "ble")
    sm = m.stage_memory(0, 2)
    # weights: conv0 72 w * 2 B + 4 b * 8 B; conv2 8 w * 2 B + 2 b * 8 B
    assert sm.weights_bytes == 144 + 32 + 16 + 16
    # rx 64 + arena peak (relu: 128 in + 128 out) + tx 64
    assert sm.activation_bytes == 64 + 256 + 64
    assert sm.code_bytes == 1000
    assert sm.transport_buffer_bytes == 100
    assert sm.by_kind == {"flash": 1000 + 1000 + 208, "psram": 384 + 208, "sram": 100}
    assert sm.total_bytes == 208 + 1000 + 384 + 100
    assert sm.fits
    assert sm.placement == {
        "weights": ("flash", "psram"),
        "code": ("flash",),
        "activations": ("psram",),
        "transport_buffers": ("sram",),
    }


def test_single_relu_stage_counts_receive_and_send_buffers(tiny: Graph) -> None:
    sm = MemoryModel(tiny, board(), "wifi").stage_memory(1, 1)
    assert sm.weights_bytes == 0
    assert sm.activation_bytes == 128 + (128 + 128) + 128
    assert sm.by_kind["sram"] == 200


def test_without_psram_activations_go_to_sram(tiny: Graph) -> None:
    m = MemoryModel(tiny, board(psram_bytes=0, param_copy=False), "espnow")
    sm = m.stage_memory(0, 2)
    assert sm.by_kind == {"flash": 1000 + 3000 + 208, "sram": 384 + 300}
    assert not sm.fits
    assert sm.overflow() == {"sram": (684, 500)}
    assert sm.placement["weights"] == ("flash",)
    assert sm.placement["activations"] == ("sram",)


def test_paper_accounting(tiny: Graph) -> None:
    paper = dataclasses.replace(load_profile("paper"), flash_bytes=2000)
    m = MemoryModel(tiny, paper, "ble")
    sm = m.stage_memory(0, 2)
    assert sm.weights_bytes == 2 * (72 + 4 + 8 + 2)  # every value int16
    assert sm.activation_bytes == 64  # max(input 64, output 64)
    assert sm.transport_buffer_bytes == 0
    assert sm.by_kind == {"total": 172 + 419430 + 64}
    assert not sm.fits
    assert m.stage_memory(1, 1).activation_bytes == 128  # max(in 128, out 128)


def test_dag_keeps_the_skip_tensor_live() -> None:
    g = import_model(residual_block(channels=4, size=8), name="res")
    assert g.cut_points == (0, 1, 5, 6)
    m = MemoryModel(g, load_profile("esp32s3-n8r8"), "ble")
    sm = m.stage_memory(2, 5)  # branch conv1 .. residual add; every tensor is 4x8x8 int16 = 512 B
    assert sm.weights_bytes == 2 * 2 * 144
    # rx r0 + (r0, r1 live + c2 out during branch_conv2) + tx sum
    assert sm.activation_bytes == 512 + 3 * 512 + 512
    assert m.work.tolist() == [1024, 1024, 1024, 1536, 1536, 1536, 1024, 520]


def test_vectorised_queries_match_scalar(tiny: Graph) -> None:
    m = MemoryModel(tiny, board(), "ble")
    first = np.array([0, 0, 0, 1, 1, 2])
    last = np.array([0, 1, 2, 1, 2, 2])
    usage = m.usage(first, last)
    fits = m.fits(first, last)
    ratio = m.fill_ratio(first, last)
    for i, (a, b) in enumerate(zip(first, last, strict=True)):
        sm = m.stage_memory(int(a), int(b))
        assert {k: int(v[i]) for k, v in usage.items()} == sm.by_kind
        assert bool(fits[i]) == sm.fits == (ratio[i] <= 1)
    assert m.boundary_bytes(np.array([-1, 0, 1, 2])).tolist() == [64, 128, 128, 64]


def test_earliest_first_bounds_every_fitting_stage(tiny: Graph) -> None:
    m = MemoryModel(tiny, board(flash_bytes=1000 + 1000 + 200), "ble")  # 200 B for weights
    assert m.max_weights_bytes() == 200
    assert m.earliest_first(np.array([0, 1, 2])).tolist() == [0, 0, 1]
    assert not m.fits(np.array([0]), np.array([2]))[0]
