"""Request and response models of the catalog API.

Requests forbid unknown fields (a typo or a read-only field is a 422). Prices are
exact decimals and travel as strings in JSON, so no client ever rounds through a float.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.common.params import JSON_INTEGER, NO_NUL
from services.common.urls import PublicHttpsUrl

ProductStatus = Literal["draft", "active", "archived"]
ProductSort = Literal["newest", "oldest", "price_asc", "price_desc", "name"]
CategorySort = Literal["name", "newest"]

Sku = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
]
Slug = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=100),
]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=NO_NUL),
]
Description = Annotated[str, StringConstraints(max_length=10_000, pattern=NO_NUL)]
Price = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]
# ISO 4217 alphabetic code: three upper-case letters.
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Stock = Annotated[int, Field(ge=0, le=2_147_483_647), JSON_INTEGER]


ImageUrls = Annotated[list[PublicHttpsUrl], Field(max_length=20)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProductCreate(Strict):
    sku: Sku
    name: Name
    description: Description = ""
    price: Price
    currency: Currency
    stock: Stock = 0
    status: ProductStatus = "draft"
    category_id: uuid.UUID | None = None
    image_urls: ImageUrls = Field(default_factory=list)


class ProductUpdate(Strict):
    """Partial update; stock changes go through the atomic /stock endpoint instead."""

    sku: Sku | None = None
    name: Name | None = None
    description: Description | None = None
    price: Price | None = None
    currency: Currency | None = None
    status: ProductStatus | None = None
    category_id: uuid.UUID | None = None
    image_urls: ImageUrls | None = None


class StockChange(Strict):
    delta: Annotated[int, Field(ge=-1_000_000, le=1_000_000), JSON_INTEGER]


class ProductOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    sku: str
    name: str
    description: str
    price: Decimal
    currency: str
    stock: int
    status: str
    category_id: uuid.UUID | None
    image_urls: list[str]
    created_at: datetime
    updated_at: datetime
    version: int


class ProductListQuery(Strict):
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    cursor: Annotated[str | None, Field(max_length=2048)] = None
    sort: ProductSort = "newest"
    category: uuid.UUID | None = None
    min_price: Price | None = None
    max_price: Price | None = None
    in_stock: bool | None = None
    status: ProductStatus | None = None
    q: Annotated[
        str | None,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=NO_NUL),
    ] = None


class CategoryCreate(Strict):
    slug: Slug
    name: Name
    parent_id: uuid.UUID | None = None


class CategoryUpdate(Strict):
    slug: Slug | None = None
    name: Name | None = None
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
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    cursor: Annotated[str | None, Field(max_length=2048)] = None
    sort: CategorySort = "name"
    parent: uuid.UUID | None = None
    # true: only top-level categories
    root: bool | None = None


class ImportRowError(BaseModel):
    row: int
    field: str
    message: str


class ImportResult(BaseModel):
    imported: int
    ids: list[uuid.UUID]
