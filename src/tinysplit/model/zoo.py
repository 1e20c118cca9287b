"""Resolve a ``--model`` argument: a built-in name with options, or a path to an ``.onnx`` file.

Built-ins: ``mobilenet_v1`` (options ``alpha``, ``input_size``, ``classes``, ``seed``) and
``paper`` (the reconstruction of the paper's model, see ``docs/paper-model.md``). Options follow
the name after a colon: ``mobilenet_v1:alpha=0.25,input_size=96``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx

from tinysplit.errors import ConfigError, ModelError
from tinysplit.model.graph import Graph
from tinysplit.model.mobilenet import mobilenet_v1
from tinysplit.model.onnx_import import import_model, load_onnx

#: Input size of the ``paper`` preset: the size whose memory model best matches Table I
#: (fit and residuals in docs/paper-model.md).
PAPER_INPUT_SIZE = 224


def paper_model(*, input_size: int = PAPER_INPUT_SIZE, seed: int = 0) -> onnx.ModelProto:
    """The paper's model as closely as its text allows (67 layers, see docs/paper-model.md)."""
    return mobilenet_v1(
        alpha=1.0,
        input_size=input_size,
        classes=10,
        seed=seed,
        imagenet_top=True,
        explicit_pads=True,
    )


_BUILTINS: dict[str, tuple[Callable[..., onnx.ModelProto], dict[str, type]]] = {
    "mobilenet_v1": (
        mobilenet_v1,
        {"alpha": float, "input_size": int, "classes": int, "seed": int},
    ),
    "paper": (paper_model, {"input_size": int, "seed": int}),
}

BUILTIN_MODELS = tuple(_BUILTINS)


def parse_model_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``name:key=value,...`` into the built-in name and typed options."""
    name, _, opts = spec.partition(":")
    if name not in _BUILTINS:
        raise ConfigError(
            f"unknown model {name!r}: use a built-in ({', '.join(BUILTIN_MODELS)}) "
            "or a path to an .onnx file"
        )
    types = _BUILTINS[name][1]
    options: dict[str, Any] = {}
    for item in filter(None, opts.split(",")):
        key, sep, value = item.partition("=")
        if not sep or key not in types:
            raise ConfigError(
                f"bad option {item!r} for model {name!r} (options: {', '.join(types)})"
            )
        try:
            options[key] = types[key](value)
        except ValueError as exc:
            raise ConfigError(f"bad value for {name} option {key}: {value!r}") from exc
    return name, options


def build_onnx(spec: str) -> onnx.ModelProto:
    """Build the ONNX model of a built-in spec such as ``mobilenet_v1:alpha=0.5``."""
    name, options = parse_model_spec(spec)
    return _BUILTINS[name][0](**options)


def load_model(spec: str | Path) -> Graph:
    """Load a model from a built-in spec or an ``.onnx`` path into the graph IR.

    Raises:
        ConfigError: an unknown built-in name or a bad option.
        ModelError: a missing or invalid file, or an unsupported op.
    """
    text = str(spec)
    if text.endswith(".onnx") or Path(text).exists() or "/" in text:
        if not Path(text).is_file():
            raise ModelError(f"model file {text!r} does not exist")
        return load_onnx(text, name=text)
    model = build_onnx(text)
    return import_model(model, name=text)
