"""Business rules of the users service: profiles, the admin directory, status and role changes.

Writes commit explicitly and only then invalidate the cache, so a reader can never
re-cache the old row after the invalidation. Concurrent writers are serialised by the
row version (UPDATE ... WHERE version = :v) or a row lock, never by luck.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common import problems
from services.common.cache import Cache
from services.common.clock import utcnow
from services.common.conditional import check_version
from services.common.db import after_commit, commit
from services.common.errors import ProblemError
from services.common.jwt import Principal
from services.common.outbox import add_event
from services.common.redis import REDIS_ERRORS
from services.common.revocation import revoke_user_tokens
from services.users.models import Outbox, Profile
from services.users.schemas import AdminUpdate, ProfileOut

Versions = Collection[int] | None  # None: no If-Match precondition
SELF_CHANGE_REFUSED = problems.register("self-change-refused", 409)


def profile_key(cache: Cache, user_id: uuid.UUID | str) -> str:
    return cache.key("v1", str(user_id))


def dump(profile: Profile) -> bytes:
    """The full view as JSON bytes: what the cache stores and GET returns."""
    return ProfileOut.model_validate(profile, from_attributes=True).model_dump_json().encode()


def not_found() -> ProblemError:
    return problems.not_found("user")


def principal_id(principal: Principal) -> uuid.UUID:
    """The caller's profile id; a token whose subject is not a UUID is not one of ours."""
    try:
        return uuid.UUID(principal.user_id)
    except ValueError as exc:
        raise problems.unauthorized("The token's subject is not a user id.") from exc


async def invalidate(cache: Cache, user_id: uuid.UUID | str) -> None:
    await cache.delete(profile_key(cache, user_id))


def invalidate_after_commit(session: AsyncSession, cache: Cache, user_id: uuid.UUID | str) -> None:
    """Drop the cached profile once the change is committed: a reader in between
    cannot cache the old state again."""

    async def drop() -> None:
        await invalidate(cache, user_id)

    after_commit(session, drop, key=f"invalidate:{user_id}")


async def ensure_profile(session: AsyncSession, principal: Principal) -> None:
    """Create the profile from the token's claims if the registration event has not
    arrived yet (race-safe: ON CONFLICT DO NOTHING). The email comes with the event."""
    role = principal.role if principal.role in ("user", "admin") else "user"
    await _create_profile_if_missing(session, principal_id(principal), role)


async def _create_profile_if_missing(session: AsyncSession, user_id: uuid.UUID, role: str) -> None:
    """A profile before its registration event (which then fills in the email)."""
    now = utcnow()
    await session.exec(
        insert(Profile)
        .values(
            id=user_id,
            display_name="",
            role=role,
            status="active",
            created_at=now,
            updated_at=now,
            version=1,
        )
        .on_conflict_do_nothing(index_elements=["id"])
    )


async def upsert_registered(
    session: AsyncSession, user_id: uuid.UUID, email: str, role: str, created_at: datetime | None
) -> None:
    """Apply `user.registered`: create the profile, or fill the email of one created from
    a token. A deleted profile stays anonymised."""
    now = utcnow()
    table: Any = Profile.__table__  # type: ignore[attr-defined]
    stmt = insert(Profile).values(
        id=user_id,
        email=email.lower(),
        display_name="",
        role=role,
        status="active",
        created_at=created_at or now,
        updated_at=now,
        version=1,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["id"],
        set_={"email": stmt.excluded.email, "version": table.c.version + 1, "updated_at": now},
        where=table.c.email.is_(None) & (table.c.status != "deleted"),
    )
    await session.exec(stmt)


async def apply_role(session: AsyncSession, user_id: uuid.UUID, role: str) -> bool:
    """Apply a `user.role_changed` made elsewhere (no event: it is one); True if changed."""
    stmt = select(Profile).where(Profile.id == user_id).with_for_update()
    profile = (await session.exec(stmt)).first()
    if profile is None:
        # The change overtook `user.registered` (another stream): create the profile with
        # its role now; the registration then fills in the email and keeps the role.
        await _create_profile_if_missing(session, user_id, role)
        return True
    if profile.status == "deleted" or profile.role == role:
        return False
    profile.role = role
    profile.version += 1
    profile.updated_at = utcnow()
    session.add(profile)
    return True


async def load(session: AsyncSession, user_id: uuid.UUID) -> Profile | None:
    return (await session.exec(select(Profile).where(Profile.id == user_id))).first()


async def cached_profile(session: AsyncSession, cache: Cache, user_id: uuid.UUID) -> bytes | None:
    """Full-view JSON of any profile (deleted ones included), from the cache or the DB."""

    async def loader() -> bytes | None:
        profile = await load(session, user_id)
        return None if profile is None else dump(profile)

    return await cache.get_or_load(profile_key(cache, user_id), loader)


