"""Import an ONNX model into the :class:`~tinysplit.model.graph.Graph` IR.

The importer folds BatchNormalization into the preceding Conv (as ESP-DL's converters do), drops
inference no-ops (Dropout, Identity), turns Constant nodes into parameters, fixes the batch
dimension to 1, and takes static shapes from ONNX shape inference.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import numpy_helper

from tinysplit.errors import ModelError
from tinysplit.model.graph import Graph, Layer, hash_bytes

#: Ops the IR, the executors and the memory model understand.
SUPPORTED_OPS = frozenset(
    {
        "Conv",
        "Relu",
        "Clip",
        "Add",
        "Mul",
        "Concat",
        "MaxPool",
        "AveragePool",
        "GlobalAveragePool",
        "Pad",
        "Reshape",
        "Flatten",
        "Transpose",
        "Gemm",
        "MatMul",
        "Softmax",
    }
)
#: Ops removed at import: they do nothing at inference time.
PASSTHROUGH_OPS = frozenset({"Dropout", "Identity"})


def load_onnx(path: str | Path, name: str | None = None) -> Graph:
    """Read an ``.onnx`` file and import it.

    Raises:
        ModelError: the file is missing, not a valid ONNX model, or uses an unsupported op.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model file {str(path)!r}: {exc.strerror}") from exc
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # onnx raises DecodeError and others from protobuf
        raise ModelError(f"{str(path)!r} is not a valid ONNX model ({exc})") from exc
    return import_model(model, name=name or path.stem, source=data)


def import_model(model: onnx.ModelProto, *, name: str, source: bytes | None = None) -> Graph:
    """Import an in-memory ONNX model.

    Args:
        model: the ONNX model (not modified).
        name: name for the graph.
        source: the serialized bytes the model came from (hashed to identify it); serialized
            from ``model`` when omitted.
    """
    if source is None:
        source = model.SerializeToString()
    graph = model.graph
    params: dict[str, npt.NDArray[Any]] = {
        init.name: numpy_helper.to_array(init) for init in graph.initializer
    }
    inputs = [i for i in graph.input if i.name not in params]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ModelError(
            f"model {name!r} must have exactly one input and one output "
            f"(has {len(inputs)} and {len(graph.output)})"
        )
    input_name, output_name = inputs[0].name, graph.output[0].name
    input_shape = _static_input_shape(inputs[0], name)
    shapes = _infer_shapes(model, input_name, input_shape, name)

    nodes = list(graph.node)
    aliases: dict[str, str] = {}  # removed tensor -> the tensor it stands for
    consumers: dict[str, int] = {}
    for node in nodes:
        for t in node.input:
            consumers[t] = consumers.get(t, 0) + 1

    folded_bn: set[int] = set()
    layers: list[Layer] = []
    for idx, node in enumerate(nodes):
        if idx in folded_bn:
            continue
        node_name = node.name or f"{node.op_type}_{idx}"
        ins = tuple(aliases.get(t, t) for t in node.input)
        if node.op_type == "Constant":
            params[node.output[0]] = _constant_value(node, node_name)
            continue
        if node.op_type in PASSTHROUGH_OPS:
            aliases[node.output[0]] = ins[0]
            continue
        if node.op_type == "BatchNormalization":
            raise ModelError(
                f"BatchNormalization node {node_name!r} does not directly follow a Conv whose "
                "output it alone reads; only BatchNormalization folded into Conv is supported"
            )
        if node.op_type not in SUPPORTED_OPS:
            raise ModelError(
                f"unsupported op {node.op_type!r} in node {node_name!r} "
                f"(supported: {', '.join(sorted(SUPPORTED_OPS))})"
            )
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
        out = node.output[0]
        layer_params = {t: params[t] for t in ins if t in params}
        if node.op_type == "Conv":
            bn = _next_batchnorm(nodes, idx, out, consumers)
            if bn is not None:
                folded_bn.add(bn)
                ins, layer_params = _fold_batchnorm(ins, layer_params, nodes[bn], params)
                out = nodes[bn].output[0]
        if out not in shapes:
            raise ModelError(f"cannot infer a static shape for {out!r} (node {node_name!r})")
        shape = shapes[out]
        layers.append(
            Layer(
                index=len(layers),
                name=node_name,
                op=node.op_type,
                node_inputs=ins,
                output=out,
                shape=shape,
                attrs=attrs,
                params=layer_params,
                macs=_macs(node.op_type, ins, layer_params, shape, attrs, shapes),
            )
        )
    output_name = aliases.get(output_name, output_name)
    _check_dataflow(layers, input_name, name)
    return Graph(
        name=name,
        input_name=input_name,
        input_shape=input_shape,
        layers=tuple(layers),
        output_name=output_name,
        source_hash=hash_bytes(source),
    )


