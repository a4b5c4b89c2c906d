"""HTTP routes of the auth service (HTTP only: the rules live in service.py and sessions.py)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Cookie, Depends, Header, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import OAuth2PasswordBearer
from pydantic import BaseModel, ValidationError

from services.auth import service, sessions
from services.auth.context import AuthContext, Client
from services.auth.devices import DEVICE_COOKIE, DEVICE_HEADER, MAX_TOKEN_LENGTH
from services.auth.schemas import (
    Accepted,
    ChangePasswordRequest,
    EmailRequest,
    LoginForm,
    LoginRequest,
    RefreshRequest,
    RegisterRequest,
    ResetPasswordRequest,
    SessionList,
    TokenRequest,
    TokenResponse,
)
from services.common.db import SessionDep
from services.common.errors import parse_json_body
from services.common.security import CurrentUser
from services.common.settings import Environment
from services.common.state import provided, state_of

PREFIX = "/api/v1/auth"
router = APIRouter(prefix=PREFIX, tags=["auth"])
jwks_router = APIRouter(tags=["auth"])
# Declares the OAuth2 password flow in OpenAPI so Swagger's Authorize button logs in;
# verification itself is CurrentUser's job.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl=f"{PREFIX}/login", auto_error=False)
Authorized = [Depends(oauth2_scheme)]
ACCEPTED = "If the address can receive it, an email is on its way."
PROBLEMS: dict[int | str, dict[str, Any]] = {
    429: {"description": "Too many attempts (problem+json, Retry-After)"}
}


Ctx = Annotated[AuthContext, Depends(state_of(AuthContext))]


def client_ip(request: Request) -> str:
    """The caller's address. Under gunicorn, uvicorn's proxy-headers middleware has
    already replaced the peer by the gateway's X-Forwarded-For entry, and only when the
    peer is a trusted proxy (FORWARDED_ALLOW_IPS: the gateway's addresses): a header
    sent by anyone else, or written by the client, never becomes the address."""
    return request.client.host if request.client else "unknown"


def get_client(request: Request) -> Client:
    return Client(
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
    )


ClientDep = Annotated[Client, Depends(get_client)]


async def uniform_time(request: Request) -> AsyncIterator[None]:
    """Pads a successful answer to a fixed minimum duration, commit included (declared
    before SessionDep, so its exit runs after the session's commit): the writes made for
    an existing account must not be measurable (no account enumeration by timing)."""
    started = time.monotonic()
    yield
    floor = provided(request.app, AuthContext).settings.uniform_response_seconds
    await asyncio.sleep(max(0.0, floor - (time.monotonic() - started)))


# scope="function": exits before the response is sent, after the commit.
UniformTime = Depends(uniform_time, scope="function")


@router.post(
    "/register",
    status_code=status.HTTP_202_ACCEPTED,
    responses=PROBLEMS,
    dependencies=[UniformTime],
    name="register",
)
async def register(
    body: RegisterRequest, session: SessionDep, ctx: Ctx, client: ClientDep
) -> Accepted:
    """Create an unverified account and email a verification link. The answer is the same
    whether or not the address already has an account."""
    await service.register(session, ctx, body.email, body.password, client)
    return Accepted(detail=ACCEPTED)


@router.post("/verify-email", status_code=status.HTTP_204_NO_CONTENT, name="verifyEmail")
async def verify_email(body: TokenRequest, session: SessionDep, ctx: Ctx) -> Response:
    await service.verify_email(session, ctx, body.token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/verify-email/resend",
    status_code=status.HTTP_202_ACCEPTED,
    responses=PROBLEMS,
    dependencies=[UniformTime],
    name="resendVerification",
)
async def resend_verification(
    body: EmailRequest, session: SessionDep, ctx: Ctx, client: ClientDep
) -> Accepted:
    await service.resend_verification(session, ctx, body.email, client)
    return Accepted(detail=ACCEPTED)


_LOGIN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": LoginRequest.model_json_schema()},
            "application/x-www-form-urlencoded": {"schema": LoginForm.model_json_schema()},
        },
    }
}


def _validate(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None


async def _credentials(request: Request) -> tuple[str, str]:
    """JSON {email, password} or the OAuth2 password form {username, password}."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        parsed: LoginForm = _validate(LoginForm, fields)
        return parsed.username, parsed.password
    body: LoginRequest = _validate(LoginRequest, parse_json_body(await request.body()))
    return body.email, body.password


@router.post(
    "/login",
    openapi_extra=_LOGIN_BODY,
    responses={401: {"description": "Wrong email or password"}, **PROBLEMS},
    name="login",
)
async def login(
    request: Request,
    response: Response,
    session: SessionDep,
    ctx: Ctx,
    client: ClientDep,
    device_cookie: Annotated[
        str | None, Cookie(alias=DEVICE_COOKIE, max_length=MAX_TOKEN_LENGTH)
    ] = None,
    device_header: Annotated[
        str | None, Header(alias=DEVICE_HEADER, max_length=MAX_TOKEN_LENGTH)
    ] = None,
) -> TokenResponse:
    """Tokens for an email and password. The device token from an earlier login (cookie,
    or X-Device-Token for apps) keeps this device's logins apart from an attacker's
    lockout of the account (docs/auth.md)."""
    email, password = await _credentials(request)
    tokens = await sessions.login(
        session, ctx, email, password, client, device_header or device_cookie
    )
    response.set_cookie(
        DEVICE_COOKIE,
        tokens.device_token or "",
        max_age=ctx.settings.device_token_ttl_seconds,
        path=PREFIX,
        secure=ctx.settings.environment is Environment.production,
        httponly=True,
        samesite="strict",
    )
    return tokens


@router.post(
    "/refresh", responses={401: {"description": "Invalid, expired or reused"}}, name="refresh"
)
async def refresh(
    body: RefreshRequest, session: SessionDep, ctx: Ctx, client: ClientDep
) -> TokenResponse:
    """Rotate: the refresh token is spent, a new pair is returned. Presenting a spent
    token again revokes its whole session."""
    return await sessions.refresh(session, ctx, body.refresh_token, client)


@router.post(
    "/logout", status_code=status.HTTP_204_NO_CONTENT, dependencies=Authorized, name="logout"
)
async def logout(principal: CurrentUser, session: SessionDep, ctx: Ctx) -> Response:
    await sessions.logout(session, ctx, principal)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/logout-all", status_code=status.HTTP_204_NO_CONTENT, dependencies=Authorized, name="logoutAll"
)
async def logout_all(principal: CurrentUser, session: SessionDep, ctx: Ctx) -> Response:
    await sessions.logout_all(session, ctx, principal)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/password/forgot",
    status_code=status.HTTP_202_ACCEPTED,
    responses=PROBLEMS,
    dependencies=[UniformTime],
    name="forgotPassword",
)
async def forgot_password(
    body: EmailRequest, session: SessionDep, ctx: Ctx, client: ClientDep
) -> Accepted:
    await service.forgot_password(session, ctx, body.email, client)
    return Accepted(detail=ACCEPTED)


