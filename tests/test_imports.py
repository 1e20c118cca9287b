"""Importing tinysplit stays cheap: no plotting, deep-learning or Bluetooth stacks."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    ["tinysplit", "tinysplit.model", "tinysplit.cli", "tinysplit.report", "tinysplit.results"],
)
def test_import_does_not_pull_heavy_stacks(module: str) -> None:
    code = (
        f"import sys, {module}; "
        "print(','.join(m for m in ('matplotlib', 'torch', 'bleak', 'esp_ppq', 'onnxruntime') "
        "if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""


def test_pytest_plugin_loads_no_model_stack() -> None:
    # The plugin is loaded by every pytest run in the environment, tinysplit's or not.
    code = (
        "import sys, tinysplit.pytest_plugin; "
        "heavy = ('onnx', 'numpy', 'pandas', 'tinysplit.sim'); "
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""
