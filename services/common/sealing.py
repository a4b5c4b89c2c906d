"""Keys derived from operators' secrets, and values sealed for another process.

`derive_key` gives one key per purpose (HKDF-SHA256, RFC 5869): keys for different
purposes are independent and none is the bare hash of the secret. The production guard
(services.common.settings.weak_secret) makes sure the secret has the entropy HKDF needs.

`seal`/`unseal` carry a small JSON object through stores that must not hold it in
clear: Fernet (AES-128-CBC then HMAC-SHA256, authenticated), keyed from EMAIL_LINK_SECRET,
which only auth (seals) and the worker (unseals) have. Used for the links in emails: the
outbox row, the queued job in Redis and a dead letter hold only the sealed form.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# HKDF's salt (RFC 5869 3.1): fixed per application, so one secret gives keys unrelated
# to what any other software derives from it.
KDF_SALT = b"shopstack/kdf/v1"
EMAIL_LINK_PURPOSE = "email-links/v1"

__all__ = ["InvalidToken", "derive_key", "seal", "unseal"]


def derive_key(secret: str, purpose: str, length: int = 32) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=KDF_SALT, info=purpose.encode())
    return hkdf.derive(secret.encode("utf-8", "surrogatepass"))


def _fernet(secret: str, purpose: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(derive_key(secret, purpose)))


def seal(secret: str, data: dict[str, Any], purpose: str = EMAIL_LINK_PURPOSE) -> str:
    return _fernet(secret, purpose).encrypt(json.dumps(data).encode()).decode()


def unseal(secret: str, token: str, purpose: str = EMAIL_LINK_PURPOSE) -> dict[str, Any]:
    """The sealed object; InvalidToken if it was not sealed with this secret (or altered)."""
    data = json.loads(_fernet(secret, purpose).decrypt(token.encode()))
    if not isinstance(data, dict):
        raise InvalidToken
    return data
