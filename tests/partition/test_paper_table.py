"""The paper's Table I split under our memory model: the numbers docs/paper-model.md quotes."""

from __future__ import annotations

import pytest

from tinysplit.partition.paper import TABLE_I_CUTS, TABLE_I_MEMORY_MB, table_i_plan


def test_table_i_split_is_valid_and_matches_the_documented_numbers() -> None:
    plan = table_i_plan()
    assert plan.strategy == "manual"
    assert [(s.first_layer, s.last_layer) for s in plan.stages] == [
        (1, 23), (24, 37), (38, 49), (50, 59), (60, 67)
    ]  # fmt: skip
    ours_mb = [round(s.total_memory_bytes / 1e6, 2) for s in plan.stages]
    assert ours_mb == [1.09, 2.16, 2.23, 3.80, 2.49]  # docs/paper-model.md, table "Table I"
    assert [s.outgoing.size_bytes for s in plan.stages[:-1]] == [401_408, 200_704, 200_704, 2_048]
    assert len(TABLE_I_MEMORY_MB) == len(TABLE_I_CUTS) + 1


@pytest.mark.parametrize(
    ("size", "device1_mb"), [(96, 0.76), (128, 0.82), (160, 0.89), (192, 0.98), (224, 1.09)]
)
def test_device_1_memory_grows_with_the_input_size(size: int, device1_mb: float) -> None:
    # Device 1 is the only activation-dominated device, so it alone tells the input size.
    assert round(table_i_plan(size).stages[0].total_memory_bytes / 1e6, 2) == device1_mb
