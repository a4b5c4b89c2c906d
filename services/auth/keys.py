"""RS256 signing keys kept in the auth schema, shared by every worker and replica.

The private key is stored encrypted (Fernet, key derived from AUTH_KEY_ENCRYPTION_SECRET
with HKDF). Keys encrypted before that (the key was one SHA-256 of the secret) still
decrypt, and `ensure_key` re-encrypts them at every start-up until none is left.
Creation and rotation take a transaction-scoped advisory lock, so workers that start
together create one key, not several.

Rotation: the new key is published at once and signs from `activates_at`; the
previous key is retired then but stays in the JWKS until every token it signed
has expired (access TTL + this service's key cache + leeway).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.auth.models import SigningKey
from services.auth.settings import AuthSettings
from services.auth.tokens import public_jwk
from services.common.clock import utcnow
from services.common.db import transaction
from services.common.sealing import derive_key

KEY_LOCK_ID = 0x61757468_6B657973 & 0x7FFFFFFFFFFFFFFF  # "authkeys": one advisory lock id


@dataclass(frozen=True, slots=True)
class ActiveKey:
    kid: str
    private_pem: str


KEY_ENCRYPTION_PURPOSE = "signing-key-encryption/v1"


def _fernet(secret: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(derive_key(secret, KEY_ENCRYPTION_PURPOSE)))


def _legacy_fernet(secret: str) -> Fernet:
    """The key of rows written before HKDF: read only, to re-encrypt them."""
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()))


def decrypt_private_key(secret: str, encrypted: str) -> str:
    return MultiFernet([_fernet(secret), _legacy_fernet(secret)]).decrypt(encrypted).decode()


async def reencrypt_legacy_keys(session: AsyncSession, settings: AuthSettings) -> int:
    """Re-encrypt with the HKDF key every private key still under the legacy key."""
    current, legacy = (
        _fernet(settings.key_encryption_secret),
        _legacy_fernet(settings.key_encryption_secret),
    )
    count = 0
    for key in await session.exec(select(SigningKey)):
        try:
            current.decrypt(key.private_key_encrypted)
            continue
        except InvalidToken:
            pass
        try:
            pem = legacy.decrypt(key.private_key_encrypted)
        except InvalidToken:
            continue  # another secret's key (a changed secret): signing reports it if live
        key.private_key_encrypted = current.encrypt(pem).decode()
        session.add(key)
        count += 1
    return count


def new_signing_key(settings: AuthSettings, activates_at: datetime | None = None) -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    kid = f"{utcnow():%Y%m%d}-{secrets.token_hex(6)}"
    encrypted = _fernet(settings.key_encryption_secret).encrypt(pem.encode()).decode()
    now = utcnow()
    return SigningKey(
        kid=kid,
        private_key_encrypted=encrypted,
        public_jwk=public_jwk(pem, kid),
        created_at=now,
        activates_at=activates_at or now,
    )


async def _lock(session: AsyncSession) -> None:
    await session.exec(select(func.pg_advisory_xact_lock(KEY_LOCK_ID)))


async def ensure_key(factory: async_sessionmaker[AsyncSession], settings: AuthSettings) -> bool:
    """Create the first key if there is no live one; True if this call created it."""
    async with transaction(factory) as session:
        await _lock(session)
        await reencrypt_legacy_keys(session, settings)
        live = await session.exec(
            select(SigningKey.kid).where(col(SigningKey.retired_at).is_(None)).limit(1)
        )
        if live.first() is not None:
            return False
        session.add(new_signing_key(settings))
        return True


async def rotate_key(factory: async_sessionmaker[AsyncSession], settings: AuthSettings) -> str:
    """Add a new key and retire the current one(s) when it activates; returns the new kid."""
    activates_at = utcnow() + timedelta(seconds=settings.key_activation_delay_seconds)
    async with transaction(factory) as session:
        await _lock(session)
        current = await session.exec(select(SigningKey).where(col(SigningKey.retired_at).is_(None)))
        for key in current:
            key.retired_at = activates_at
            session.add(key)
        new = new_signing_key(settings, activates_at)
        session.add(new)
        return new.kid


class KeyStore:
    """Reads keys from the database: the signing key cached per worker, the JWKS on demand."""

    def __init__(self, factory: async_sessionmaker[AsyncSession], settings: AuthSettings) -> None:
        self._factory = factory
        self._settings = settings
        self._active: ActiveKey | None = None
        self._loaded_at = 0.0
        self._decrypted: dict[str, str] = {}

    def invalidate(self) -> None:
        self._active = None

    @property
    def publish_grace(self) -> timedelta:
        s = self._settings
        return timedelta(
            seconds=s.access_token_ttl_seconds + s.key_cache_seconds + s.jwt_leeway_seconds + 60
        )

    async def _load(self) -> list[SigningKey]:
        cutoff = utcnow() - self.publish_grace
        async with self._factory() as session:
            rows = await session.exec(
                select(SigningKey)
                .where(
                    (col(SigningKey.retired_at).is_(None)) | (col(SigningKey.retired_at) > cutoff)
                )
                .order_by(col(SigningKey.activates_at).desc(), col(SigningKey.kid))
            )
            return list(rows)

    async def signing_key(self) -> ActiveKey:
        fresh = time.monotonic() - self._loaded_at < self._settings.key_cache_seconds
        if self._active is not None and fresh:
            return self._active
        now = utcnow()
        for key in await self._load():
            if key.activates_at <= now and (key.retired_at is None or key.retired_at > now):
                pem = self._decrypted.get(key.kid)
                if pem is None:
                    pem = decrypt_private_key(
                        self._settings.key_encryption_secret, key.private_key_encrypted
                    )
                    self._decrypted[key.kid] = pem
                self._active = ActiveKey(key.kid, pem)
                self._loaded_at = time.monotonic()
                return self._active
        raise RuntimeError("no active signing key: run `python -m services.auth.manage rotate-key`")

    async def jwks(self) -> dict[str, Any]:
        return {"keys": [dict(key.public_jwk) for key in await self._load()]}
