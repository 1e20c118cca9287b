"""Fixtures for the firmware's portable C core: one host build per session (CMake + host gcc).

``host_build`` configures and builds ``firmware/host_test`` into a session temp dir (Ninja when
installed); ``core_lib`` loads its shared library ``ts_core_host`` with ctypes, the codec's
signatures declared (tests of other modules declare theirs on the same object).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.firmware.ccodec import declare_codec

HOST_TEST_DIR = Path(__file__).resolve().parents[2] / "firmware" / "host_test"
_C_COMPILERS = ("cc", "gcc", "clang")


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(
            f"`{' '.join(cmd)}` failed (exit {result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def host_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The build directory of ``firmware/host_test`` (configured and built once per session)."""
    cmake = shutil.which("cmake")
    compiler = os.environ.get("CC") or next(filter(shutil.which, _C_COMPILERS), None)
    if cmake is None or compiler is None:
        missing = "cmake" if cmake is None else "a C compiler (cc, gcc or clang)"
        pytest.fail(
            f"the firmware host tests need {missing} on PATH "
            "(Debian/Ubuntu: apt-get install cmake gcc ninja-build)",
            pytrace=False,
        )
    build = tmp_path_factory.mktemp("host_test_build")
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    _run([cmake, "-S", str(HOST_TEST_DIR), "-B", str(build), *generator])
    _run([cmake, "--build", str(build), "--parallel", str(os.cpu_count() or 2)])
    return build


@pytest.fixture(scope="session")
def core_lib(host_build: Path) -> ctypes.CDLL:
    """``ts_core_host`` loaded with ctypes, codec functions declared (argtypes / restype)."""
    name = {"darwin": "libts_core_host.dylib", "win32": "ts_core_host.dll"}.get(
        sys.platform, "libts_core_host.so"
    )
    found = sorted(host_build.rglob(name))
    if not found:
        pytest.fail(f"{name} was not built in {host_build}", pytrace=False)
    lib = ctypes.CDLL(str(found[0]))
    declare_codec(lib)
    return lib
