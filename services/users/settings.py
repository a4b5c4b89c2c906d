"""Settings of the users service: the shared ones plus USERS_* fields."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field

from services.common.settings import CommonSettings


def _alias(name: str) -> Any:
    # USERS_ prefix in the environment; the bare field name still works in code and tests.
    return AliasChoices(f"USERS_{name.upper()}", name)


class UsersSettings(CommonSettings):
    service_name: str = "users"

    # Outbox relay + event consumer; tests that drive them by hand turn them off.
    background_tasks: bool = Field(default=True, validation_alias=_alias("background_tasks"))
    # Entries a dead consumer left pending this long are taken over by a live one.
    consumer_claim_idle_ms: int = Field(
        default=30_000, ge=100, validation_alias=_alias("consumer_claim_idle_ms")
    )
    consumer_batch: int = Field(
        default=50, ge=1, le=1000, validation_alias=_alias("consumer_batch")
    )
    profile_cache_ttl_seconds: int = Field(
        default=300, ge=1, validation_alias=_alias("profile_cache_ttl_seconds")
    )
