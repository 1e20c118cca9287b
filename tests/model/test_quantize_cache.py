"""Quantizations rebuilt from their exponents and cached on disk equal a fresh calibration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tinysplit.model.execute import run_int16
from tinysplit.model.quantize import calibrate, calibrate_cached, from_exponents, sample_inputs
from tinysplit.model.zoo import load_model

MODEL = "mobilenet_v1:alpha=0.25,input_size=32"


def test_cached_quantization_equals_a_fresh_one(tmp_path: Path) -> None:
    graph = load_model(MODEL)
    fresh = calibrate(graph, sample_inputs(graph, 4, 1))
    first = calibrate_cached(graph, 4, 1, tmp_path)
    (entry,) = tmp_path.iterdir()
    assert json.loads(entry.read_text()) == dict(fresh.exponents)
    second = calibrate_cached(graph, 4, 1, tmp_path)  # from the file this time
    x = sample_inputs(graph, 1, 9)
    q = (x * 2.0 ** -int(fresh.exponents[graph.input_name])).round().astype(np.int16)
    for model in (first, second, from_exponents(graph, fresh.exponents)):
        assert dict(model.exponents) == dict(fresh.exponents)
        np.testing.assert_array_equal(run_int16(model, q), run_int16(fresh, q))


def test_a_corrupt_or_foreign_cache_entry_is_recalibrated(tmp_path: Path) -> None:
    graph = load_model(MODEL)
    calibrate_cached(graph, 2, 0, tmp_path)
    (entry,) = tmp_path.iterdir()
    entry.write_text("{not json")
    assert dict(calibrate_cached(graph, 2, 0, tmp_path).exponents) == dict(
        calibrate(graph, sample_inputs(graph, 2, 0)).exponents
    )
    entry.write_text(json.dumps({"some other tensor": 3}))
    assert calibrate_cached(graph, 2, 0, tmp_path).exponents[graph.input_name] is not None
