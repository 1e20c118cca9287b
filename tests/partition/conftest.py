"""Shared fixtures: the paper's 67-layer model (built once per session)."""

from __future__ import annotations

import pytest

from tinysplit.model import Graph, load_model


@pytest.fixture(scope="session")
def paper_graph() -> Graph:
    """The reconstruction of the paper's model (``load_model("paper")``)."""
    return load_model("paper")
