"""pytest plugin: run tinysplit's benchmark cases on a testbed and archive every run.

Registered under the ``pytest11`` entry point, so ``pytest bench/ --transport ble`` works from any
checkout. Options become fixtures with the precedence indirect parametrization -> command line ->
default; session state lives in ``config.stash``. Each case runs identical pipelines over every
selected transport (the ``transport`` fixture is parametrized), reports device metrics to
pytest-benchmark, and records its runs in one archive per session under ``--results-dir``
(``docs/results-format.md``). The benchmark timer is the testbed's device clock (simulated time,
or the scribe's clock on boards), so pytest-benchmark's statistics are device seconds. With
``--testbed hw --inventory boards.toml`` the same cases run on boards; what boards cannot be told
(link RSSIs, positions, link profiles) skips a case with the reason.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import statistics
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tinysplit.errors import TinysplitError
from tinysplit.protocol.frames import MAX_RELIABLE_WINDOW

if TYPE_CHECKING:  # the plugin loads in every pytest run: the model stack loads on first use
    from tinysplit.partition import Plan
    from tinysplit.sim.pipeline import PipelineConfig, SimResult
    from tinysplit.testbed import Testbed

TRANSPORTS = ("ble", "wifi", "espnow")
#: Cases with at least this many rounds show a progress bar on an interactive terminal.
PROGRESS_MIN_ROUNDS = 5


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


@dataclass(slots=True)
class _Session:
    options: BenchOptions
    testbed: Testbed | None = None
    writer: Any = None
    plans: dict[tuple[str, str], Plan] = field(default_factory=dict)
    streams: dict[str, SimResult] = field(default_factory=dict)
    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)
    archive: Path | None = None
    session: pytest.Session | None = None


_STATE = pytest.StashKey[_Session]()
_CALIBRATION = pytest.StashKey[contextlib.ExitStack]()


def pytest_configure(config: pytest.Config) -> None:
    """Check the options before any work starts and keep the session state."""
    config.stash[_STATE] = _Session(BenchOptions.from_config(config))
    calibration = config.getoption("tinysplit_calibration")
    if calibration:  # loaded only when asked: the calibration module pulls in numpy
        from tinysplit.links.calibration import calibration_override

        stack = contextlib.ExitStack()
        try:
            stack.enter_context(calibration_override(calibration))
        except TinysplitError as exc:
            raise pytest.UsageError(f"--calibration: {exc}") from None
        config.stash[_CALIBRATION] = stack


def pytest_unconfigure(config: pytest.Config) -> None:
    """Put the calibration environment back as it was before the session."""
    stack = config.stash.get(_CALIBRATION, None)
    if stack is not None:
        stack.close()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Keep the session, so a board failure can stop it (see :meth:`Bench.run`)."""
    state = session.config.stash.get(_STATE, None)
    if state is not None:
        state.session = session


def _session(config: pytest.Config) -> _Session:
    return config.stash[_STATE]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every case that takes ``transport`` once per selected transport."""
    if "transport" in metafunc.fixturenames and not _parametrizes(metafunc, "transport"):
        options = _session(metafunc.config).options
        metafunc.parametrize("transport", options.transports, indirect=True)


def _parametrizes(metafunc: pytest.Metafunc, name: str) -> bool:
    """Whether the test's own ``parametrize`` marks already cover ``name``."""
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0]
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        if name in names:
            return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Before any work: create the testbed, and time benchmark cases with its device clock."""
    cases = [item for item in items if "bench" in getattr(item, "fixturenames", ())]
    if not cases:
        return
    from tinysplit.testbed import make_testbed

    state = _session(config)
    options = state.options
    try:
        state.testbed = make_testbed(options.testbed, inventory=options.inventory)
    except TinysplitError as exc:
        raise pytest.UsageError(str(exc)) from None
    boards = getattr(state.testbed, "inventory", None)  # the hardware testbed's boards
    if boards is not None and options.transports != (boards.transport,):
        raise pytest.UsageError(
            f"--testbed hw: the boards of {options.inventory} run the {boards.transport} "
            f"firmware: pick --transport {boards.transport}"
        )
    _check_writable(state.options.results_dir)
    bench = Bench(config)
    for transport in state.options.transports:  # a plan or layout that cannot work stops here
        try:
            bench.config(transport, bench.plan(transport))
        except TinysplitError as exc:
            raise pytest.UsageError(f"{transport}: {exc}") from None
    for item in cases:
        if "benchmark" in getattr(item, "fixturenames", ()):
            params = getattr(item, "callspec", None)
            group = params.params.get("transport") if params is not None else None
            item.add_marker(pytest.mark.benchmark(timer=state.testbed.clock, group=group))


@pytest.fixture
def transport(request: pytest.FixtureRequest) -> str:
    """The transport of this case (parametrized over ``--transport``)."""
    return str(getattr(request, "param", _session(request.config).options.transports[0]))


@pytest.fixture
def window(request: pytest.FixtureRequest) -> int:
    """Application window: indirect parametrization, else ``--window``."""
    return int(getattr(request, "param", _session(request.config).options.window))


@pytest.fixture(scope="session")
def bench(request: pytest.FixtureRequest) -> Bench:
    """The session's :class:`Bench`: plans, runs, archive and summary."""
    return Bench(request.config)


