"""The benchmark session's command-line options (``pytest --help``, group "tinysplit").

:func:`pytest_addoption` registers them (re-exported as a hook by :mod:`tinysplit.pytest_plugin`);
:class:`BenchOptions` reads and checks them once per session, so a bad option stops the session
with a usage error before any case runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tinysplit.protocol.frames import MAX_RELIABLE_WINDOW

TRANSPORTS = ("ble", "wifi", "espnow")


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchOptions:
    """The command-line options of a benchmark session (see ``pytest --help``)."""

    transports: tuple[str, ...]
    testbed: str
    inventory: str | None
    model: str
    strategy: str
    devices: int | None
    device_profile: str
    window: int
    mode: str
    inferences: int
    seed: int
    results_dir: Path
    profile: str | None
    positions: str | None
    adaptive_window: bool = False
    wake: str | None = None

    @classmethod
    def from_config(cls, config: pytest.Config) -> BenchOptions:
        """Read and check the options; raises :class:`pytest.UsageError` naming a bad one."""
        opt = config.getoption
        transport = str(opt("tinysplit_transport"))
        for name in ("tinysplit_window", "tinysplit_inferences"):
            if int(opt(name)) < 1:
                flag = "--" + name.removeprefix("tinysplit_")
                raise pytest.UsageError(f"{flag} must be >= 1, got {opt(name)}")
        if str(opt("tinysplit_mode")) == "reliable" and int(opt("tinysplit_window")) > (
            MAX_RELIABLE_WINDOW
        ):
            raise pytest.UsageError(
                f"--window {opt('tinysplit_window')}: reliable mode takes windows up to "
                f"{MAX_RELIABLE_WINDOW}"
            )
        devices = opt("tinysplit_devices")
        if devices != "auto" and (not str(devices).isdigit() or int(devices) < 1):
            raise pytest.UsageError(f"--devices must be a positive integer or auto, got {devices}")
        testbed = str(opt("tinysplit_testbed"))
        if opt("tinysplit_inventory") and testbed != "hw":
            raise pytest.UsageError("--inventory only applies to --testbed hw")
        if testbed == "hw":
            if not opt("tinysplit_inventory"):
                raise pytest.UsageError(
                    "--testbed hw needs --inventory boards.toml describing the boards"
                )
            for flag in ("profile", "positions"):
                if opt(f"tinysplit_{flag}"):
                    raise pytest.UsageError(
                        f"--{flag} configures the simulator; boards run their firmware's links "
                        "where they stand (--testbed hw)"
                    )
        if opt("tinysplit_adaptive_window") and str(opt("tinysplit_mode")) != "reliable":
            raise pytest.UsageError("--adaptive-window needs --mode reliable")
        if opt("tinysplit_wake") and transport not in ("wifi", "espnow"):
            raise pytest.UsageError(
                "--wake ble (hybrid transport) moves tensors on wifi or espnow: pick one of them"
            )
        if testbed == "hw" and (opt("tinysplit_adaptive_window") or opt("tinysplit_wake")):
            raise pytest.UsageError(
                "--adaptive-window and --wake are simulator options (on boards they are "
                "firmware build options)"
            )
        if transport == "all" and opt("tinysplit_profile"):
            raise pytest.UsageError(
                "--profile names one transport's link profile: pick a --transport"
            )
        return cls(
            transports=TRANSPORTS if transport == "all" else (transport,),
            testbed=testbed,
            inventory=opt("tinysplit_inventory"),
            model=str(opt("tinysplit_model")),
            strategy=str(opt("tinysplit_strategy")),
            devices=None if devices == "auto" else int(devices),
            device_profile=str(opt("tinysplit_device_profile")),
            window=int(opt("tinysplit_window")),
            mode=str(opt("tinysplit_mode")),
            inferences=int(opt("tinysplit_inferences")),
            seed=int(opt("tinysplit_seed")),
            results_dir=Path(opt("tinysplit_results_dir")),
            profile=opt("tinysplit_profile"),
            positions=opt("tinysplit_positions"),
            adaptive_window=bool(opt("tinysplit_adaptive_window")),
            wake=opt("tinysplit_wake"),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (for the archive's manifest)."""
        return {
            k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
            for k, v in ((f, getattr(self, f)) for f in self.__slots__)
        }


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the tinysplit options (``pytest --help``, group "tinysplit")."""
    group = parser.getgroup("tinysplit", "tinysplit protocol-comparison benchmarks")
    add = group.addoption
    add("--transport", dest="tinysplit_transport", choices=(*TRANSPORTS, "all"), default="ble",
        help="transport(s) to benchmark (default ble)")  # fmt: skip
    add("--testbed", dest="tinysplit_testbed", choices=("sim", "hw"), default="sim",
        help="sim: calibrated simulation (default); hw: boards (needs --inventory)")  # fmt: skip
    add("--inventory", dest="tinysplit_inventory", default=None, metavar="FILE",
        help="boards.toml describing the boards (hw only)")  # fmt: skip
    add("--model", dest="tinysplit_model", default="paper",
        help="built-in model or .onnx file (default paper)")  # fmt: skip
    add("--strategy", dest="tinysplit_strategy", choices=("paper", "greedy", "optimal"),
        default="paper", help="partitioning strategy (default paper)")  # fmt: skip
    add("--devices", dest="tinysplit_devices", default="5", metavar="N|auto",
        help="boards in the pipeline (default 5, as in the paper)")  # fmt: skip
    add("--device-profile", dest="tinysplit_device_profile", default="paper",
        help="device profile for partitioning (default paper)")  # fmt: skip
    add("--window", dest="tinysplit_window", type=int, default=6,
        help="frames per acknowledgment (default 6, the paper's)")  # fmt: skip
    add("--mode", dest="tinysplit_mode", choices=("paper", "reliable"), default="reliable",
        help="protocol mode (default reliable; paper reproduces its silent losses)")  # fmt: skip
    add("--inferences", dest="tinysplit_inferences", type=int, default=10,
        help="inferences per case (default 10)")  # fmt: skip
    add("--seed", dest="tinysplit_seed", type=int, default=0, help="seed (default 0)")
    add("--results-dir", dest="tinysplit_results_dir", default="results",
        help="where the session archive goes (default results/)")  # fmt: skip
    add("--profile", dest="tinysplit_profile", default=None,
        help="link profile (tinysplit links show; default per transport)")  # fmt: skip
    add("--positions", dest="tinysplit_positions", default=None,
        help="board layout name or file (default: the paper's link RSSIs for 5 boards, "
        "boards 0.5 m apart otherwise)")  # fmt: skip
    add("--adaptive-window", dest="tinysplit_adaptive_window", action="store_true",
        help="reliable mode: every link adapts its in-flight window (--window stays the "
        "acknowledgment cadence)")  # fmt: skip
    add("--wake", dest="tinysplit_wake", choices=("ble",), default=None,
        help="hybrid transport (wifi, espnow): boards sleep on BLE between tensors")  # fmt: skip
    add("--calibration", dest="tinysplit_calibration", default=None, metavar="FILE",
        help="user calibration file from 'tinysplit calibrate' for the simulator "
        "(default: $TINYSPLIT_CALIBRATION, else the packaged data)")  # fmt: skip
