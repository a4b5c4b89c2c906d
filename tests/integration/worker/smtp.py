"""A real SMTP server (aiosmtpd, in its own thread) that collects messages and can be told
to refuse (4xx/5xx) or to be slow, for the worker's tests."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller

from tools.devstack.embedded import free_port


@dataclass
class SinkHandler:
    messages: list[Message] = field(default_factory=list)
    refuse_code: int | None = None  # e.g. 451 (try later) or 550 (permanent)
    # Refuse only the first this-many DATA commands of each message, then accept. Counted
    # per Message-ID so a stray message from another test cannot use up the refusals.
    refuse_times: int | None = None
    delay_seconds: float = 0.0  # wait after storing, before answering 250
    data_started: threading.Event = field(default_factory=threading.Event)
    attempts: int = 0
    attempts_by_id: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        import asyncio

        message = message_from_bytes(envelope.content)
        key = str(message["Message-ID"])
        with self.lock:
            self.attempts += 1
            tries = self.attempts_by_id[key] = self.attempts_by_id.get(key, 0) + 1
            refuse = self.refuse_code is not None and (
                self.refuse_times is None or tries <= self.refuse_times
            )
        if refuse:
            return f"{self.refuse_code} refused by the test server"
        # Stored before the reply: a client that dies now leaves a message the
        # server has but the client never saw accepted (the duplicate window).
        self.messages.append(message)
        self.data_started.set()
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        return "250 OK"

    def by_message_id(self, message_id: str) -> list[Message]:
        return [m for m in list(self.messages) if m["Message-ID"] == message_id]


class SmtpSink:
    def __init__(self) -> None:
        self.handler = SinkHandler()
        self.port = free_port()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def reset(self) -> None:
        self.handler.messages.clear()
        self.handler.refuse_code = None
        self.handler.refuse_times = None
        self.handler.delay_seconds = 0.0
        self.handler.attempts = 0
        self.handler.attempts_by_id.clear()
        self.handler.data_started.clear()
