"""Business metrics of the auth service (module level: one series set per process,
aggregated by the multiprocess collector). Labels are small fixed sets."""

from __future__ import annotations

from services.common.metrics import Counter

LOGINS = Counter("auth_logins_total", "Login attempts", ["result", "reason"])
REGISTRATIONS = Counter("auth_registrations_total", "Accounts created")
TOKEN_REFRESHES = Counter(
    "auth_token_refreshes_total",
    "Refresh attempts (success, reuse_detected, invalid, expired)",
    ["result"],
)
REFRESH_REUSE = Counter(
    "auth_refresh_token_reuse_total", "Spent refresh tokens presented again (family revoked)"
)
PASSWORD_RESETS = Counter("auth_password_resets_total", "Passwords reset with an emailed token")

# The whole label set, at 0 from the start: ratios and increase() see the first event.
LOGIN_OUTCOMES = (
    ("success", "ok"),
    ("failure", "bad_credentials"),
    ("failure", "locked"),
    ("failure", "disabled"),
    ("failure", "unverified"),
)
REFRESH_RESULTS = ("success", "reuse_detected", "invalid", "expired")
for _result, _reason in LOGIN_OUTCOMES:
    LOGINS.labels(_result, _reason)
for _result in REFRESH_RESULTS:
    TOKEN_REFRESHES.labels(_result)
