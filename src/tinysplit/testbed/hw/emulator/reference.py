"""The emulated last stage's real outputs: the int16 reference executor on the plan's model.

The model is rebuilt from the plan's model spec (:func:`tinysplit.model.load_model`, checked
against the plan's hash) and quantized as ``tinysplit export`` quantizes it for the boards: ESP-DL
int16 exponents calibrated on :data:`CALIBRATION_SAMPLES` images of
:func:`~tinysplit.model.quantize.sample_inputs` with seed :data:`CALIBRATION_SEED` (the export
command's defaults). Running the whole quantized model on the injected input gives exactly the
output of the chained slices (``tests/model`` proves it), so the emulator computes the pipeline's
output in one call. Tensors on the console are int16 little-endian in the boards' NHWC order.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tinysplit.errors import ConfigError
from tinysplit.model.execute import run_int16
from tinysplit.model.export import CALIBRATION_SAMPLES, CALIBRATION_SEED
from tinysplit.model.graph import nhwc
from tinysplit.model.quantize import QuantizedModel, calibrate_cached, requantize_exponent
from tinysplit.model.zoo import load_model
from tinysplit.partition import Plan


@functools.lru_cache(maxsize=4)
def quantized_model(model: str, model_hash: str) -> QuantizedModel:
    """The int16 model the boards of a plan run (cached per process).

    Args:
        model: the plan's model spec (a built-in name with options, or an ``.onnx`` path).
        model_hash: the plan's model hash; the rebuilt model must have it.

    Raises:
        ConfigError: the spec builds a different model than the plan was made for.
    """
    graph = load_model(model)
    if graph.source_hash != model_hash:
        raise ConfigError(
            f"plan was made for a different {model!r} (model hash mismatch): re-run partition"
        )
    return calibrate_cached(graph, CALIBRATION_SAMPLES, CALIBRATION_SEED, cache_dir())


def cache_dir() -> Path:
    """Where emulators keep quantizations: ``$TINYSPLIT_CACHE_DIR``, else the user cache.

    Every run starts a fresh emulator; the cache spares each one the model's float calibration.
    """
    configured = os.environ.get("TINYSPLIT_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tinysplit"


@dataclass(frozen=True, slots=True)
class StageTensors:
    """A stage's input and output tensors as ``hello`` reports them (int16 values, exponents)."""

    in_values: int
    in_exp: int
    out_values: int
    out_exp: int


def stage_tensors(qmodel: QuantizedModel, plan: Plan) -> list[StageTensors]:
    """Input / output sizes and exponents of every stage of ``plan``, in stage order."""
    graph = qmodel.graph
    out = []
    for stage in plan.stages:
        src = graph.boundary_tensor(stage.first_layer - 2)
        dst = graph.boundary_tensor(stage.last_layer - 1)
        out.append(
            StageTensors(
                in_values=int(np.prod(graph.shapes[src])),
                in_exp=int(qmodel.exponents[src]),
                out_values=int(np.prod(graph.shapes[dst])),
                out_exp=int(qmodel.exponents[dst]),
            )
        )
    return out


def to_nchw(qmodel: QuantizedModel, data: bytes) -> npt.NDArray[np.int16]:
    """The model input from console bytes (int16 little-endian, NHWC)."""
    shape = qmodel.graph.shapes[qmodel.graph.boundary_tensor(-1)]
    values = np.frombuffer(data, dtype="<i2").astype(np.int16)
    board = values.reshape(nhwc(shape))
    if len(shape) >= 3:
        board = np.moveaxis(board, -1, 1)
    return np.ascontiguousarray(board)


def to_board_bytes(values: npt.NDArray[np.int16]) -> bytes:
    """Console bytes (int16 little-endian, NHWC) of an ONNX-order (NCHW) tensor."""
    if values.ndim >= 3:
        values = np.moveaxis(values, 1, -1)
    return np.ascontiguousarray(values).astype("<i2").tobytes()


@dataclass(frozen=True, slots=True)
class Output:
    """The pipeline's output for one input: console bytes and their exponent."""

    data: bytes
    exponent: int


def pipeline_output(qmodel: QuantizedModel, data: bytes, exponent: int) -> Output:
    """Run the whole pipeline on an injected input, as the boards do.

    The input is requantized to the model's input exponent first when the host sent another one
    (stage 1's ``requantized`` counter), then every layer runs with ESP-DL's integer arithmetic.

    Args:
        qmodel: the quantized model.
        data: the injected bytes (int16 little-endian, NHWC).
        exponent: the exponent the host announced with ``inject``.
    """
    graph = qmodel.graph
    src = graph.boundary_tensor(-1)
    x = to_nchw(qmodel, data)
    if exponent != qmodel.exponents[src]:
        x = requantize_exponent(x, exponent, int(qmodel.exponents[src]))
    y = run_int16(qmodel, x)
    out_exp = int(qmodel.exponents[graph.boundary_tensor(len(graph.layers) - 1)])
    return Output(to_board_bytes(y), out_exp)
