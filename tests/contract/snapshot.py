"""The operationIds clients are generated from, held stable by a committed snapshot.

    python -m tests.contract.snapshot        # rewrite operation_ids.json from the code

Only for an intended change: a renamed or removed operationId renames or removes a
method of every generated client (a breaking change for every caller).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from services.common.openapi import HTTP_METHODS, OPERATION_ID

SNAPSHOT = Path(__file__).with_name("operation_ids.json")
UPDATE = "python -m tests.contract.snapshot"


def operation_ids(doc: Mapping[str, Any]) -> dict[str, str]:
    """`"<METHOD> <path>"` -> operationId of every operation of an OpenAPI document."""
    found: dict[str, str] = {}
    for path, item in (doc.get("paths") or {}).items():
        for method in HTTP_METHODS:
            if isinstance(item.get(method), dict):
                found[f"{method.upper()} {path}"] = str(item[method].get("operationId"))
    return dict(sorted(found.items()))


def load() -> dict[str, str]:
    data: dict[str, str] = json.loads(SNAPSHOT.read_text())
    return data


def problems(doc: Mapping[str, Any], snapshot: Mapping[str, str]) -> list[str]:
    """Every way `doc` breaks the contract, in words a reviewer can act on."""
    live = operation_ids(doc)
    out = []
    for key, expected in snapshot.items():
        if key not in live:
            out.append(f"{key} ({expected}) is gone: a breaking change for every generated client")
        elif live[key] != expected:
            out.append(
                f"{key}: operationId {expected!r} became {live[key]!r}: a breaking change for "
                f"clients (their method is renamed); keep the route's name= as it was"
            )
    for key in sorted(set(live) - set(snapshot)):
        out.append(f"{key} ({live[key]}) is new: add it to the snapshot ({UPDATE})")
    for key, op_id in live.items():
        if not OPERATION_ID.fullmatch(op_id):
            out.append(
                f"{key}: operationId {op_id!r} is not '<service>.<lowerCamelCase>': "
                f"give the route an explicit name= (docs/conventions.md)"
            )
    seen: dict[str, str] = {}
    for key, op_id in live.items():
        if op_id in seen:
            out.append(f"{key} and {seen[op_id]} share the operationId {op_id!r}")
        seen[op_id] = key
    for key, operation in _operations(doc):
        if not operation.get("tags"):
            out.append(f"{key} has no tag")
    return out


def _operations(doc: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", item[method])
        for path, item in (doc.get("paths") or {}).items()
        for method in HTTP_METHODS
        if isinstance(item.get(method), dict)
    ]


def main() -> None:
    from gateway.openapi import build_in_process

    ids = operation_ids(build_in_process())
    SNAPSHOT.write_text(json.dumps(ids, indent=2) + "\n")
    print(f"{SNAPSHOT}: {len(ids)} operations")


if __name__ == "__main__":
    main()
