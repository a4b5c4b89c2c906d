"""Request and response models of the category endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

from services.catalog.fields import Cursor, Limit, Name, Omittable, Strict

CategorySort = Literal["name", "newest"]
Slug = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=100),
]


class CategoryCreate(Strict):
    slug: Slug
    name: Name
    parent_id: uuid.UUID | None = None


class CategoryUpdate(Strict):
    """Partial update; parent_id null makes the category a root."""

    slug: Omittable[Slug] = None
    name: Omittable[Name] = None
    parent_id: uuid.UUID | None = None


class CategoryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    parent_id: uuid.UUID | None
    slug: str
    name: str
    created_at: datetime
    updated_at: datetime
    version: int


class CategoryListQuery(Strict):
    limit: Limit = 20
    cursor: Cursor = None
    sort: CategorySort = "name"
    parent: uuid.UUID | None = None
    # true: only top-level categories
    root: bool | None = None
