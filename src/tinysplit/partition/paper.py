"""The paper's published split (Table I) and how tinysplit's memory model sees it.

Source: Hollingsworth et al., "An Analysis of Network Overhead in Distributed TinyML", Table I
("Distribution of model layers across ESP32-S3 devices"). The comparison is in
``docs/paper-model.md``.
"""

from __future__ import annotations

from tinysplit.model.zoo import PAPER_INPUT_SIZE, load_model
from tinysplit.partition.partitioners import plan_from_cuts
from tinysplit.partition.plan import Plan

#: Last layer of devices 1-4 in Table I (devices hold layers 1-23, 24-37, 38-49, 50-59, 60-67).
TABLE_I_CUTS = (23, 37, 49, 59)
#: Memory per device in Table I, in the paper's "MB".
TABLE_I_MEMORY_MB = (1.13, 1.37, 1.69, 2.73, 2.42)


def table_i_plan(input_size: int = PAPER_INPUT_SIZE, transport: str = "ble") -> Plan:
    """The Table I split of the ``paper`` model under the ``paper`` device profile."""
    graph = load_model(f"paper:input_size={input_size}")
    return plan_from_cuts(graph, TABLE_I_CUTS, profile="paper", transport=transport)
