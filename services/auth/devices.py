"""Device tokens: OWASP's "Slow Down Online Guessing Attacks with Device Cookies".

A successful login hands the client a token naming the account (HMAC-SHA256 over the
email, a random device id and the issue time; key derived from AUTH_KEY_ENCRYPTION_SECRET).
A later login that presents a valid token for the same account is counted against that
device's own limit and lockout, not the account's shared "untrusted clients" lockout, so
someone who knows only the email can lock out every client but the owner's devices.
Browsers get it as an HttpOnly cookie; apps without a cookie jar get it in the login
response (`device_token`) and send it back in the X-Device-Token header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from services.common.sealing import derive_key

DEVICE_COOKIE = "device_token"
DEVICE_HEADER = "X-Device-Token"
MAX_TOKEN_LENGTH = 200
PURPOSE = "device-tokens/v1"


class DeviceTokens:
    def __init__(self, secret: str, ttl_seconds: int) -> None:
        self._key = derive_key(secret, PURPOSE)
        self.ttl_seconds = ttl_seconds

    def _mac(self, email: str, device: str, issued: int) -> str:
        message = f"{email}\x00{device}\x00{issued}".encode("utf-8", "surrogatepass")
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def issue(self, email: str) -> str:
        device, issued = secrets.token_urlsafe(16), int(time.time())
        return f"{device}.{issued}.{self._mac(email, device, issued)}"

    def device(self, token: str | None, email: str) -> str | None:
        """The device id if `token` is ours, unexpired and names this account, else None."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        parts = token.split(".")
        if len(parts) != 3 or not parts[1].isdigit() or len(parts[1]) > 12:
            return None
        device, issued_text, mac = parts
        issued = int(issued_text)
        if not 0 <= time.time() - issued <= self.ttl_seconds:
            return None
        if not hmac.compare_digest(mac.encode(), self._mac(email, device, issued).encode()):
            return None
        return device
