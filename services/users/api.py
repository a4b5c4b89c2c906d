"""HTTP routes of the users service (HTTP only; the rules live in service.py)."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response

from services.common.cache import Cache
from services.common.conditional import NOT_MODIFIED, etag, if_match_versions, none_match
from services.common.db import SessionDep
from services.common.pagination import (
    DEFAULT_LIMIT,
    CursorCodec,
    CursorQuery,
    LimitQuery,
    link_header,
)
from services.common.params import NO_NUL, IsoDateTime
from services.common.security import AdminUser, CurrentUser
from services.common.state import provided
from services.users import directory, service
from services.users.models import Profile
from services.users.schemas import (
    AdminUpdate,
    ProfileOut,
    ProfileUpdate,
    PublicProfile,
    Role,
    SortName,
    Status,
    UserPage,
)
from services.users.state import UsersState

router = APIRouter(prefix="/api/v1/users", tags=["users"])
IfMatch = Annotated[str | None, Header(alias="If-Match")]
IfNoneMatch = Annotated[str | None, Header(alias="If-None-Match")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such user"}}


def _cache(request: Request) -> Cache:
    return provided(request.app, UsersState).profile_cache


def _view(data: bytes, *, public: bool, if_none_match: str | None) -> Response:
    """The full or public view with its ETag, or 304 when the client's copy is current."""
    full = json.loads(data)
    tag = etag(int(full["version"]), "public" if public else None)
    headers = {"ETag": tag, "Cache-Control": "private, no-cache", "Vary": "Authorization"}
    if none_match(if_none_match, tag):
        return Response(status_code=304, headers=headers)
    body = PublicProfile.model_validate(full).model_dump_json().encode() if public else data
    return Response(body, media_type="application/json", headers=headers)


def _written(profile: Profile) -> Response:
    headers = {"ETag": etag(profile.version), "Cache-Control": "private, no-cache"}
    return Response(service.dump(profile), media_type="application/json", headers=headers)


@router.get(
    "/me", response_model=ProfileOut, summary="My profile", responses=NOT_MODIFIED, name="getMe"
)
async def get_me(
    request: Request, session: SessionDep, principal: CurrentUser, if_none_match: IfNoneMatch = None
) -> Response:
    data = await service.own_profile(session, _cache(request), principal)
    if json.loads(data)["status"] == "deleted":
        raise service.not_found()
    return _view(data, public=False, if_none_match=if_none_match)


@router.patch(
    "/me",
    response_model=ProfileOut,
    summary="Update my profile (If-Match optional: 412 on a stale ETag)",
    responses={412: {"description": "Stale ETag"}},
    name="updateMe",
)
async def patch_me(
    request: Request,
    session: SessionDep,
    principal: CurrentUser,
    body: ProfileUpdate,
    if_match: IfMatch = None,
) -> Response:
    versions = if_match_versions(if_match, required=False)
    profile = await service.update_own(
        session, _cache(request), principal, body.changes(), versions
    )
    return _written(profile)


@router.delete(
    "/me",
    status_code=204,
    summary="Delete my account (anonymise, sign out everywhere)",
    name="deleteMe",
)
async def delete_me(request: Request, session: SessionDep, principal: CurrentUser) -> Response:
    await service.delete_own(session, _cache(request), request.app.state.redis, principal)
    return Response(status_code=204)


@router.get("", response_model=UserPage, summary="The user directory (admins)", name="listUsers")
async def list_users(
    request: Request,
    response: Response,
    session: SessionDep,
    _admin: AdminUser,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
    sort: SortName = "created",
    role: Role | None = None,
    status: Status | None = None,
    created_after: IsoDateTime | None = None,
    created_before: IsoDateTime | None = None,
    q: Annotated[str | None, Query(min_length=1, max_length=100, pattern=NO_NUL)] = None,
) -> UserPage:
    codec = CursorCodec(request.app.state.settings.cursor_secret, "users")
    filters = directory.Filters(
        role, status, created_after, created_before, q.lower() if q else None
    )
    page = await directory.list_profiles(
        session, codec, filters=filters, sort=sort, cursor=cursor, limit=limit
    )
    link = link_header(request, page.next_cursor, page.prev_cursor)
    if link:
        response.headers["Link"] = link
    items = [ProfileOut.model_validate(row.profile, from_attributes=True) for row in page.items]
    return UserPage(items=items, next_cursor=page.next_cursor, prev_cursor=page.prev_cursor)


@router.get(
    "/{user_id}",
    response_model=ProfileOut | PublicProfile,
    summary="A user: public view, or the full view for the owner and admins",
    responses={**NOT_MODIFIED, **NOT_FOUND},
    name="getUser",
)
async def get_user(
    request: Request,
    session: SessionDep,
    principal: CurrentUser,
    user_id: uuid.UUID,
    if_none_match: IfNoneMatch = None,
) -> Response:
    own = user_id == service.principal_id(principal)
    if own:
        data: bytes | None = await service.own_profile(session, _cache(request), principal)
    else:
        data = await service.cached_profile(session, _cache(request), user_id)
    if data is None or json.loads(data)["status"] == "deleted":
        raise service.not_found()
    return _view(data, public=not (own or principal.is_admin), if_none_match=if_none_match)


@router.patch(
    "/{user_id}",
    response_model=ProfileOut,
    summary="Change a user's role or status (admins; If-Match required)",
    responses={**NOT_FOUND, 409: {"description": "Self-demotion"}, 412: {}, 428: {}},
    name="updateUser",
)
async def patch_user(
    request: Request,
    session: SessionDep,
    admin: AdminUser,
    user_id: uuid.UUID,
    body: AdminUpdate,
    if_match: IfMatch = None,
) -> Response:
    versions = if_match_versions(if_match, required=True)
    profile = await service.admin_update(
        session, _cache(request), request.app.state.redis, admin, user_id, body, versions
    )
    return _written(profile)