class Bench:
    """What a benchmark case uses: build plans, run pipelines, time rounds, report metrics."""

    def __init__(self, config: pytest.Config) -> None:
        self._config = config
        self._state = _session(config)
        self.options = self._state.options

    @property
    def testbed(self) -> Testbed:
        """The session's testbed (created at collection, before any case runs)."""
        assert self._state.testbed is not None
        return self._state.testbed

    def plan(self, transport: str, strategy: str | None = None) -> Plan:
        """The session's plan for ``transport`` (cached; ``strategy`` overrides ``--strategy``).

        Send times are priced at the link profile's sourced goodput, as the simulated link runs.
        """
        from tinysplit.links.calibration import sourced_goodput_bps
        from tinysplit.model import load_model
        from tinysplit.partition import partition

        key = (transport, strategy or self.options.strategy)
        if key not in self._state.plans:
            self._state.plans[key] = partition(
                load_model(self.options.model),
                strategy=key[1],
                devices=self.options.devices,
                profile=self.options.device_profile,
                transport=transport,
                link_rate_bps=sourced_goodput_bps(transport, self.options.profile),
            )
        return self._state.plans[key]

    def config(self, transport: str, plan: Plan, **overrides: Any) -> PipelineConfig:
        """The pipeline configuration from the options, with ``overrides`` applied."""
        from tinysplit.links import Mode
        from tinysplit.sim.layout import load_layout
        from tinysplit.sim.pipeline import PipelineConfig

        boards = len(plan.stages)
        positions = self.options.positions or ("paper" if boards == 5 else "desk")
        # Boards stand where they are placed: no layout is imposed on them.
        hw = self.options.testbed == "hw"
        layout = load_layout(positions, boards) if not hw else None
        base = PipelineConfig(
            transport=transport,
            link_profile=self.options.profile,
            mode=Mode(self.options.mode),
            window=self.options.window,
            inferences=self.options.inferences,
            seed=self.options.seed,
            rssi_dbm=layout.rssi_dbm if layout else None,
            positions_m=layout.positions_m if layout else None,
            adaptive_window=self.options.adaptive_window,
            wake=self.options.wake,
        )
        return replace(base, **overrides)

    def run(self, case: str, config: PipelineConfig, plan: Plan, **extra: Any) -> SimResult:
        """Run one pipeline on the testbed and archive it under ``case``.

        A configuration the testbed cannot run (:meth:`Testbed.unsupported`) skips the case with
        the reason. A board that fails part way fails the case and stops the session, after the
        inferences completed before the failure are archived.
        """
        result = self._run_on_testbed(plan, config, case, extra)
        self._record(case, result, extra)
        return result

    def _run_on_testbed(
        self, plan: Plan, config: PipelineConfig, case: str | None, extra: dict[str, Any]
    ) -> SimResult:
        from tinysplit.errors import BoardError
        from tinysplit.testbed import PartialRunError

        if (reason := self.testbed.unsupported(config)) is not None:
            pytest.skip(reason)
        try:
            return self.testbed.run(plan, config)
        except TinysplitError as exc:
            if isinstance(exc, PartialRunError) and case is not None:
                self._record(case, exc.result, {**extra, "aborted": str(exc)})
            if isinstance(exc, BoardError) and self._state.session is not None:
                self._state.session.shouldstop = f"board failure: {exc}"
            pytest.fail(str(exc), pytrace=False)

    def _record(self, case: str, result: SimResult, extra: dict[str, Any]) -> None:
        checks = getattr(result, "checks", None)  # the hardware testbed's output checks
        if checks:
            extra = {**extra, "checks": checks}
        run = self._state.runs.get(case, 0)
        self._writer().add(case, result, run=run, extra=extra)
        self._state.runs[case] = run + 1

    def timed(self, benchmark: Any, rounds: int, one_round: Callable[[int], float]) -> None:
        """Benchmark ``rounds`` rounds; each returns the device seconds it measured.

        The plugin gives benchmark cases the testbed clock as their timer, so the statistics
        pytest-benchmark reports are device time.
        """
        counter = iter(range(rounds))
        with self._progress(benchmark.name, rounds) as advance:

            def target() -> None:
                self.testbed.advance(one_round(next(counter)))
                advance()

            if benchmark.disabled:
                # --benchmark-disable runs a pedantic target once: run the other rounds first, so
                # every round is still recorded and the fixture counts as used.
                for _ in range(rounds - 1):
                    target()
                rounds = 1
            benchmark.pedantic(target, rounds=rounds, iterations=1)

    @contextlib.contextmanager
    def _progress(self, description: str, total: int) -> Iterator[Callable[[], None]]:
        """A progress bar on the terminal (not in logs or CI) for cases of many rounds."""
        capture = self._config.pluginmanager.getplugin("capturemanager")
        if total < PROGRESS_MIN_ROUNDS or capture is None:
            yield lambda: None
            return
        with contextlib.ExitStack() as stack:
            stack.enter_context(capture.global_and_fixture_disabled())
            terminal = sys.__stderr__
            if terminal is None or not terminal.isatty():
                stack.close()  # not a terminal: capture output again, draw nothing
                yield lambda: None
                return
            from rich.console import Console
            from rich.progress import Progress

            bar = stack.enter_context(Progress(console=Console(file=terminal), transient=True))
            task = bar.add_task(description, total=total)
            yield lambda: bar.advance(task)

    def stream(self, transport: str) -> SimResult:
        """A back-to-back stream of ``transport`` long enough for 5 windows of >= 10 s (cached).

        A short pilot run measures the steady period; the stream then covers the pipeline's
        fill plus five windows (``sim.metrics.throughput_windows``).
        """
        from tinysplit.sim.metrics import completion_times, stream_length

        if transport not in self._state.streams:
            plan = self.plan(transport)
            stages = len(plan.stages)
            config = self.config(transport, plan, inferences=stages + 3)
            pilot = self._run_on_testbed(plan, config, None, {})
            gaps = [b - a for a, b in itertools.pairwise(completion_times(pilot))]
            period = float(statistics.median(gaps[1:] or gaps)) if gaps else pilot.duration_s
            n = max(self.options.inferences, stream_length(max(period, 1e-6), stages))
            config = self.config(transport, plan, inferences=n)
            self._state.streams[transport] = self.run(f"stream[{transport}]", config, plan)
        return self._state.streams[transport]

    def report(self, transport: str, **metrics: float) -> None:
        """Contribute figures to the end-of-session summary table."""
        self._state.rows.setdefault(transport, {}).update(metrics)

    def _writer(self) -> Any:
        if self._state.writer is None:
            from tinysplit.results import ArchiveWriter

            transports = self.options.transports
            self._state.writer = ArchiveWriter(
                self.options.results_dir,
                testbed=self.options.testbed,
                transport=transports[0] if len(transports) == 1 else "all",
                manifest={"options": _options_dict(self.options)},
            )
        return self._state.writer


