"""Parameter types shared by the routes, strict where pydantic's lax parsing would
accept what the OpenAPI document says is invalid."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator

# A date-time per RFC 3339: a date, "T" or a space, a time. Pydantic alone also reads
# "0.5" or "1700000000" as Unix timestamps, which `format: date-time` does not allow.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _rfc3339(value: Any) -> Any:
    if isinstance(value, str) and not _RFC3339.match(value):
        raise ValueError("expected an RFC 3339 date-time such as 2024-05-01T12:00:00Z")
    return value


IsoDateTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]

# PostgreSQL text cannot hold NUL (services/common/db.py refuses it with a 422): free
# text that reaches the database says so in its schema, for clients and the fuzzer.
NO_NUL = r"^[^\x00]*$"


def _json_integer(value: Any) -> Any:
    # JSON Schema's `integer` is 5 or 5.0; pydantic's lax mode also takes true and "5",
    # its strict mode refuses 5.0. Refuse just what the schema refuses.
    if isinstance(value, bool | str):
        raise ValueError("expected an integer")
    return value


# Last in an Annotated[int, Field(...), JSON_INTEGER]: after the constraints, so they
# stay in the OpenAPI schema as minimum/maximum.
JSON_INTEGER = BeforeValidator(_json_integer)