async def own_profile(session: AsyncSession, cache: Cache, principal: Principal) -> bytes:
    """The caller's profile; created on first access so GET /me never fails after signup."""
    user_id = principal_id(principal)
    data = await cached_profile(session, cache, user_id)
    if data is None:
        await ensure_profile(session, principal)
        invalidate_after_commit(session, cache, user_id)  # drop the cached "not found"
        await commit(session)  # the profile exists for the read below and for others
        data = await cached_profile(session, cache, user_id)
    if data is None:
        raise not_found()
    return data


async def update_own(
    session: AsyncSession,
    cache: Cache,
    principal: Principal,
    changes: dict[str, Any],
    versions: Versions,
) -> Profile:
    user_id = principal_id(principal)
    await ensure_profile(session, principal)
    values = dict(changes)
    if "display_name" in values and values["display_name"] is None:
        values["display_name"] = ""
    stmt = (
        update(Profile)
        .where(col(Profile.id) == user_id, col(Profile.status) == "active")
        .values(**values, version=col(Profile.version) + 1, updated_at=utcnow())
        .returning(Profile)
    )
    if versions is not None:
        stmt = stmt.where(col(Profile.version).in_(list(versions)))
    row = (await session.exec(stmt)).scalars().first()
    if row is None:
        current = await load(session, user_id)
        if current is None or current.status == "deleted":
            raise not_found()
        if current.status != "active":
            raise problems.ACCOUNT_DISABLED("This account is disabled.")
        raise problems.stale("profile")
    invalidate_after_commit(session, cache, user_id)
    profile: Profile = row
    return profile


async def _revoke(redis: aioredis.Redis, user_id: str) -> None:
    """Kill every token of the user now; refuse the change if Redis cannot record it."""
    try:
        await revoke_user_tokens(redis, user_id, at=time.time())
    except REDIS_ERRORS as exc:
        raise problems.unavailable("The change cannot be applied right now; try again.", 2) from exc


async def delete_own(
    session: AsyncSession, cache: Cache, redis: aioredis.Redis, principal: Principal
) -> None:
    """Anonymise the profile, tell auth (`user.deleted`) and revoke every token at once."""
    user_id = principal_id(principal)
    await ensure_profile(session, principal)
    stmt = (
        update(Profile)
        .where(col(Profile.id) == user_id, col(Profile.status) != "deleted")
        .values(
            status="deleted",
            email=None,
            display_name="",
            bio=None,
            avatar_url=None,
            locale=None,
            time_zone=None,
            version=col(Profile.version) + 1,
            updated_at=utcnow(),
        )
        .returning(col(Profile.id))
    )
    if (await session.exec(stmt)).first() is None:
        raise not_found()
    add_event(session, Outbox, "user.deleted", {"user_id": str(user_id)})
    # Revoked before the commit: if Redis is down the deletion is refused, never half done.
    await _revoke(redis, str(user_id))
    invalidate_after_commit(session, cache, user_id)


async def admin_update(
    session: AsyncSession,
    cache: Cache,
    redis: aioredis.Redis,
    admin: Principal,
    target_id: uuid.UUID,
    body: AdminUpdate,
    versions: Versions,
) -> Profile:
    """Change role and/or status under a row lock; emit events and revoke tokens on change."""
    if target_id == principal_id(admin) and (
        (body.role is not None and body.role != "admin") or body.status == "disabled"
    ):
        raise SELF_CHANGE_REFUSED("Admins cannot demote or disable themselves.")
    stmt = select(Profile).where(Profile.id == target_id).with_for_update()
    profile = (await session.exec(stmt)).first()
    if profile is None or profile.status == "deleted":
        raise not_found()
    check_version(versions, profile.version, what="profile")
    events: list[tuple[str, dict[str, Any]]] = []
    if body.role is not None and body.role != profile.role:
        profile.role = body.role
        events.append(("user.role_changed", {"user_id": str(target_id), "role": body.role}))
    if body.status is not None and body.status != profile.status:
        topic = "user.deactivated" if body.status == "disabled" else "user.reactivated"
        profile.status = body.status
        events.append((topic, {"user_id": str(target_id)}))
    if not events:
        return profile  # nothing changed: no new version, no events
    profile.version += 1
    profile.updated_at = utcnow()
    session.add(profile)
    for topic, data in events:
        add_event(session, Outbox, topic, data)
    if any(topic != "user.reactivated" for topic, _ in events):
        # Tokens carry the role and the account's standing: the old ones must die now.
        await _revoke(redis, str(target_id))
    invalidate_after_commit(session, cache, target_id)
    return profile
