"""Request and response models. Requests forbid unknown fields (422)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from services.common.params import NO_NUL

# Free text that reaches PostgreSQL or the hasher: no NUL, stated as a pattern (pydantic
# enforces it, and the schema says it). Lone surrogates (a JSON `\ud800` escape that
# pairs with nothing) are refused too, by `Request._encodable`: no JSON Schema pattern
# can name them (its regexes match Unicode scalar values; the fuzzer's validator refused
# a class that spelled them, and then dropped the pattern and sent NULs).
# Generous upper bounds: the password policy gives the precise message.
PasswordField = Field(min_length=1, max_length=1024, pattern=NO_NUL)
TokenField = Field(min_length=1, max_length=512, pattern=NO_NUL)


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    @field_validator("*", mode="after")
    @classmethod
    def _encodable(cls, value: object) -> object:
        # Text with a lone surrogate has no UTF-8 form: a 422, not a 500 at the database.
        if isinstance(value, str) and any("\ud800" <= ch <= "\udfff" for ch in value):
            raise ValueError("contains characters that are not allowed")
        return value


class RegisterRequest(Request):
    email: EmailStr
    password: str = PasswordField


class LoginRequest(Request):
    email: str = Field(min_length=1, max_length=320, pattern=NO_NUL)
    password: str = PasswordField


class LoginForm(Request):
    """The OAuth2 password grant (RFC 6749 4.3), as Swagger's Authorize button sends it."""

    # Optional, but never null: a form field cannot be null, so the schema offers none.
    grant_type: Literal["password"] = "password"
    username: str = Field(min_length=1, max_length=320, pattern=NO_NUL)
    password: str = PasswordField
    scope: str = Field(default="", max_length=1000, pattern=NO_NUL)
    client_id: str | None = Field(default=None, max_length=200, pattern=NO_NUL)
    client_secret: str | None = Field(default=None, max_length=200, pattern=NO_NUL)


class TokenRequest(Request):
    token: str = TokenField


class RefreshRequest(Request):
    refresh_token: str = TokenField


class EmailRequest(Request):
    email: EmailStr


class ResetPasswordRequest(Request):
    token: str = TokenField
    new_password: str = PasswordField


class ChangePasswordRequest(Request):
    current_password: str = PasswordField
    new_password: str = PasswordField


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - a scheme name, not a secret
    expires_in: int
    # Login only: the device token (docs/auth.md) for clients without a cookie jar; send
    # it back in X-Device-Token on the next login.
    device_token: str | None = None


class Accepted(BaseModel):
    detail: str


class SessionOut(BaseModel):
    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str | None
    ip: str | None
    current: bool


class SessionList(BaseModel):
    items: list[SessionOut]
