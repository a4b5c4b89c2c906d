"""Field types and rules shared by the catalog's request schemas.

Requests forbid unknown fields (a typo or a read-only field is a 422). A partial update
leaves out what it does not change; `Omittable[T]` is such a field that may not be null
(the OpenAPI offers no null for it, and an explicit null is a 422), while `T | None` is
one where null is a value (no category, no parent).
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from services.common.params import NO_NUL

T = TypeVar("T")

Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=NO_NUL),
]
Limit = Annotated[int, Field(ge=1, le=100)]
Cursor = Annotated[str | None, Field(max_length=2048)]


def _not_null(value: Any) -> Any:
    # Runs only on a value the client sent: a left-out field keeps its default, unvalidated.
    if value is None:
        raise PydanticCustomError("null", "cannot be null")
    return value


Omittable = Annotated[T | SkipJsonSchema[None], AfterValidator(_not_null)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
