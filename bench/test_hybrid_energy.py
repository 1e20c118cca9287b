"""Hybrid transport (BLE wake-up + Wi-Fi / ESP-NOW data) vs single transports: energy per inference
against the inference rate, on the paper's 5-board plan.

Five configurations: ``ble``, ``wifi``, ``espnow`` (boards never sleep, as in the paper's
firmware and tinysplit's single-transport model), and ``hybrid-wifi``, ``hybrid-espnow`` (boards
light-sleep on BLE and wake per transfer, :mod:`tinysplit.links.hybrid`, scored with the hybrid
:class:`~tinysplit.sim.energy.PowerModel`). Inputs arrive every ``interval_s`` (1 s to 600 s;
below the pipeline's period the source waits for board 1, so the pipeline runs back to back).

Energy per inference is the steady-state marginal energy (``marginal_energy_per_inference_j``:
a 6-inference run minus a 3-inference run), which cancels the pipeline's fill and drain. Each
configuration's line ``E(T) = floor_w x T + work_j`` (T >= its period) gives the crossover
interval against every other: ``(work_a - work_b) / (floor_b - floor_a)``; below a pipeline's
period the line does not apply (the pipeline saturates). Rounds: one per interval, measuring the
device seconds per inference (the input interval, or the period when saturated). ``extra_info``
holds the whole table, the floors, the work and the crossovers; ``docs/hybrid.md`` quotes them.
Asserted: hybrid-wifi spends less per inference than every single transport at every interval.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from tinysplit.links import make_link
from tinysplit.links.hybrid import hybrid_link
from tinysplit.model import load_model
from tinysplit.partition import Plan, partition
from tinysplit.pytest_plugin import Bench
from tinysplit.sim.energy import PowerModel, marginal_energy_per_inference_j
from tinysplit.sim.pipeline import PipelineConfig, SimResult, simulate

KINDS = ("ble", "wifi", "espnow", "hybrid-wifi", "hybrid-espnow")
INTERVALS_S = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
#: The paper's link RSSIs are not needed to compare radios; one moderate value for every link.
RSSI_DBM = (-60.0, -60.0, -60.0, -60.0)
SHORT, LONG = 3, 6


def paper_plan() -> Plan:
    """The paper's 5-board plan."""
    return partition(load_model("paper"), strategy="paper", devices=5, profile="paper")


def _runs(plan: Plan, kind: str, interval_s: float | None, seed: int) -> tuple[SimResult, ...]:
    transport = kind.removeprefix("hybrid-")
    wake = "ble" if kind.startswith("hybrid-") else None
    link = hybrid_link(make_link(transport), wake) if wake else None
    return tuple(
        simulate(
            plan,
            PipelineConfig(
                transport=transport, inferences=n, interval_s=interval_s, rssi_dbm=RSSI_DBM,
                seed=seed,
            ),
            link=link,
        )
        for n in (SHORT, LONG)
    )  # fmt: skip


def power_model(kind: str) -> PowerModel:
    """The power model a configuration is scored with."""
    transport = kind.removeprefix("hybrid-")
    wake = "ble" if kind.startswith("hybrid-") else None
    return PowerModel.for_transport(transport, wake=wake)


def sweep(plan: Plan, kind: str, seed: int = 0) -> dict[str, Any]:
    """Energy per inference at every interval, the period, the idle floor and the work."""
    power = power_model(kind)
    energy = {}
    for interval in INTERVALS_S:
        short, long = _runs(plan, kind, interval, seed)
        energy[interval] = marginal_energy_per_inference_j(short, long, power)
    short, long = _runs(plan, kind, None, seed)
    period = (long.duration_s - short.duration_s) / (LONG - SHORT)
    floor_w = len(plan.stages) * power.idle_ma * power.supply_v / 1e3
    work = energy[INTERVALS_S[-1]] - floor_w * INTERVALS_S[-1]
    return {"energy_j": energy, "period_s": period, "floor_w": floor_w, "work_j": work}


def crossover_s(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Interval below which ``a`` (lower floor) spends more per inference than ``b``, s."""
    if b["floor_w"] <= a["floor_w"]:
        return math.inf
    return max(0.0, float((a["work_j"] - b["work_j"]) / (b["floor_w"] - a["floor_w"])))


@pytest.fixture(scope="module")
def table() -> dict[str, dict[str, Any]]:
    plan = paper_plan()
    return {kind: sweep(plan, kind) for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS)
def test_hybrid_energy(
    benchmark: BenchmarkFixture, bench: Bench, table: dict[str, dict[str, Any]], kind: str
) -> None:
    row = table[kind]
    seconds = [max(t, row["period_s"]) for t in INTERVALS_S]
    bench.timed(benchmark, len(seconds), lambda k: seconds[k])
    benchmark.extra_info.update(
        kind=kind,
        energy_per_inference_j={f"{t:g}": e for t, e in row["energy_j"].items()},
        period_s=row["period_s"],
        floor_w=row["floor_w"],
        work_j=row["work_j"],
    )
    if kind.startswith("hybrid-"):
        benchmark.extra_info["crossover_s"] = {
            single: crossover_s(row, table[single]) for single in ("ble", "wifi", "espnow")
        }
    assert all(e > 0 for e in row["energy_j"].values())
    if kind == "hybrid-wifi":
        for single in ("ble", "wifi", "espnow"):
            for t in INTERVALS_S:
                assert row["energy_j"][t] < table[single]["energy_j"][t], (single, t)
