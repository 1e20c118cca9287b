"""Testbeds: where a pipeline runs. ``sim`` (calibrated models, the default) or ``hw`` (boards).

Bench cases use only :class:`Testbed`, so they never branch on the testbed.
"""

from __future__ import annotations

from tinysplit.testbed.base import PartialRunError, Testbed, TestbedKind, make_testbed

__all__ = ["PartialRunError", "Testbed", "TestbedKind", "make_testbed"]
