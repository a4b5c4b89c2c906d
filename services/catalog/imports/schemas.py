"""Response models of the bulk import."""

from __future__ import annotations

import uuid

from pydantic import BaseModel


class ImportRowError(BaseModel):
    """One problem of one row (row 0: the file as a whole), in a 422's `errors`."""

    row: int
    field: str
    message: str


class ImportResult(BaseModel):
    imported: int
    ids: list[uuid.UUID]
