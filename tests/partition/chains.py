"""Synthetic chain graphs for partition tests: Conv/Relu layers with chosen shapes.

Parameters are zero-stride numpy views, so a layer can report millions of weights without
allocating them; the memory and compute models only read sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tinysplit.model.graph import Graph, Layer


@dataclass(frozen=True)
class Step:
    """One chain layer: ``op`` is ``"conv"`` or ``"relu"``; conv sets channels, size and kernel."""

    op: str
    channels: int = 0
    size: int = 0
    kernel: int = 1
    depthwise: bool = False


def _zeros(*shape: int) -> np.ndarray:
    return np.broadcast_to(np.float32(0.0), shape)


def chain_graph(
    steps: Sequence[Step], input_chw: tuple[int, int, int], name: str = "chain"
) -> Graph:
    """A chain graph ``input -> steps[0] -> steps[1] -> ...`` with NCHW shapes (batch 1)."""
    c, h, w = input_chw
    prev = "input"
    layers = []
    for i, step in enumerate(steps):
        out = f"t{i}"
        if step.op == "conv":
            group = c if step.depthwise else 1
            cout = c if step.depthwise else step.channels
            k = step.kernel
            wname, bname = f"l{i}/w", f"l{i}/b"
            params = {wname: _zeros(cout, c // group, k, k), bname: _zeros(cout)}
            shape = (1, cout, step.size, step.size)
            macs = cout * step.size * step.size * (c // group) * k * k
            layers.append(
                Layer(
                    index=i,
                    name=f"conv{i}",
                    op="Conv",
                    node_inputs=(prev, wname, bname),
                    output=out,
                    shape=shape,
                    attrs={"group": group},
                    params=params,
                    macs=macs,
                )
            )
            c, h, w = cout, step.size, step.size
        else:
            layers.append(
                Layer(
                    index=i,
                    name=f"relu{i}",
                    op="Relu",
                    node_inputs=(prev,),
                    output=out,
                    shape=(1, c, h, w),
                )
            )
        prev = out
    return Graph(
        name=name,
        input_name="input",
        input_shape=(1, *input_chw),
        layers=tuple(layers),
        output_name=prev,
        source_hash="0" * 64,
    )


def long_chain(layers: int, channels: int = 64, size: int = 8) -> Graph:
    """``layers`` alternating 3x3 conv / relu layers; channel counts vary to vary tensor sizes."""
    steps = []
    for i in range(layers):
        if i % 2:
            steps.append(Step("relu"))
        else:
            steps.append(Step("conv", channels=channels * (1 + (i // 2) % 3), size=size, kernel=3))
    return chain_graph(steps, (channels, size, size), name=f"chain{layers}")
