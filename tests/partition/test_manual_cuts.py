"""Plans for user-chosen cuts (``partition --cuts``)."""

from __future__ import annotations

import pytest

from tests.model.onnx_graphs import residual_block
from tinysplit.errors import ConfigError, PartitionError
from tinysplit.model import import_model, load_model
from tinysplit.partition import partition, plan_from_cuts

SMALL = "mobilenet_v1:alpha=0.25,input_size=32"


def test_manual_plan_equals_the_same_split_found_by_search() -> None:
    graph = load_model(SMALL)
    found = partition(graph, strategy="optimal", devices=3, objective="bytes")
    manual = plan_from_cuts(graph, [s.last_layer for s in found.stages[:-1]])
    assert manual.strategy == "manual"
    assert [s.to_dict() for s in manual.stages] == [s.to_dict() for s in found.stages]


@pytest.mark.parametrize(
    ("cuts", "message"),
    [
        ([10, 5], "must be increasing"),
        ([0], "in 1..59"),
        ([60], "in 1..59"),
        ([7, 7], "must be increasing"),
    ],
)
def test_bad_cut_lists(cuts: list[int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        plan_from_cuts(load_model(SMALL), cuts)


def test_cut_inside_a_residual_block_is_refused() -> None:
    graph = import_model(residual_block(), name="res")
    with pytest.raises(ConfigError, match=r"cannot be cut after layer 4 \(branch_relu\)"):
        plan_from_cuts(graph, [4])


def test_stage_that_does_not_fit_is_named() -> None:
    with pytest.raises(PartitionError, match=r"stage 1 \(layers 1-58\) does not fit"):
        plan_from_cuts(load_model("paper"), [58], profile="paper")
