"""Request and response models of the users service.

Requests forbid unknown fields, so id, email, role or status sent to PATCH /me is a 422
(no mass assignment).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from services.common.params import NO_NUL
from services.common.urls import PublicHttpsUrl

Role = Literal["user", "admin"]
Status = Literal["active", "disabled", "deleted"]

# BCP 47-ish: language (2-3 letters), optional script, region and variants ("en", "pt-BR",
# "zh-Hant-TW", "de-CH-1996"). Enough to drive formatting; not a full RFC 5646 parser.
_LOCALE = re.compile(
    r"^[A-Za-z]{2,3}(-[A-Za-z]{4})?(-([A-Za-z]{2}|[0-9]{3}))?(-([A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*$"
)


# The time-zone names zoneinfo may open (a path-safe shape; the zone must also exist).
_TIME_ZONE = re.compile(r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$")


def _locale(value: str) -> str:
    if len(value) > 35 or not _LOCALE.fullmatch(value):
        raise ValueError("must be a BCP 47 language tag such as 'en' or 'pt-BR'")
    return value


def _time_zone(value: str) -> str:
    # zoneinfo treats the key as a path: refuse anything that is not a plain zone name first.
    if len(value) > 64 or not _TIME_ZONE.fullmatch(value):
        raise ValueError("must be an IANA time zone such as 'Europe/Paris'")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("must be an IANA time zone such as 'Europe/Paris'") from exc
    return value


def _display_name(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must not contain control characters")
    return value


DisplayName = Annotated[
    str, Field(min_length=1, max_length=100, pattern=NO_NUL), AfterValidator(_display_name)
]
Bio = Annotated[str, Field(max_length=1000, pattern=NO_NUL)]
AvatarUrl = PublicHttpsUrl
# The schema states what the validators enforce (a schema-driven client checks the same).
Locale = Annotated[
    str,
    Field(
        min_length=2,
        max_length=35,
        description="A BCP 47 language tag: language, optional script, region and variants.",
        json_schema_extra={"pattern": _LOCALE.pattern},
        examples=["en", "pt-BR", "zh-Hant-TW"],
    ),
    AfterValidator(_locale),
]
TimeZone = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        description="An IANA time zone name that exists in the tz database.",
        json_schema_extra={"pattern": _TIME_ZONE.pattern},
        examples=["Europe/Paris", "America/Sao_Paulo", "UTC"],
    ),
    AfterValidator(_time_zone),
]


class ProfileUpdate(BaseModel):
    """PATCH /users/me: only the fields a user owns. null clears an optional field."""

    model_config = ConfigDict(extra="forbid")

    display_name: DisplayName | None = None
    bio: Bio | None = None
    avatar_url: AvatarUrl | None = None
    locale: Locale | None = None
    time_zone: TimeZone | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> ProfileUpdate:
        if not self.model_fields_set:
            raise ValueError("at least one field must be given")
        if "display_name" in self.model_fields_set and self.display_name is None:
            raise ValueError("display_name cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class AdminUpdate(BaseModel):
    """PATCH /users/{id} by an admin: role and/or status. `deleted` is the user's own act."""

    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    status: Literal["active", "disabled"] | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> AdminUpdate:
        if self.role is None and self.status is None:
            raise ValueError("give role and/or status")
        return self


class PublicProfile(BaseModel):
    """What any signed-in user may see of another user."""

    id: uuid.UUID
    display_name: str | None
    avatar_url: str | None


class ProfileOut(PublicProfile):
    """The full view: the owner and admins."""

    email: str | None
    bio: str | None
    locale: str | None
    time_zone: str | None
    role: Role
    status: Status
    created_at: datetime
    updated_at: datetime
    version: int


class UserPage(BaseModel):
    items: list[ProfileOut]
    next_cursor: str | None = None
    prev_cursor: str | None = None


SortName = Literal["created", "-created", "name", "-name"]
