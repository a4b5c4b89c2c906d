"""The worker's SMTP client against a relay that demands STARTTLS and AUTH (aiosmtpd with
a certificate made here): it upgrades, verifies the certificate against SMTP_CA_FILE,
logs in; a wrong password or a plain-text session delivers nothing."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.worker.mailer import Envelope, SendError, build_message, send
from services.worker.rendering import render
from services.worker.settings import WorkerSettings
from tests.integration.worker.smtp import SinkHandler, free_port

USER, PASSWORD = "relay-user", "relay-secret"


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "relay.pem", directory / "relay.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok)


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[tuple[SinkHandler, int, Path]]:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    handler, port = SinkHandler(), free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        auth_require_tls=True,
        authenticator=authenticate,
    )
    controller.start()
    yield handler, port, cert
    controller.stop()


def message(settings: WorkerSettings) -> Any:
    email = render("verify_email", {"link": "https://app.example/verify-email?token=t"}, "en")
    return build_message(email, Envelope(to="ann@example.com", outbox_id="outbox-1"), settings)


def relay_settings(port: int, ca: Path, **overrides: Any) -> WorkerSettings:
    values: dict[str, Any] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_starttls": True,
        "smtp_username": USER,
        "smtp_password": PASSWORD,
        "smtp_ca_file": str(ca),
        "smtp_timeout": 5.0,
    }
    return WorkerSettings(**(values | overrides))


async def test_starttls_and_auth_deliver(relay: tuple[SinkHandler, int, Path]) -> None:
    handler, port, ca = relay
    settings = relay_settings(port, ca)
    await send(message(settings), settings)
    assert len(handler.messages) == 1


async def test_wrong_password_and_plain_text_are_refused(
    relay: tuple[SinkHandler, int, Path],
) -> None:
    handler, port, ca = relay
    wrong = relay_settings(port, ca, smtp_password="guess", smtp_timeout=1.0)
    with pytest.raises(SendError):
        await send(message(wrong), wrong)
    plain = relay_settings(port, ca, smtp_starttls=False, smtp_username=None, smtp_password=None)
    with pytest.raises(SendError):  # the relay demands STARTTLS first
        await send(message(plain), plain)
    assert handler.messages == []
