"""Compute-time model: op classes, the calibration anchor, data round trip."""

from __future__ import annotations

import numpy as np
import pytest

from tinysplit.errors import ConfigError
from tinysplit.model import Graph, load_model
from tinysplit.partition import ComputeModel, layer_class, layer_compute_s, load_compute_model


def test_layer_classes(paper_graph: Graph) -> None:
    classes = {x.name: layer_class(x) for x in paper_graph.layers}
    assert classes["conv1"] == "first_conv"
    assert classes["conv_dw_1"] == "depthwise"
    assert classes["conv_pw_1"] == "pointwise"
    assert classes["conv_preds"] == "gemm"  # 1x1 conv on a 1x1 map streams its weights
    assert classes["dense"] == "gemm"
    assert classes["conv1_relu"] == classes["conv_pad_2"] == "memory"


def test_efficiencies_reproduce_the_anchor() -> None:
    model = load_compute_model()
    assert model.peak_macs_per_s == pytest.approx(1.92e9)
    # int16 average rate of the anchor: 300 M MAC / (1.3095 s * 1.93)
    avg_rate = 300e6 / (1.3095 * 1.93)
    mix = {"pointwise": 0.949, "depthwise": 0.031, "first_conv": 0.019}
    per_mac = sum(
        s / sum(mix.values()) / (model.eta[c] * model.peak_macs_per_s) for c, s in mix.items()
    )
    assert per_mac == pytest.approx(1 / avg_rate)
    # ratios between classes are the ESP-NN ones
    assert model.eta["pointwise"] / model.eta["depthwise"] == pytest.approx(1.24 / 0.20)
    assert 0.01 <= model.eta["first_conv"] < model.eta["depthwise"] < model.eta["pointwise"] < 0.3


def test_mobilenet_lands_near_the_scaled_anchor() -> None:
    g = load_model("mobilenet_v1")
    t = layer_compute_s(g)
    assert t.shape == (len(g.layers),)
    assert np.all(t > 0)
    target = g.macs / (300e6 / (1.3095 * 1.93))  # MACs at the anchor's int16 average rate
    assert t.sum() == pytest.approx(target, rel=0.1)


def test_round_trip_and_validation() -> None:
    model = load_compute_model()
    assert ComputeModel.from_dict(model.to_dict()) == model
    data = model.to_dict()
    with pytest.raises(ConfigError, match="eta needs a value"):
        ComputeModel.from_dict({**data, "eta": {"pointwise": 0.1}})
    with pytest.raises(ConfigError, match="bad compute model"):
        ComputeModel.from_dict({k: v for k, v in data.items() if k != "clock_hz"})
    with pytest.raises(ConfigError, match="must be > 0"):
        ComputeModel.from_dict({**data, "memory_bytes_per_s": 0})