def _static_input_shape(value_info: onnx.ValueInfoProto, name: str) -> tuple[int, ...]:
    dims = value_info.type.tensor_type.shape.dim
    shape = []
    for i, d in enumerate(dims):
        if d.HasField("dim_value") and d.dim_value > 0:
            shape.append(d.dim_value)
        elif i == 0:
            shape.append(1)  # symbolic batch dimension: the boards run one image at a time
        else:
            raise ModelError(
                f"model {name!r}: input {value_info.name!r} has a symbolic dimension {i} "
                "(export the model with a fixed input size)"
            )
    if not shape or shape[0] != 1:
        raise ModelError(f"model {name!r}: input batch size must be 1, got shape {shape}")
    return tuple(shape)


def _infer_shapes(
    model: onnx.ModelProto, input_name: str, input_shape: tuple[int, ...], name: str
) -> dict[str, tuple[int, ...]]:
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    del fixed.graph.value_info[:]
    for value in fixed.graph.input:
        if value.name == input_name:
            for dim, size in zip(value.type.tensor_type.shape.dim, input_shape, strict=True):
                dim.Clear()
                dim.dim_value = size
    try:
        inferred = onnx.shape_inference.infer_shapes(fixed, strict_mode=True, data_prop=True)
    except Exception as exc:
        raise ModelError(f"model {name!r}: ONNX shape inference failed ({exc})") from exc
    shapes: dict[str, tuple[int, ...]] = {}
    for value in (*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input):
        dims = value.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = tuple(d.dim_value for d in dims)
    return shapes


def _constant_value(node: onnx.NodeProto, node_name: str) -> npt.NDArray[Any]:
    for attr in node.attribute:
        if attr.name == "value":
            return numpy_helper.to_array(attr.t)
    raise ModelError(f"Constant node {node_name!r} has no tensor 'value' attribute")


def _next_batchnorm(
    nodes: list[onnx.NodeProto], idx: int, out: str, consumers: dict[str, int]
) -> int | None:
    """Index of a BatchNormalization that alone reads ``out`` right after node ``idx``."""
    if consumers.get(out, 0) != 1:
        return None
    for j in range(idx + 1, len(nodes)):
        if out in nodes[j].input:
            return (
                j if nodes[j].op_type == "BatchNormalization" and nodes[j].input[0] == out else None
            )
    return None


def _fold_batchnorm(
    ins: tuple[str, ...],
    layer_params: dict[str, npt.NDArray[Any]],
    bn: onnx.NodeProto,
    params: dict[str, npt.NDArray[Any]],
) -> tuple[tuple[str, ...], dict[str, npt.NDArray[Any]]]:
    """Fold ``y = gamma * (conv(x) - mean) / sqrt(var + eps) + beta`` into the conv's W and B."""
    try:
        gamma, beta, mean, var = (params[t].astype(np.float64) for t in bn.input[1:5])
    except KeyError as exc:
        raise ModelError(f"BatchNormalization {bn.name!r} has non-constant statistics") from exc
    eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
    scale = gamma / np.sqrt(var + eps)
    w = layer_params[ins[1]].astype(np.float64)
    b = layer_params[ins[2]].astype(np.float64) if len(ins) > 2 and ins[2] else np.zeros_like(mean)
    w_name, b_name = f"{ins[1]}/bn_folded", f"{bn.output[0]}/bias_bn_folded"
    folded: dict[str, npt.NDArray[Any]] = {}
    folded[w_name] = (w * scale.reshape(-1, *([1] * (w.ndim - 1)))).astype(np.float32)
    folded[b_name] = ((b - mean) * scale + beta).astype(np.float32)
    return (ins[0], w_name, b_name), folded


def _macs(
    op: str,
    ins: tuple[str, ...],
    layer_params: dict[str, npt.NDArray[Any]],
    out_shape: tuple[int, ...],
    attrs: dict[str, Any],
    shapes: dict[str, tuple[int, ...]],
) -> int:
    out_elems = int(np.prod(out_shape, dtype=np.int64))
    if op == "Conv":
        w_shape = layer_params[ins[1]].shape if ins[1] in layer_params else shapes[ins[1]]
        return out_elems * int(np.prod(w_shape[1:], dtype=np.int64))
    if op == "Gemm":
        a_shape = shapes.get(ins[0]) or layer_params[ins[0]].shape
        k = a_shape[0] if attrs.get("transA", 0) else a_shape[1]
        return out_elems * int(k)
    if op == "MatMul":
        a_shape = shapes.get(ins[0]) or layer_params[ins[0]].shape
        return out_elems * int(a_shape[-1])
    return 0


def _check_dataflow(layers: Iterable[Layer], input_name: str, name: str) -> None:
    known = {input_name}
    for layer in layers:
        for t in layer.inputs:
            if t not in known:
                raise ModelError(
                    f"model {name!r}: node {layer.name!r} reads {t!r} before it is produced "
                    "(nodes must be in topological order)"
                )
        known.add(layer.output)
