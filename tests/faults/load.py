"""A small load loop for fault tests: worker threads send a mix of requests through the
gateway and record every answer (time, operation, status, duration, headers)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from tests.faults.helpers import client

Operation = Callable[[httpx.Client], httpx.Response]


@dataclass(frozen=True)
class Sample:
    at: float  # monotonic start
    op: str
    status: int  # 0: no answer at all (connection error, client timeout)
    seconds: float
    content_type: str
    retry_after: str | None
    body: str


@dataclass
class LoadLoop:
    operations: dict[str, Operation]
    threads: int = 4
    pause: float = 0.01
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> LoadLoop:
        for index in range(self.threads):
            worker = threading.Thread(target=self._run, args=(index,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(30)

    def _run(self, index: int) -> None:
        names = list(self.operations)
        turn = index
        with client(timeout=30) as http:
            while not self._stop.is_set():
                name = names[turn % len(names)]
                turn += 1
                started = time.monotonic()
                try:
                    response = self.operations[name](http)
                except httpx.HTTPError as exc:
                    sample = Sample(
                        started, name, 0, time.monotonic() - started, "", None, repr(exc)
                    )
                else:
                    sample = Sample(
                        started,
                        name,
                        response.status_code,
                        time.monotonic() - started,
                        response.headers.get("content-type", ""),
                        response.headers.get("retry-after"),
                        response.text[:300] if response.status_code >= 400 else "",
                    )
                with self._lock:
                    self.samples.append(sample)
                time.sleep(self.pause)

    def between(self, start: float, end: float) -> list[Sample]:
        with self._lock:
            return [s for s in self.samples if start <= s.at < end]

    def since(self, start: float) -> list[Sample]:
        return self.between(start, float("inf"))
