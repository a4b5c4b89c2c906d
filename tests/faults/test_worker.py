"""The worker SIGKILLed while it sends a burst of emails to a slow SMTP server, then
started again. Promised (docs/worker.md): no email is lost; a copy may be sent twice only
when the kill falls between the server's acceptance of DATA and the worker's record of
it, and both copies then carry the same Message-ID (receivers can dedupe).

Slow and refusing SMTP servers without a kill, and retries until they recover, are
covered by tests/integration/worker/test_delivery.py (refusing 4xx, stopped server,
permanent 5xx, dead letters and replay); a kill during DATA of one message by
tests/integration/worker/test_worker_process.py."""

from __future__ import annotations

import signal
import time
from collections import Counter

from tests.faults.helpers import SlowSink, client, eventually, register
from tests.support.stack import Stack
from tools.devstack.smtp_sink import read_maildir, recipients

EMAILS = 6


def test_worker_killed_mid_burst_loses_no_email(stack: Stack) -> None:
    assert isinstance(stack.sink, SlowSink)
    handler = stack.sink.handler
    gw = stack.gateway_url
    handler.delay = 3.0  # each message sits in DATA for 3 s
    handler.started.clear()
    try:
        with client() as http:
            emails = [register(http, gw) for _ in range(EMAILS)]
        assert handler.started.wait(20), "no email reached the SMTP server"
        time.sleep(0.3)  # a few more jobs in flight
        stack.processes.kill("worker", signal.SIGKILL)
        stack.processes.stop("worker", timeout=5.0)
        in_data = handler.data_started
    finally:
        handler.delay = 0.0
    stack.processes.start("worker", timeout=30)

    def all_arrived() -> bool:
        got = {r for m in read_maildir(stack.maildir) for r in recipients(m)}
        return set(emails) <= got

    assert eventually(all_arrived, timeout=45, pause=0.2)
    time.sleep(1.0)  # a late duplicate would show up now
    copies: Counter[str] = Counter()
    ids: dict[str, set[str]] = {}
    for message in read_maildir(stack.maildir):
        for to in recipients(message):
            if to in emails:
                copies[to] += 1
                ids.setdefault(to, set()).add(str(message["Message-ID"]))
    print(
        f"\nworker killed with {in_data} message(s) in DATA: copies per email "
        f"{sorted(copies.values())}"
    )
    assert in_data >= 1
    assert all(1 <= copies[to] <= 2 for to in emails), copies
    assert all(len(ids[to]) == 1 for to in emails), ids  # a duplicate is the same message
