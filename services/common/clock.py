"""The one clock: timezone-aware UTC, so every timestamp the services store compares alike."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
