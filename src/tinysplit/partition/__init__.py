"""Partitioning: device profiles, the stage memory and compute models, partitioners and plans.

Typical use::

    from tinysplit.model import load_model
    from tinysplit.partition import partition

    plan = partition(load_model("paper"), strategy="optimal", profile="paper", devices=5)
    plan.save("plan.json")
"""

from __future__ import annotations

from tinysplit.partition.cost import ComputeModel, layer_class, layer_compute_s, load_compute_model
from tinysplit.partition.memory import MemoryModel, StageMemory
from tinysplit.partition.partitioners import partition, plan_from_cuts
from tinysplit.partition.period import PeriodBreakdown, period_breakdown, period_s
from tinysplit.partition.placement import Placement, identity_placement, place
from tinysplit.partition.plan import (
    OBJECTIVES,
    SCHEMA_VERSION,
    STRATEGIES,
    OutgoingTensor,
    Plan,
    Stage,
)
from tinysplit.partition.profiles import (
    DEFAULT_PROFILE,
    PROFILE_NAMES,
    TRANSPORTS,
    DeviceProfile,
    TransportSpec,
    load_profile,
    load_transport,
    load_transports,
)
from tinysplit.partition.rssi import RssiMatrix, load_rssi_matrix, rssi_from_positions

__all__ = [
    "DEFAULT_PROFILE",
    "OBJECTIVES",
    "PROFILE_NAMES",
    "SCHEMA_VERSION",
    "STRATEGIES",
    "TRANSPORTS",
    "ComputeModel",
    "DeviceProfile",
    "MemoryModel",
    "OutgoingTensor",
    "PeriodBreakdown",
    "Placement",
    "Plan",
    "RssiMatrix",
    "Stage",
    "StageMemory",
    "TransportSpec",
    "identity_placement",
    "layer_class",
    "layer_compute_s",
    "load_compute_model",
    "load_profile",
    "load_rssi_matrix",
    "load_transport",
    "load_transports",
    "partition",
    "period_breakdown",
    "period_s",
    "place",
    "plan_from_cuts",
    "rssi_from_positions",
]
