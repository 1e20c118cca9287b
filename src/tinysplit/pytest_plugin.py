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

from tinysplit.bench_options import BenchOptions, pytest_addoption  # noqa: F401 (a hook)
from tinysplit.errors import TinysplitError

if TYPE_CHECKING:  # the plugin loads in every pytest run: the model stack loads on first use
    from tinysplit.partition import Plan
    from tinysplit.sim.pipeline import PipelineConfig, SimResult
    from tinysplit.testbed import Testbed

#: Cases with at least this many rounds show a progress bar on an interactive terminal.
PROGRESS_MIN_ROUNDS = 5


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
                manifest={"options": self.options.to_dict()},
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
