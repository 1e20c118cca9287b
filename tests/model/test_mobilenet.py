"""Built-in MobileNetV1 and the paper preset."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from tinysplit.errors import ConfigError
from tinysplit.model import build_onnx, load_model, mobilenet_v1


def test_mobilenet_v1_structure_matches_the_paper_modifications() -> None:
    graph = load_model("mobilenet_v1")
    ops = [layer.op for layer in graph.layers]
    assert "Clip" not in ops  # ReLU6 replaced by ReLU
    assert ops.count("Conv") == 27 + 1  # 27 backbone convolutions + the 10-class head conv
    assert ops.count("Relu") == 27
    assert ops[-5:] == ["Reshape", "Conv", "Flatten", "Gemm", "Softmax"]
    assert graph.layers[-1].shape == (1, 10)
    # MobileNetV1 1.0-224 backbone: 568.7 M MACs less the 1000-class FC (1.024 M) of the
    # original paper's count, plus our 10-class head (10.24 k + 0.1 k).
    backbone = sum(layer.macs for layer in graph.layers[:-5])
    assert backbone == 567_716_352
    assert graph.input_shape == (1, 3, 224, 224)


def test_options_change_width_size_and_classes() -> None:
    graph = load_model("mobilenet_v1:alpha=0.5,input_size=96,classes=4")
    assert graph.input_shape == (1, 3, 96, 96)
    assert graph.layers[0].shape == (1, 16, 48, 48)
    assert graph.layers[-1].shape == (1, 4)
    assert graph.layers[-7].shape == (1, 512, 3, 3)  # last pointwise conv: 1024 * 0.5


def test_weights_are_deterministic_and_seeded() -> None:
    a = build_onnx("mobilenet_v1:alpha=0.25,input_size=32")
    b = build_onnx("mobilenet_v1:alpha=0.25,input_size=32")
    c = build_onnx("mobilenet_v1:alpha=0.25,input_size=32,seed=1")
    assert a.SerializeToString() == b.SerializeToString()
    wa, wc = (onnx.numpy_helper.to_array(m.graph.initializer[0]) for m in (a, c))
    assert not np.array_equal(wa, wc)
    onnx.checker.check_model(a, full_check=True)
    assert a.opset_import[0].version == 13


def test_paper_preset_has_67_layers_and_the_imagenet_top() -> None:
    graph = load_model("paper")
    assert len(graph) == 67
    names = [layer.name for layer in graph.layers]
    assert names[58] == "global_average_pooling2d"  # layer 59
    assert names[60] == "conv_preds"  # layer 61: Keras' 1000-class top, kept
    assert [layer.op for layer in graph.layers].count("Pad") == 4
    assert graph.param_count == 4_231_152
    assert graph.param_bytes == 8_462_304  # int16: 8.46 MB; the paper reports 8.9 MB


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": 0.0}, "alpha must be > 0"),
        ({"input_size": 8}, "input_size must be >= 32"),
        ({"classes": 1}, "classes must be >= 2"),
    ],
)
def test_bad_options_are_config_errors(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        mobilenet_v1(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("resnet50", "unknown model 'resnet50'"),
        ("mobilenet_v1:depth=3", "bad option 'depth=3'"),
        ("mobilenet_v1:alpha=wide", "bad value for mobilenet_v1 option alpha"),
        ("paper:alpha=0.5", "bad option 'alpha=0.5' for model 'paper'"),
    ],
)
def test_bad_model_specs(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_model(spec)
