"""The host build's own tests (firmware/host_test/test_*.c and the fuzz driver) through ctest."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def test_ctest_passes(host_build: Path) -> None:
    ctest = shutil.which("ctest")
    if ctest is None:
        pytest.fail("ctest (part of cmake) is not on PATH", pytrace=False)
    result = subprocess.run(
        [ctest, "--output-on-failure", "--timeout", "120"],
        cwd=host_build,
        capture_output=True,
        text=True,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"ctest failed:\n{output}"
    assert "100% tests passed" in output, output
    assert "fuzz_frame" in output and "test_frame" in output, output
