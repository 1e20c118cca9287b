"""Models: ONNX import into a graph IR, built-in MobileNet, int16 quantization and execution."""

from __future__ import annotations

from tinysplit.model.graph import Graph, Layer
from tinysplit.model.mobilenet import mobilenet_v1
from tinysplit.model.onnx_import import SUPPORTED_OPS, import_model, load_onnx
from tinysplit.model.zoo import BUILTIN_MODELS, build_onnx, load_model, paper_model

__all__ = [
    "BUILTIN_MODELS",
    "SUPPORTED_OPS",
    "Graph",
    "Layer",
    "build_onnx",
    "import_model",
    "load_model",
    "load_onnx",
    "mobilenet_v1",
    "paper_model",
]
