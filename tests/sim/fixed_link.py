"""A link model with fixed timing, for checking the pipeline's bookkeeping exactly."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from tinysplit.links import LinkConditions, LinkModel, TransferResult, Transport
from tinysplit.model import load_model
from tinysplit.partition import Plan, plan_from_cuts


class FixedLink(LinkModel):
    """Every transfer takes ``duration_s``; ``lose`` makes every transfer fail."""

    transport: ClassVar[Transport] = Transport.BLE

    def __init__(self, duration_s: float, *, lose: bool = False) -> None:
        self.duration_s = duration_s
        self.lose = lose

    def transfer(
        self, payload_bytes: int, conditions: LinkConditions, rng: np.random.Generator
    ) -> TransferResult:
        frames = -(-payload_bytes // 504)
        return TransferResult(
            duration_s=self.duration_s,
            delivered=not self.lose,
            app_frames=frames,
            drops=1 if self.lose else 0,
            sender_tx_s=self.duration_s / 2,
            receiver_rx_s=self.duration_s / 2,
        )

    def setup_s(self, conditions: LinkConditions) -> float:
        return 0.25

    @property
    def frame_bytes(self) -> int:
        return 512


def three_stage_plan(compute_s: tuple[float, float, float] = (1.0, 2.0, 1.0)) -> Plan:
    """A real 3-board plan of a small MobileNet with the given compute times."""
    plan = plan_from_cuts(load_model("mobilenet_v1:alpha=0.25,input_size=32"), [20, 40])
    stages = tuple(
        dataclasses.replace(stage, estimated_compute_s=t)
        for stage, t in zip(plan.stages, compute_s, strict=True)
    )
    return dataclasses.replace(plan, stages=stages)
