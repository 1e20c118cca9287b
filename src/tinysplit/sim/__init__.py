"""Simulated testbed: a discrete-event pipeline of boards joined by calibrated link models."""

from __future__ import annotations

from tinysplit.sim.pipeline import LinkEvent, PipelineConfig, SimResult, StageEvent, simulate

__all__ = ["LinkEvent", "PipelineConfig", "SimResult", "StageEvent", "simulate"]