def _check_writable(directory: Path) -> None:
    """Raise a usage error naming ``--results-dir`` unless archives can be written there."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise pytest.UsageError(
            f"--results-dir {str(directory)!r} cannot be created: {exc.strerror}"
        ) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise pytest.UsageError(f"--results-dir {str(directory)!r} is not writable")


def _options_dict(options: BenchOptions) -> dict[str, Any]:
    return {
        k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
        for k, v in ((f, getattr(options, f)) for f in options.__slots__)
    }


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Close the archive: complete when every case passed, else marked incomplete."""
    state = session.config.stash.get(_STATE, None)
    if state is None or state.writer is None:
        return
    complete = exitstatus == 0 and not session.shouldfail and not session.shouldstop
    state.archive = state.writer.close(complete=complete)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Print the transport comparison and where the archive went."""
    state = config.stash.get(_STATE, None)
    if state is None or (not state.rows and state.archive is None):
        return
    write = terminalreporter.write_line
    if state.rows:
        terminalreporter.section("tinysplit summary")
        header = ("transport", "latency p50 s", "p95 s", "inf/s", "J/inference", "net/compute",
                  "failures")  # fmt: skip
        write("  ".join(f"{h:>13}" for h in header))
        for transport, m in state.rows.items():
            cells = (m.get("latency_p50_s"), m.get("latency_p95_s"), m.get("throughput_per_s"),
                     m.get("energy_per_inference_j"), m.get("network_to_inference"),
                     m.get("failures"))  # fmt: skip
            write(f"{transport:>13}  " + "  ".join(_cell(c) for c in cells))
    if state.archive is not None:
        write(f"tinysplit archive: {state.archive}")


def _cell(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{'-':>13}"
    return f"{value:>13.4g}"
