"""Operator actions shared by the management command and the development bootstrap."""

from __future__ import annotations

import time

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from services.auth.models import Account, Outbox
from services.auth.passwords import PasswordHasher
from services.auth.rules import account_by_email, check_password_policy, normalise_email
from services.common.clock import utcnow
from services.common.db import transaction
from services.common.outbox import add_event
from services.common.revocation import revoke_user_tokens


class AdminError(Exception):
    """Refused; the message is for the operator."""


async def create_admin(
    factory: async_sessionmaker[AsyncSession], hasher: PasswordHasher, email: str, password: str
) -> Account:
    """A verified admin account; refused if the email is taken or the password weak."""
    email = normalise_email(email)
    if "@" not in email:
        raise AdminError("not an email address")
    check_password_policy(password, email, "password")
    password_hash = await hasher.hash(password)
    async with transaction(factory) as session:
        if await account_by_email(session, email) is not None:
            raise AdminError("an account with this email already exists (use promote)")
        moment = utcnow()
        account = Account(
            email=email,
            password_hash=password_hash,
            role="admin",
            email_verified=True,
            created_at=moment,
            updated_at=moment,
        )
        session.add(account)
        add_event(
            session,
            Outbox,
            "user.registered",
            {
                "user_id": str(account.id),
                "email": email,
                "role": "admin",
                "created_at": moment.isoformat(),
            },
        )
    return account


def change_role(session: AsyncSession, account: Account, role: str) -> bool:
    """The one way auth itself changes a role: the account row and a `user.role_changed`
    event in the same transaction, so the users service (the directory, and the admin
    who later demotes) sees the same role. False if the account already has it."""
    if account.role == role:
        return False
    account.role = role
    account.updated_at = utcnow()
    session.add(account)
    add_event(session, Outbox, "user.role_changed", {"user_id": str(account.id), "role": role})
    return True


async def promote(
    factory: async_sessionmaker[AsyncSession], redis: aioredis.Redis, email: str
) -> Account:
    """Make an account admin; its current tokens die so new ones carry the role."""
    async with transaction(factory) as session:
        account = await account_by_email(session, email)
        if account is None:
            raise AdminError("no account with this email")
        change_role(session, account, "admin")
    await revoke_user_tokens(redis, str(account.id), at=time.time())
    return account
