"""The discrete-event engine: ordering, stores, resources."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from tinysplit.sim.engine import Environment, Resource, Store


def test_events_run_in_time_then_insertion_order() -> None:
    env = Environment()
    log: list[tuple[float, str]] = []

    def proc(name: str, delays: list[float]) -> Generator[Any, Any, None]:
        for d in delays:
            yield env.timeout(d)
            log.append((env.now, name))

    env.process(proc("a", [1.0, 1.0]))
    env.process(proc("b", [2.0]))
    env.process(proc("c", [0.5, 1.5]))
    env.run()
    # Same time: in the order the events were scheduled (b at 0, c at 0.5, a at 1.0).
    assert log == [(0.5, "c"), (1.0, "a"), (2.0, "b"), (2.0, "c"), (2.0, "a")]
    assert env.now == 2.0


def test_process_return_value_and_waiting_on_a_process() -> None:
    env = Environment()
    seen: list[Any] = []

    def child() -> Generator[Any, Any, str]:
        yield env.timeout(3.0)
        return "done"

    def parent() -> Generator[Any, Any, None]:
        value = yield env.process(child())
        seen.append((env.now, value))

    env.process(parent())
    env.run()
    assert seen == [(3.0, "done")]


def test_store_blocks_putters_when_full_and_getters_when_empty() -> None:
    env = Environment()
    store = Store(env, capacity=1)
    log: list[tuple[float, str]] = []

    def producer() -> Generator[Any, Any, None]:
        for item in ("x", "y"):
            yield store.put(item)
            log.append((env.now, f"put {item}"))

    def consumer() -> Generator[Any, Any, None]:
        yield env.timeout(5.0)
        for _ in range(2):
            item = yield store.get()
            log.append((env.now, f"got {item}"))
            yield env.timeout(1.0)

    env.process(producer())
    env.process(consumer())
    env.run()
    assert log == [(0.0, "put x"), (5.0, "got x"), (5.0, "put y"), (6.0, "got y")]


def test_resource_serves_first_come_first_served() -> None:
    env = Environment()
    radio = Resource(env, capacity=1)
    log: list[tuple[float, str]] = []

    def user(name: str, hold: float) -> Generator[Any, Any, None]:
        req = radio.request()
        yield req
        log.append((env.now, name))
        yield env.timeout(hold)
        radio.release(req)

    for name, hold in (("a", 2.0), ("b", 1.0), ("c", 1.0)):
        env.process(user(name, hold))
    env.run()
    assert log == [(0.0, "a"), (2.0, "b"), (3.0, "c")]


def test_run_until_stops_the_clock() -> None:
    env = Environment()

    def ticker() -> Generator[Any, Any, None]:
        while True:
            yield env.timeout(1.0)

    env.process(ticker())
    env.run(until=4.5)
    assert env.now == 4.5


def test_negative_delay_is_refused() -> None:
    with pytest.raises(ValueError, match="negative delay"):
        Environment().timeout(-1.0)
