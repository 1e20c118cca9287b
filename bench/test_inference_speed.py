"""Single-core speed of the executors on MobileNetV1 (alpha 1.0, 224x224, the paper's size).

BLAS is pinned to one thread with threadpoolctl, so the numbers are per core. The benchmarks
assert correct outputs, never times: the int16 result must be bit-identical to a run with every
BLAS thread (float64 BLAS is exact on int16 data whatever the summation order), and the float
result must match onnxruntime.

Run with ``pytest bench/test_inference_speed.py`` (or ``tox -e bench``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
import pytest
from pytest_benchmark.fixture import BenchmarkFixture
from threadpoolctl import threadpool_limits

from tinysplit.model import build_onnx, import_model
from tinysplit.model.execute import run_float, run_int16, sqnr_db
from tinysplit.model.graph import Graph
from tinysplit.model.quantize import (
    QuantizedModel,
    calibrate,
    dequantize,
    quantize,
    sample_inputs,
)

SPEC = "mobilenet_v1"
ROUNDS = 5


@dataclass(frozen=True)
class Case:
    graph: Graph
    qmodel: QuantizedModel
    x: np.ndarray
    q: np.ndarray
    onnx_bytes: bytes


@pytest.fixture(scope="module")
def case() -> Case:
    model = build_onnx(SPEC)
    graph = import_model(model, name=SPEC)
    images = sample_inputs(graph, 3, seed=0)
    qmodel = calibrate(graph, images[:2])
    x = images[2:]
    q = quantize(x, qmodel.exponents[graph.input_name])
    return Case(graph, qmodel, x, q, model.SerializeToString())


def test_int16_inference_one_core(benchmark: BenchmarkFixture, case: Case) -> None:
    reference = run_int16(case.qmodel, case.q)  # every BLAS thread, plans built
    with threadpool_limits(limits=1):
        out = benchmark.pedantic(
            run_int16, args=(case.qmodel, case.q), rounds=ROUNDS, iterations=1, warmup_rounds=1
        )
    assert np.array_equal(out, reference)
    exp = case.qmodel.exponents[case.graph.output_name]
    benchmark.extra_info["output_sqnr_db"] = sqnr_db(
        run_float(case.graph, case.x), dequantize(out, exp)
    )
    benchmark.extra_info["macs"] = case.graph.macs


def test_float_inference_one_core(benchmark: BenchmarkFixture, case: Case) -> None:
    with threadpool_limits(limits=1):
        out = benchmark.pedantic(
            run_float, args=(case.graph, case.x), rounds=ROUNDS, iterations=1, warmup_rounds=1
        )
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(case.onnx_bytes, options, providers=["CPUExecutionProvider"])
    expected = session.run(None, {case.graph.input_name: case.x})[0]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-6)
