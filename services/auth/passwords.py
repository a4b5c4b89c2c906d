"""Password hashing (argon2id via passlib) and the password policy.

Hashing costs tens of milliseconds of CPU, so it always runs in a worker thread,
never on the event loop.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from anyio import to_thread
from passlib.context import CryptContext

MIN_LENGTH = 8
MAX_LENGTH = 128


class PasswordHasher:
    """argon2id with configurable cost; knows when a stored hash needs re-hashing."""

    def __init__(self, *, memory_kib: int, time_cost: int, parallelism: int) -> None:
        self._context = CryptContext(
            schemes=["argon2"],
            argon2__type="ID",
            argon2__memory_cost=memory_kib,
            argon2__time_cost=time_cost,
            argon2__parallelism=parallelism,
        )
        # Verified when the account does not exist, so a miss costs as much as a hit.
        self._dummy = self._context.hash("dummy password for timing equalisation")

    async def hash(self, password: str) -> str:
        result: str = await to_thread.run_sync(self._context.hash, password)
        return result

    async def verify(self, password: str, stored: str | None) -> tuple[bool, bool]:
        """(matches, needs_rehash). With no stored hash, burns the same time and says no."""
        target = stored or self._dummy

        def check() -> tuple[bool, bool]:
            try:
                ok = bool(self._context.verify(password, target))
            except (ValueError, TypeError):
                return False, False  # a malformed stored hash never matches
            return ok and stored is not None, ok and self._context.needs_update(target)

        return await to_thread.run_sync(check)


@cache
def common_passwords() -> frozenset[str]:
    text = resources.files("services.auth").joinpath("data/common-passwords.txt").read_text()
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line and not line.startswith("#")
    )


def policy_problems(password: str, email: str) -> list[str]:
    """Why the password is refused (empty: accepted). Messages never echo the password."""
    problems = []
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        problems.append(f"must be between {MIN_LENGTH} and {MAX_LENGTH} characters long")
    lowered = password.strip().lower()
    local_part = email.partition("@")[0].lower()
    if lowered in {email.lower(), local_part}:
        problems.append("must not be your email address")
    if lowered in common_passwords():
        problems.append("is one of the most common passwords")
    return problems