@router.post("/password/reset", status_code=status.HTTP_204_NO_CONTENT, name="resetPassword")
async def reset_password(body: ResetPasswordRequest, session: SessionDep, ctx: Ctx) -> Response:
    await service.reset_password(session, ctx, body.token, body.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/password/change",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=Authorized,
    name="changePassword",
)
async def change_password(
    body: ChangePasswordRequest, principal: CurrentUser, session: SessionDep, ctx: Ctx
) -> Response:
    await service.change_password(session, ctx, principal, body.current_password, body.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/sessions", dependencies=Authorized, name="listSessions")
async def list_sessions(principal: CurrentUser, session: SessionDep) -> SessionList:
    """The caller's live sessions, most recently used first (at most 100)."""
    return SessionList(items=await sessions.list_sessions(session, principal))


@router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=Authorized,
    name="deleteSession",
)
async def delete_session(
    session_id: uuid.UUID, principal: CurrentUser, session: SessionDep, ctx: Ctx
) -> Response:
    await sessions.delete_session(session, ctx, principal, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _jwks(ctx: AuthContext) -> Response:
    body = json.dumps(await ctx.keys.jwks(), separators=(",", ":"))
    # Short cache: a rotated key must reach verifiers well within the publish grace.
    return Response(
        body, media_type="application/json", headers={"Cache-Control": "public, max-age=60"}
    )


@jwks_router.get("/.well-known/jwks.json", summary="Public signing keys (JWKS)", name="getJwks")
async def jwks(ctx: Ctx) -> Response:
    return await _jwks(ctx)


@jwks_router.get(
    f"{PREFIX}/.well-known/jwks.json",
    summary="Public signing keys (JWKS)",
    name="getJwksUnderPrefix",
)
async def jwks_prefixed(ctx: Ctx) -> Response:
    return await _jwks(ctx)
