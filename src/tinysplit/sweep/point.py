"""One sweep point: its plan and pipeline configuration (built up front), and the run itself.

The sweep's process builds every point's plan, placement and :class:`PipelineConfig` before any
point runs, so bad options stop the sweep before work starts and every worker only simulates.
A task is plain data (picklable by any executor, JSON-able); :func:`run_point` is the worker
function: ``simulate(plan, config)`` with the point's own seed, so its record does not depend on
where, when or next to what it runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from tinysplit.errors import ConfigError
from tinysplit.sweep.grid import GridSpec, SweepPoint
from tinysplit.sweep.records import config_from_dict, config_to_dict, result_to_dict

if TYPE_CHECKING:
    from tinysplit.model.graph import Graph
    from tinysplit.partition import Plan
    from tinysplit.partition.rssi import RssiMatrix
    from tinysplit.sim.pipeline import PipelineConfig


class PointTask(TypedDict):
    """What a worker needs to run one point (plain data)."""

    name: str
    plan: dict[str, Any]
    config: dict[str, Any]


class TaskBuilder:
    """Builds the tasks of a grid's points, sharing plans, the model and the RSSI matrix.

    Args:
        spec: the grid.

    Plans are cut once per (transport, link profile, strategy); send times are priced at the
    link profile's sourced goodput, as ``tinysplit simulate`` and the benchmark plugin do.
    """

    def __init__(self, spec: GridSpec) -> None:
        self.spec = spec
        self._graph: Graph | None = None
        self._matrices: dict[str, RssiMatrix] = {}
        self._plans: dict[tuple[str, str, str], Plan] = {}

    def plan(self, point: SweepPoint) -> Plan:
        """The point's plan (cached).

        Raises:
            ConfigError, ModelError, PartitionError: the model or the split does not work.
        """
        from tinysplit.links.calibration import sourced_goodput_bps
        from tinysplit.model import load_model
        from tinysplit.partition import partition

        key = (point.transport, point.profile, point.strategy)
        if key not in self._plans:
            shared = self.spec.shared
            if self._graph is None:
                self._graph = load_model(shared.model)
            self._plans[key] = partition(
                self._graph,
                strategy=point.strategy,
                devices=shared.devices,
                profile=shared.device_profile,
                transport=point.transport,
                link_rate_bps=sourced_goodput_bps(point.transport, point.profile),
            )
        return self._plans[key]

    def task(self, point: SweepPoint) -> PointTask:
        """The point's task.

        Raises:
            TinysplitError: the plan, layout, RSSI matrix or placement does not work.
        """
        plan = self.plan(point)
        config = self.config(point, plan)
        return {"name": point.name, "plan": plan.to_dict(), "config": config_to_dict(config)}

    def config(self, point: SweepPoint, plan: Plan) -> PipelineConfig:
        """The point's pipeline configuration: its axes, the shared options and its links.

        Without an RSSI file the links come from the layout (``--positions``; by default the
        paper's link RSSIs for 5 boards, boards 0.5 m apart otherwise) with stage k on board k.
        With one, ``chain`` runs stage k on board k of the matrix and ``rssi`` places the stages
        by signal strength (:func:`tinysplit.partition.placement.place`).
        """
        from tinysplit.sim.layout import load_layout
        from tinysplit.sim.pipeline import PipelineConfig

        shared = self.spec.shared
        base: dict[str, Any] = {
            "transport": point.transport,
            "link_profile": point.profile,
            "mode": shared.mode,
            "window": point.window,
            "inferences": shared.inferences,
            "seed": point.seed,
        }
        stages = len(plan.stages)
        if shared.rssi is None:
            layout = load_layout(shared.layout(stages), stages)
            return PipelineConfig(**base, rssi_dbm=layout.rssi_dbm, positions_m=layout.positions_m)
        matrix = self.matrix(point.transport)
        if matrix.boards < stages:
            raise ConfigError(
                f"--rssi {shared.rssi!r} has {matrix.boards} boards, the plan {stages} stages"
            )
        boards = self.boards(point, plan, matrix)
        return PipelineConfig(**base, placement=boards, rssi_matrix_dbm=matrix.dbm)

    def boards(
        self, point: SweepPoint, plan: Plan, matrix: RssiMatrix
    ) -> tuple[tuple[int, ...], ...]:
        """Physical boards (0-based) of each stage under the point's placement."""
        if point.placement == "chain":
            return tuple((k,) for k in range(len(plan.stages)))
        from tinysplit.partition.placement import place

        placed = place(
            plan,
            matrix,
            transport=point.transport,
            profile=point.profile,
            window=point.window,
            mode=self.spec.shared.mode,
        )
        return tuple(tuple(b) for b in placed.boards)

    def matrix(self, transport: str) -> RssiMatrix:
        """The shared RSSI matrix as ``transport`` sees it (read once per transport).

        A matrix given by board positions depends on the transport's TX power; its shadowing
        seed is the file's, the same for every point, so placements are compared on one room.

        Raises:
            ConfigError: the file is missing or invalid.
        """
        if transport not in self._matrices:
            from tinysplit.partition.rssi import load_rssi_matrix

            assert self.spec.shared.rssi is not None
            self._matrices[transport] = load_rssi_matrix(self.spec.shared.rssi, transport=transport)
        return self._matrices[transport]


def run_point(task: PointTask) -> dict[str, Any]:
    """Simulate one point and return its run as plain JSON (the worker function).

    Raises:
        TinysplitError: the simulator rejects the configuration.
    """
    from tinysplit.partition import Plan
    from tinysplit.sim.pipeline import simulate

    plan = Plan.from_dict(task["plan"])
    return result_to_dict(simulate(plan, config_from_dict(task["config"])))
