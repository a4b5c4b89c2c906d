"""Settings of the catalog service: the shared ones plus CATALOG_* fields."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field

from services.common.settings import CommonSettings


def _alias(name: str) -> Any:
    # CATALOG_ prefix in the environment; the bare field name still works in code and tests.
    return AliasChoices(f"CATALOG_{name.upper()}", name)


class CatalogSettings(CommonSettings):
    service_name: str = "catalog"

    # Outbox relay; tests that read the outbox by hand turn it off.
    background_tasks: bool = Field(default=True, validation_alias=_alias("background_tasks"))
    # Bulk import limits: one transaction, so keep it bounded.
    import_max_rows: int = Field(default=10_000, ge=1, validation_alias=_alias("import_max_rows"))
    import_max_bytes: int = Field(
        default=5 * 1024 * 1024, ge=1024, validation_alias=_alias("import_max_bytes")
    )
    # How long a stored Idempotency-Key answer is replayed.
    idempotency_ttl_hours: int = Field(
        default=24, ge=1, validation_alias=_alias("idempotency_ttl_hours")
    )
    # The measured fast reads (services/catalog/products/fast_reads.py): cache hits answered
    # before routing, misses read on a direct asyncpg pool. Off: the plain routes only.
    fast_reads: bool = Field(default=True, validation_alias=_alias("fast_reads"))
    # How long a cached product answer, and a cached list page, may be served.
    product_cache_ttl_seconds: int = Field(
        default=300, ge=1, validation_alias=_alias("product_cache_ttl_seconds")
    )
    list_cache_ttl_seconds: int = Field(
        default=60, ge=1, validation_alias=_alias("list_cache_ttl_seconds")
    )
