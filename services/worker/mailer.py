"""Build the MIME message and hand it to the SMTP server with aiosmtplib.

The Message-ID is derived from the outbox id, so a receiver (or a test) can drop a
duplicate the worker could not avoid (a crash between SMTP acceptance and our commit).
"""

from __future__ import annotations

from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

import aiosmtplib

from services.worker.rendering import RenderedEmail
from services.worker.settings import WorkerSettings


class SendError(Exception):
    """The SMTP server did not accept the message; `permanent` for a 5xx refusal."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class Envelope:
    to: str
    outbox_id: str
    request_id: str | None = None


def sender_domain(mail_from: str) -> str:
    address = parseaddr(mail_from)[1]
    return address.rpartition("@")[2] or "localhost"


def message_id(outbox_id: str, mail_from: str) -> str:
    return f"<{outbox_id}@{sender_domain(mail_from)}>"


def build_message(
    email: RenderedEmail, envelope: Envelope, settings: WorkerSettings
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.mail_from
    # Address() refuses CR/LF and malformed addresses (no header injection via `to`).
    msg["To"] = Address(addr_spec=envelope.to)
    msg["Subject"] = email.subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = message_id(envelope.outbox_id, settings.mail_from)
    msg["Content-Language"] = email.locale
    msg["Auto-Submitted"] = "auto-generated"
    if envelope.request_id:
        msg["X-Request-ID"] = " ".join(envelope.request_id.split())[:128]
    msg.set_content(email.text)
    msg.add_alternative(email.html, subtype="html")
    return msg


async def send(msg: EmailMessage, settings: WorkerSettings) -> None:
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    try:
        await aiosmtplib.send(
            msg,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=password,
            start_tls=settings.smtp_starttls,
            use_tls=settings.smtp_tls,
            cert_bundle=settings.smtp_ca_file,
            timeout=settings.smtp_timeout,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        permanent = bool(codes) and all(c >= 500 for c in codes)
        raise SendError(f"recipient refused ({codes})", permanent=permanent) from None
    except aiosmtplib.SMTPResponseException as exc:
        # 5xx is a permanent refusal (RFC 5321 4.2.1); 4xx is "try again later".
        raise SendError(f"SMTP {exc.code}", permanent=exc.code >= 500) from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise SendError(f"SMTP unavailable ({type(exc).__name__})", permanent=False) from None
