"""Post-generation fix for openapi-python-client 0.29.1: an operation whose body has
several content types (auth.login: JSON, or the OAuth2 form Swagger UI sends) uses
`Unset` in its signature without importing it. Adds the missing name to the module's
`from ...types import` line; does nothing once the generator gets it right.

    python fix_imports.py <generated project dir>   (a post_hook in config.yaml)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

IMPORT = re.compile(r"^from (\.+)types import (.+)$", re.MULTILINE)


def fix(path: Path) -> bool:
    text = path.read_text()
    match = IMPORT.search(text)
    if not match or not re.search(r"\bUnset\b", text[match.end() :]):
        return False
    names = [n.strip() for n in match.group(2).split(",")]
    if "Unset" in names:
        return False
    line = f"from {match.group(1)}types import {', '.join([*names, 'Unset'])}"
    path.write_text(text[: match.start()] + line + text[match.end() :])
    return True


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    fixed = [p for p in sorted(root.rglob("*.py")) if fix(p)]
    for path in fixed:
        print(f"fix_imports: added Unset to {path}")


if __name__ == "__main__":
    main()
