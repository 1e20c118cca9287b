"""The host's int16 reference of a plan's model: the inputs a run injects and the outputs expected.

Boards run the slices ``tinysplit export`` wrote, calibrated with its defaults (16 images from
:func:`~tinysplit.model.quantize.sample_inputs`, seed 0), so the host quantizes the same way.
Inference *i* of a run gets image *i* of ``sample_inputs(graph, config.inferences,
seed=config.seed)``, quantized to int16 at the model's input exponent, sent in the boards' NHWC
order. Its expected output is :func:`~tinysplit.model.execute.run_int16` of the whole model (the
slices in sequence give exactly the same integers), in NHWC order too.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from tinysplit.errors import ConfigError
from tinysplit.model.export import CALIBRATION_SAMPLES, CALIBRATION_SEED

if TYPE_CHECKING:
    from tinysplit.model.graph import Graph
    from tinysplit.model.quantize import QuantizedModel
    from tinysplit.partition import Plan
    from tinysplit.partition.plan import Stage

#: ESP-DL's own int16 test tolerance: outputs may differ by one least significant bit.
TOLERANCE_LSB = 1

Int16Array = npt.NDArray[np.int16]


@dataclass(slots=True)
class Reference:
    """The quantized model of a plan and its expected outputs.

    Attributes:
        graph: the float model.
        qmodel: its int16 quantization (the export's calibration).
        input_exponent: exponent of the model input (real = int16 x 2^exponent).
        output_exponent: exponent of the model output.
    """

    graph: Graph
    qmodel: QuantizedModel
    input_exponent: int
    output_exponent: int
    _outputs: dict[tuple[int, int, int], Int16Array] = field(default_factory=dict)

    @property
    def input_values(self) -> int:
        """int16 values of the model input."""
        return int(np.prod(self.graph.input_shape[1:]))

    def stage_values(self, stage: Stage) -> tuple[int, int]:
        """int16 values entering and leaving a plan's ``stage``."""
        graph = self.graph
        first = graph.shapes[graph.boundary_tensor(stage.first_layer - 2)]
        last = graph.shapes[graph.boundary_tensor(stage.last_layer - 1)]
        return int(np.prod(first[1:])), int(np.prod(last[1:]))

    def inputs(self, inferences: int, seed: int) -> Int16Array:
        """The int16 inputs of a run, shape (inferences, values), NHWC order."""
        from tinysplit.model.quantize import quantize, sample_inputs

        images = sample_inputs(self.graph, inferences, seed=seed)
        return _flat_nhwc(quantize(images, self.input_exponent))

    def output(self, values: Int16Array) -> Int16Array:
        """The expected int16 output (NHWC, flat) of one NHWC input."""
        from tinysplit.model.execute import run_int16

        key = (len(values), zlib.crc32(values.astype("<i2").tobytes()), self.output_exponent)
        if key not in self._outputs:
            shape = self.graph.input_shape
            nchw = np.moveaxis(values.reshape(1, *shape[2:], shape[1]), -1, 1)
            if len(shape) < 3:
                nchw = values.reshape(shape)
            out = run_int16(self.qmodel, np.ascontiguousarray(nchw))
            self._outputs[key] = _flat_nhwc(out)[0]
        return self._outputs[key]


def _flat_nhwc(array: npt.NDArray[np.int16]) -> Int16Array:
    if array.ndim >= 3:
        array = np.moveaxis(array, 1, -1)
    return np.ascontiguousarray(array).reshape(len(array), -1)


def compare(board: Int16Array, expected: Int16Array) -> int:
    """Values of ``board`` more than :data:`TOLERANCE_LSB` away from ``expected`` (all of them
    when the sizes differ)."""
    if board.shape != expected.shape:
        return int(max(board.size, expected.size))
    diff = np.abs(board.astype(np.int32) - expected.astype(np.int32))
    return int(np.count_nonzero(diff > TOLERANCE_LSB))


def reference_for(plan: Plan) -> Reference:
    """The reference of ``plan``'s model (cached per model).

    Raises:
        ConfigError: the model cannot be loaded, or it is not the one the plan was made for.
    """
    reference = _reference(plan.model)
    if reference.graph.source_hash != plan.model_hash:
        raise ConfigError(
            f"plan was made for a different {plan.model!r} (model hash mismatch): re-run partition"
        )
    return reference


@lru_cache(maxsize=4)
def _reference(model: str) -> Reference:
    from tinysplit.model import load_model
    from tinysplit.model.quantize import calibrate, sample_inputs

    graph = load_model(model)
    qmodel = calibrate(graph, sample_inputs(graph, CALIBRATION_SAMPLES, seed=CALIBRATION_SEED))
    return Reference(
        graph=graph,
        qmodel=qmodel,
        input_exponent=int(qmodel.exponents[graph.input_name]),
        output_exponent=int(qmodel.exponents[graph.output_name]),
    )
