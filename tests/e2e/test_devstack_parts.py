"""The dev stack's own parts with real processes and a real SMTP conversation: the
supervisor explains a crash, escalates to SIGKILL, stops whole process groups; the
SMTP sink stores mail in a maildir and logs no body."""

from __future__ import annotations

import json
import logging
import smtplib
import sys
import textwrap
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from tools.devstack.embedded import free_port
from tools.devstack.processes import ProcessFailed, ProcessSpec, Supervisor, pid_alive
from tools.devstack.smtp_sink import SmtpSink, body_text, read_maildir, wait_for_mail

pytestmark = pytest.mark.e2e

# A parent that ignores SIGTERM, with a child in its group, and a tiny health server.
STUBBORN = textwrap.dedent(
    """
    import http.server, signal, subprocess, sys
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    print("child", child.pid, flush=True)

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
    """
)


def test_a_crash_at_startup_shows_the_log_tail(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path)
    crash = "import sys; print('cannot bind: port in use', flush=True); sys.exit(3)"
    supervisor.add(ProcessSpec("crasher", [sys.executable, "-c", crash], port=free_port()))
    with pytest.raises(ProcessFailed) as failure:
        supervisor.start_all(timeout=10)
    assert "crasher exited with code 3" in str(failure.value)
    assert "cannot bind: port in use" in str(failure.value)


def test_a_process_that_never_answers_times_out(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path, graceful_timeout=1)
    silent = [sys.executable, "-c", "print('booting', flush=True); import time; time.sleep(30)"]
    supervisor.add(ProcessSpec("silent", silent, port=free_port()))
    try:
        with pytest.raises(ProcessFailed, match=r"silent not healthy after 0.5s(.|\n)*booting"):
            supervisor.start_all(timeout=0.5)
    finally:
        supervisor.stop_all()
    assert not supervisor.is_running("silent")


def test_stop_escalates_to_sigkill_and_reaches_the_whole_group(tmp_path: Path) -> None:
    port = free_port()
    supervisor = Supervisor(tmp_path, graceful_timeout=0.5)
    supervisor.add(ProcessSpec("stubborn", [sys.executable, "-c", STUBBORN, str(port)], port=port))
    supervisor.start_all(timeout=10)
    members = supervisor.members("stubborn")
    assert len(members) == 2  # the parent and its child share the group
    started = time.monotonic()
    code = supervisor.stop("stubborn")
    assert code == -9  # SIGTERM was ignored, SIGKILL was not
    assert 0.5 <= time.monotonic() - started < 5
    assert not any(pid_alive(pid) for pid in members)
    # A stopped process can be started again (fault tests restart services).
    supervisor.start("stubborn", timeout=10)
    assert supervisor.is_running("stubborn")
    supervisor.stop_all()
    assert "child" in supervisor.log_tail("stubborn")


def test_smtp_sink_keeps_mail_and_logs_no_body(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = SmtpSink(tmp_path / "mail", free_port()).start()
    secret = "https://app.example/verify-email?token=s3cr3t-t0ken"
    try:
        message = EmailMessage()
        message["From"] = "no-reply@shopstack.local"
        message["To"] = "Alice@Example.com"
        message["Subject"] = "Verify your email"
        message.set_content(f"Open {secret}")
        with caplog.at_level(logging.INFO, logger="devstack.smtp"):
            with smtplib.SMTP("127.0.0.1", sink.port, timeout=5) as client:
                client.send_message(message, to_addrs=["alice@example.com", "bob@example.com"])
            (received,) = wait_for_mail(sink.directory, "alice@example.com", timeout=5)
    finally:
        sink.stop()
    assert received["Subject"] == "Verify your email"
    assert secret in body_text(received)
    assert [m["Subject"] for m in read_maildir(sink.directory)] == ["Verify your email"]
    assert wait_for_mail(sink.directory, "BOB@example.com", timeout=1)
    with pytest.raises(TimeoutError):
        wait_for_mail(sink.directory, "carol@example.com", timeout=0.2)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "devstack.smtp"]
    assert lines == [
        {
            "event": "mail_received",
            "from": "no-reply@shopstack.local",
            "to": ["alice@example.com", "bob@example.com"],
            "subject": "Verify your email",
        }
    ]
    assert "s3cr3t" not in caplog.text
