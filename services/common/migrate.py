"""Upgrade (or downgrade) every service's schema with one command.

python -m services.common.migrate upgrade            # all to head
python -m services.common.migrate downgrade          # all to base
python -m services.common.migrate upgrade auth       # one service
"""

from __future__ import annotations

import argparse
from pathlib import Path

from alembic import command
from alembic.config import Config

from services.registry import SCHEMAS

ROOT = Path(__file__).resolve().parents[2]
ALEMBIC_INI = ROOT / "alembic.ini"


def environments() -> list[str]:
    """Every service's Alembic environment, in the registry's order (the order they run in)."""
    return list(SCHEMAS)


def config_for(name: str, database_url: str | None = None) -> Config:
    config = Config(str(ALEMBIC_INI), ini_section=name)
    location = config.get_main_option("script_location") or f"migrations/{name}"
    config.set_main_option("script_location", str(ROOT / location))
    if database_url:
        config.attributes["database_url"] = database_url
    return config


def upgrade_all(database_url: str | None = None, names: list[str] | None = None) -> None:
    for name in names if names is not None else environments():
        command.upgrade(config_for(name, database_url), "head")


def downgrade_all(database_url: str | None = None, names: list[str] | None = None) -> None:
    for name in reversed(names if names is not None else environments()):
        command.downgrade(config_for(name, database_url), "base")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["upgrade", "downgrade"])
    parser.add_argument("services", nargs="*", help="default: every service")
    args = parser.parse_args()
    if args.action == "upgrade":
        upgrade_all(names=args.services or None)
    else:
        downgrade_all(names=args.services or None)


if __name__ == "__main__":
    main()
