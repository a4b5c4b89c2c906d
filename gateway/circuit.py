"""A circuit breaker per upstream instance: closed -> open after N consecutive failures,
open -> half-open after a pause (one probe request), half-open -> closed on success or
back to open on failure. Per worker: each worker learns on its own, quickly."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum


class CircuitState(IntEnum):
    # Values are the gateway_circuit_state gauge values.
    closed = 0
    half_open = 1
    open = 2


class CircuitBreaker:
    def __init__(
        self,
        *,
        failure_threshold: int,
        open_seconds: float,
        on_change: Callable[[CircuitState], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds
        self._on_change = on_change
        self._clock = clock
        self.state = CircuitState.closed
        self.failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False

    def allow(self) -> bool:
        """May a request go to this instance now? (Claims the probe when half-open.)"""
        if self.state is CircuitState.closed:
            return True
        if self.state is CircuitState.open:
            if self._clock() - self._opened_at < self.open_seconds:
                return False
            self._set(CircuitState.half_open)
        if self._probe_in_flight:
            return False
        self._probe_in_flight = True
        return True

    def retry_after(self) -> float:
        """Seconds until an open circuit lets a probe through (0 when not open)."""
        if self.state is not CircuitState.open:
            return 0.0
        return max(0.0, self.open_seconds - (self._clock() - self._opened_at))

    def record_success(self) -> None:
        self.failures = 0
        self._probe_in_flight = False
        if self.state is not CircuitState.closed:
            self._set(CircuitState.closed)

    def record_failure(self) -> None:
        self._probe_in_flight = False
        self.failures += 1
        if self.state is CircuitState.half_open or self.failures >= self.failure_threshold:
            self._opened_at = self._clock()
            if self.state is not CircuitState.open:
                self._set(CircuitState.open)

    def release(self) -> None:
        """The request ended without a verdict (client went away): free the probe slot."""
        self._probe_in_flight = False

    def _set(self, state: CircuitState) -> None:
        self.state = state
        if self._on_change is not None:
            self._on_change(state)
