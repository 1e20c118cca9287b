"""Small real archives for the report tests: simulated runs named like the benchmark's cases.

:func:`write_bench_like` records, on a 3-board split of a small MobileNet, what ``bench/`` records
for BLE (links at fixed RSSI) and ESP-NOW (boards at positions): ``latency`` (3 runs of one
inference), ``stream`` (one run of 6), ``window_sweep`` (windows 1, 6 and 12 in paper mode, 2 runs
each; BLE loses every tensor at window 12) and, for BLE, ``partition`` / ``partition_stream`` of
two splits. It keeps every ``SimResult`` so tests can check the figures' data against the
simulator's own records rather than against the archive they were read from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from tinysplit.links import Mode
from tinysplit.model import load_model
from tinysplit.partition import Plan, plan_from_cuts
from tinysplit.results import ArchiveWriter
from tinysplit.sim import PipelineConfig, SimResult, simulate

MODEL = "mobilenet_v1:alpha=0.25,input_size=32"
#: The session split (4,096 B then 1,024 B sent) and a second one for the partition cases.
CUTS = {"paper": (10, 40), "optimal": (20, 40)}
RSSI_DBM = (-60.0, -70.0)
POSITIONS_M = ((0.0, 0.0), (0.5, 0.0), (1.5, 0.0))
WINDOWS = (1, 6, 12)
#: Four boards' pairwise RSSIs (dBm): the first three run the session split, the fourth is spare.
RSSI_MATRIX_DBM = (
    (math.nan, -60.0, -75.0, -80.0),
    (-60.0, math.nan, -65.0, -70.0),
    (-75.0, -65.0, math.nan, -62.0),
    (-80.0, -70.0, -62.0, math.nan),
)


@dataclass(frozen=True)
class Beyond:
    """One ``beyond[technique,ble,spare<n>]`` variant: a split, where it runs, its options."""

    technique: str
    spare: int
    cuts: tuple[int, ...]
    placement: tuple[tuple[int, ...], ...]
    link_profile: str | None = None
    adaptive_window: bool = False

    @property
    def params(self) -> str:
        """The case parameters, as the bench names them."""
        return f"{self.technique},ble,spare{self.spare}"


#: Techniques as ``bench/test_beyond_paper.py`` names them; one stage replicated from
#: ``replication`` on, and ``joint`` with the spare board as a third replica of stage 1.
BEYOND = (
    Beyond(technique="paper", spare=0, cuts=CUTS["paper"], placement=((0,), (1,), (2,))),
    Beyond(technique="link", spare=0, cuts=CUTS["paper"], placement=((0,), (1,), (2,)),
           link_profile="nimble-tuned"),
    Beyond(technique="replication", spare=0, cuts=(20,), placement=((0, 1), (2,))),
    Beyond(technique="joint", spare=0, cuts=(20,), placement=((0, 1), (2,)),
           adaptive_window=True),
    Beyond(technique="joint", spare=1, cuts=(20,), placement=((0, 1, 3), (2,)),
           adaptive_window=True),
)  # fmt: skip


@dataclass
class Recorded:
    """An archive and the simulator's records behind it, per (case, run)."""

    path: Path
    results: dict[tuple[str, int], SimResult] = field(default_factory=dict)
    plans: dict[tuple[str, str], Plan] = field(default_factory=dict)

    def runs_of(self, case: str) -> list[SimResult]:
        """The results of every run of ``case``, in run order."""
        return [r for (c, _), r in sorted(self.results.items()) if c == case]


def layout(transport: str) -> dict[str, object]:
    """BLE links get fixed RSSIs, ESP-NOW boards positions (so Fig. 8 has distances)."""
    return {"rssi_dbm": RSSI_DBM} if transport == "ble" else {"positions_m": POSITIONS_M}


def write_bench_like(results_dir: Path, *, families: tuple[str, ...] | None = None) -> Recorded:
    """Write one archive of bench-like runs (only ``families`` when given)."""
    graph = load_model(MODEL)
    writer = ArchiveWriter(results_dir, testbed="sim", transport="all", manifest={"test": True})
    recorded = Recorded(path=Path())

    def add(case: str, run: int, plan: Plan, config: PipelineConfig,
            extra: dict[str, object] | None = None) -> None:  # fmt: skip
        result = simulate(plan, config)
        writer.add(case, result, run=run, extra=extra)
        recorded.results[(case, run)] = result

    def wanted(family: str) -> bool:
        return families is None or family in families

    for transport in ("ble", "espnow"):
        for name, cuts in CUTS.items():
            recorded.plans[(transport, name)] = plan_from_cuts(graph, cuts, transport=transport)
        plan = recorded.plans[(transport, "paper")]
        where = layout(transport)
        if wanted("latency"):
            for k in range(3):
                config = PipelineConfig(transport=transport, inferences=1, seed=k, **where)
                add(f"latency[{transport}]", k, plan, config)
        if wanted("stream"):
            config = PipelineConfig(transport=transport, inferences=6, **where)
            add(f"stream[{transport}]", 0, plan, config)
        if wanted("window_sweep"):
            for k, (window, seed) in enumerate((w, s) for w in WINDOWS for s in (0, 1)):
                config = PipelineConfig(transport=transport, inferences=1, seed=seed,
                                        window=window, mode=Mode.PAPER, **where)  # fmt: skip
                add(f"window_sweep[{transport}]", k, plan, config)
    if wanted("partition"):
        for name in CUTS:
            plan = recorded.plans[("ble", name)]
            for k in range(2):
                config = PipelineConfig(transport="ble", inferences=1, seed=k, rssi_dbm=RSSI_DBM)
                add(f"partition[{name},ble]", k, plan, config)
            config = PipelineConfig(transport="ble", inferences=6, rssi_dbm=RSSI_DBM)
            add(f"partition_stream[{name},ble]", 0, plan, config)
    if wanted("beyond"):
        for variant in BEYOND:
            plan = plan_from_cuts(graph, variant.cuts, transport="ble")
            recorded.plans[("ble", f"beyond[{variant.params}]")] = plan
            boards = 3 + variant.spare
            where = {
                "placement": variant.placement,
                "rssi_matrix_dbm": tuple(r[:boards] for r in RSSI_MATRIX_DBM[:boards]),
                "link_profile": variant.link_profile,
                "adaptive_window": variant.adaptive_window,
            }
            tags = {"technique": variant.technique, "spare": variant.spare}
            for k in range(2):
                config = PipelineConfig(transport="ble", inferences=1, seed=k, **where)
                add(f"beyond[{variant.params}]", k, plan, config, {**tags, "round": k})
            config = PipelineConfig(transport="ble", inferences=6, **where)
            add(f"beyond_stream[{variant.params}]", 0, plan, config, tags)
    recorded.path = writer.close(complete=True)
    return recorded
