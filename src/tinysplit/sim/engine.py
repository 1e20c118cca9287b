"""A tiny discrete-event engine with SimPy's core API (the subset the pipeline uses).

Events are processed in (time, priority, insertion order), so runs are deterministic. Processes
are generators that yield events; ``Store`` and ``Resource`` behave like their SimPy namesakes
(FIFO). The pipeline simulator is written against this API, so it also runs on SimPy itself;
``bench/test_sim_speed.py`` measures both and this engine is the default because it is faster
(numbers in ``docs/simulator.md``).
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Generator
from typing import Any

URGENT, NORMAL = 0, 1

ProcessGenerator = Generator["Event", Any, Any]


class Event:
    """Something that happens at a point in simulated time; callbacks run when it is processed."""

    __slots__ = ("_value", "callbacks", "env", "triggered")

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.callbacks: list[Callable[[Event], None]] | None = []
        self.triggered = False
        self._value: Any = None

    @property
    def value(self) -> Any:
        """The value the event was triggered with."""
        return self._value

    def succeed(self, value: Any = None, priority: int = NORMAL) -> Event:
        """Trigger the event now; its callbacks run when the engine reaches it."""
        if self.triggered:
            raise RuntimeError("event already triggered")
        self.triggered = True
        self._value = value
        self.env.schedule(self, 0.0, priority)
        return self


class Timeout(Event):
    """An event that fires ``delay`` seconds after its creation."""

    __slots__ = ()

    def __init__(self, env: Environment, delay: float, value: Any = None) -> None:
        if delay < 0:
            raise ValueError(f"negative delay {delay}")
        super().__init__(env)
        self.triggered = True
        self._value = value
        env.schedule(self, delay, NORMAL)


class Process(Event):
    """Runs a generator; the process itself is an event that fires when the generator returns."""

    __slots__ = ("_generator",)

    def __init__(self, env: Environment, generator: ProcessGenerator) -> None:
        super().__init__(env)
        self._generator = generator
        start = Event(env)
        start.callbacks = [self._resume]
        start.succeed(priority=URGENT)

    def _resume(self, event: Event) -> None:
        try:
            target = self._generator.send(event.value)
        except StopIteration as stop:
            self.succeed(stop.value)
            return
        if target.callbacks is None:  # already processed: continue at once
            self.env.schedule_call(self._resume, target)
        else:
            target.callbacks.append(self._resume)


class Environment:
    """The event loop: simulated time in seconds, starting at 0."""

    def __init__(self) -> None:
        self.now = 0.0
        self._queue: list[tuple[float, int, int, Event]] = []
        self._counter = itertools.count()

    def schedule(self, event: Event, delay: float, priority: int) -> None:
        """Queue ``event`` to be processed ``delay`` seconds from now."""
        heapq.heappush(self._queue, (self.now + delay, priority, next(self._counter), event))

    def schedule_call(self, callback: Callable[[Event], None], event: Event) -> None:
        """Call ``callback(event)`` at the current time, after what is already due now."""
        relay = Event(self)
        relay._value = event.value
        relay.callbacks = [lambda _: callback(event)]
        relay.triggered = True
        self.schedule(relay, 0.0, URGENT)

    def timeout(self, delay: float, value: Any = None) -> Timeout:
        """An event ``delay`` seconds from now."""
        return Timeout(self, delay, value)

    def event(self) -> Event:
        """A new untriggered event."""
        return Event(self)

    def process(self, generator: ProcessGenerator) -> Process:
        """Start a process."""
        return Process(self, generator)

    def run(self, until: float | None = None) -> None:
        """Process events until none are left (or simulated time reaches ``until``)."""
        queue = self._queue
        while queue:
            when, _, _, event = queue[0]
            if until is not None and when > until:
                self.now = until
                return
            heapq.heappop(queue)
            self.now = when
            callbacks, event.callbacks = event.callbacks, None
            for callback in callbacks or ():
                callback(event)


class Store:
    """A FIFO buffer of at most ``capacity`` items; ``put`` and ``get`` return events."""

    def __init__(self, env: Environment, capacity: int = 1) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.env = env
        self.capacity = capacity
        self.items: deque[Any] = deque()
        self._putters: deque[tuple[Event, Any]] = deque()
        self._getters: deque[Event] = deque()

    def put(self, item: Any) -> Event:
        """An event that fires once ``item`` is in the store."""
        event = Event(self.env)
        self._putters.append((event, item))
        self._settle()
        return event

    def get(self) -> Event:
        """An event that fires with the oldest item once there is one."""
        event = Event(self.env)
        self._getters.append(event)
        self._settle()
        return event

    def _settle(self) -> None:
        moved = True
        while moved:
            moved = False
            if self._putters and len(self.items) < self.capacity:
                event, item = self._putters.popleft()
                self.items.append(item)
                event.succeed()
                moved = True
            if self._getters and self.items:
                self._getters.popleft().succeed(self.items.popleft())
                moved = True


class Resource:
    """``capacity`` identical units handed out first come, first served."""

    def __init__(self, env: Environment, capacity: int = 1) -> None:
        self.env = env
        self.capacity = capacity
        self.users = 0
        self._waiting: deque[Event] = deque()

    def request(self) -> Event:
        """An event that fires when a unit is granted; pair it with :meth:`release`."""
        event = Event(self.env)
        if self.users < self.capacity:
            self.users += 1
            event.succeed()
        else:
            self._waiting.append(event)
        return event

    def release(self, request: Event | None = None) -> None:
        """Return the unit granted to ``request`` (SimPy's signature) to the longest waiter."""
        if self._waiting:
            self._waiting.popleft().succeed()
        else:
            self.users -= 1
