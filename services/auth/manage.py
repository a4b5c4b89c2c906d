"""Operator commands of the auth service.

    python -m services.auth.manage create-admin --email a@b.c [--password-stdin]
    python -m services.auth.manage promote --email a@b.c
    python -m services.auth.manage rotate-key

Settings come from the environment, as for the service (DATABASE_URL, REDIS_URL, AUTH_*).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Sequence

from services.auth.admin import AdminError, create_admin, promote
from services.auth.keys import rotate_key
from services.auth.passwords import PasswordHasher
from services.auth.settings import AuthSettings
from services.common.db import create_engine, session_factory
from services.common.errors import ProblemError
from services.common.redis import create_redis


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat: "):
        raise AdminError("the passwords differ")
    return first


async def _run(args: argparse.Namespace, settings: AuthSettings) -> str:
    engine = create_engine(settings, pool_size=1, max_overflow=0)
    factory = session_factory(engine)
    redis = create_redis(settings.redis_url, settings.redis_timeout)
    try:
        if args.command == "create-admin":
            hasher = PasswordHasher.for_settings(settings)
            account = await create_admin(
                factory, hasher, args.email, _password(args.password_stdin)
            )
            return f"admin created: {account.id}"
        if args.command == "promote":
            account = await promote(factory, redis, args.email)
            return f"promoted to admin: {account.id}"
        kid = await rotate_key(factory, settings)
        return f"new signing key: {kid}"
    finally:
        await redis.aclose()
        await engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.auth.manage",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-admin", help="create a verified admin account")
    create.add_argument("--email", required=True)
    create.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin",
    )
    commands.add_parser("promote", help="give an account the admin role").add_argument(
        "--email", required=True
    )
    commands.add_parser("rotate-key", help="add a new signing key, retire the current one")
    args = parser.parse_args(argv)
    try:
        print(asyncio.run(_run(args, AuthSettings())))
    except AdminError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ProblemError as exc:
        problems = [e["message"] for e in exc.extra.get("errors", [])] or [str(exc)]
        print("error: " + " ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
