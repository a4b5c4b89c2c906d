"""A local SMTP server that keeps every message in a maildir and delivers none.

Bodies carry one-time tokens (verify, reset links), so the log line names only the
sender, recipients and subject; the body stays in the maildir for the developer.

    python -m tools.devstack.smtp_sink --port 1025 --dir .data/mail
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import logging
import mailbox
import signal
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger("devstack.smtp")


class MaildirHandler:
    """aiosmtpd handler: one maildir file and one JSON log line per accepted message."""

    def __init__(self, directory: Path) -> None:
        # Maildir(create=True) makes tmp/new/cur only for a new root: make them ourselves.
        for sub in ("tmp", "new", "cur"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._lock = threading.Lock()

    # aiosmtpd calls hooks by this exact name.
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        # The envelope is the truth for delivery; keep it in headers tests can read.
        parsed["X-Envelope-From"] = envelope.mail_from or ""
        parsed["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        with self._lock:
            mailbox.Maildir(self.directory, create=False).add(parsed.as_bytes())
        log.info(
            json.dumps(
                {
                    "event": "mail_received",
                    "from": envelope.mail_from,
                    "to": list(envelope.rcpt_tos),
                    "subject": str(parsed.get("Subject", "")),
                }
            )
        )
        return "250 Message accepted for delivery"


class SmtpSink:
    """The SMTP server on a background thread (aiosmtpd Controller)."""

    def __init__(self, directory: Path, port: int = 1025, host: str = "127.0.0.1") -> None:
        self.directory = directory
        self.host = host
        self.port = port
        self._controller = Controller(MaildirHandler(directory), hostname=host, port=port)

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def messages(self) -> list[EmailMessage]:
        return read_maildir(self.directory)


def read_maildir(directory: Path) -> list[EmailMessage]:
    """Every message in the maildir, oldest first."""
    found: list[tuple[float, str, EmailMessage]] = []
    for folder in ("new", "cur"):
        for path in (directory / folder).glob("*") if (directory / folder).is_dir() else ():
            try:
                data, stamp = path.read_bytes(), path.stat().st_mtime
            except FileNotFoundError:
                continue  # moved from new/ to cur/ while we listed
            message = email.message_from_bytes(data, policy=email.policy.default)
            found.append((stamp, path.name, message))
    found.sort(key=lambda item: (item[0], item[1]))
    return [message for _, _, message in found]


def recipients(message: EmailMessage) -> list[str]:
    value = str(message.get("X-Envelope-To", "") or message.get("To", ""))
    return [part.strip().lower() for part in value.split(",") if part.strip()]


def wait_for_mail(
    directory: Path, to: str, timeout: float = 10.0, *, count: int = 1
) -> list[EmailMessage]:
    """Messages addressed to `to`, once there are at least `count` of them."""
    deadline = time.monotonic() + timeout
    wanted = to.strip().lower()
    while True:
        matching = [m for m in read_maildir(directory) if wanted in recipients(m)]
        if len(matching) >= count:
            return matching
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"{len(matching)} message(s) for {to} after {timeout}s, wanted {count}"
            )
        time.sleep(0.05)


def body_text(message: EmailMessage) -> str:
    """The plain-text part (or the first part) of a message, for tests that need a link."""
    part: Any = message.get_body(preferencelist=("plain", "html"))
    return str(part.get_content()) if part is not None else ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--dir", type=Path, default=Path(".data/mail"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command chatter
    sink = SmtpSink(args.dir, args.port, args.host).start()
    log.info(json.dumps({"event": "smtp_sink_started", "port": args.port, "dir": str(args.dir)}))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    sink.stop()


if __name__ == "__main__":
    main()
