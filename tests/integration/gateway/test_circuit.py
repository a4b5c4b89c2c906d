"""The breaker's state machine with a fake clock (the integration tests drive it for real)."""

from __future__ import annotations

from gateway.circuit import CircuitBreaker, CircuitState


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_and_probes_once() -> None:
    clock = Clock()
    changes: list[CircuitState] = []
    breaker = CircuitBreaker(
        failure_threshold=3, open_seconds=10, on_change=changes.append, clock=clock
    )
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # not consecutive any more
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state is CircuitState.closed and breaker.allow()
    breaker.record_failure()
    assert breaker.state is CircuitState.open
    assert not breaker.allow()
    assert breaker.retry_after() == 10
    clock.now += 10
    assert breaker.allow()  # the one probe
    assert breaker.state is CircuitState.half_open
    assert not breaker.allow()  # nobody else while it is in flight
    breaker.record_failure()  # probe failed: open again, for a full period
    assert breaker.state is CircuitState.open and breaker.retry_after() == 10
    clock.now += 10
    assert breaker.allow()
    breaker.release()  # the client left: the probe slot is free again
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is CircuitState.closed and breaker.allow() and breaker.allow()
    assert changes == [
        CircuitState.open,
        CircuitState.half_open,
        CircuitState.open,
        CircuitState.half_open,
        CircuitState.closed,
    ]
