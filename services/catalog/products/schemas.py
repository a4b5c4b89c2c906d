"""Request and response models of the product endpoints.

Prices are exact decimals and travel as strings in JSON, so no client ever rounds
through a float.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.catalog.fields import Cursor, Limit, Name, Omittable, Strict
from services.common.params import JSON_INTEGER, NO_NUL
from services.common.urls import PublicHttpsUrl

ProductStatus = Literal["draft", "active", "archived"]
ProductSort = Literal["newest", "oldest", "price_asc", "price_desc", "name"]

Sku = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
]
Description = Annotated[str, StringConstraints(max_length=10_000, pattern=NO_NUL)]
Price = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]
# ISO 4217 alphabetic code: three upper-case letters.
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Stock = Annotated[int, Field(ge=0, le=2_147_483_647), JSON_INTEGER]
ImageUrls = Annotated[list[PublicHttpsUrl], Field(max_length=20)]


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
    """Partial update; stock changes go through the atomic /stock endpoint instead.
    Only category_id takes null (the product leaves its category)."""

    sku: Omittable[Sku] = None
    name: Omittable[Name] = None
    description: Omittable[Description] = None
    price: Omittable[Price] = None
    currency: Omittable[Currency] = None
    status: Omittable[ProductStatus] = None
    category_id: uuid.UUID | None = None
    image_urls: Omittable[ImageUrls] = None


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
    limit: Limit = 20
    cursor: Cursor = None
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
