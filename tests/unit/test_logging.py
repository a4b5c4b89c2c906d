"""JSON log lines carry the request id and never a secret or a token."""

from __future__ import annotations

import json
import logging

from services.common.context import request_id_var, user_id_var
from services.common.logging import JsonFormatter, redact
from tests.support.tokens import mint


def format_record(message: str, *args: object, **extra: object) -> dict:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return json.loads(JsonFormatter("kit").format(record))


def test_line_has_context_fields() -> None:
    rid = request_id_var.set("req-123")
    uid = user_id_var.set("user-9")
    try:
        line = format_record("hello %s", "world", status=200)
    finally:
        request_id_var.reset(rid)
        user_id_var.reset(uid)
    assert line["message"] == "hello world"
    assert line["request_id"] == "req-123"
    assert line["user_id"] == "user-9"
    assert line["service"] == "kit"
    assert line["status"] == 200


def test_tokens_and_secrets_are_redacted() -> None:
    token = mint()
    line = format_record(
        "auth header Bearer %s and password=hunter2 token: abc123",
        token,
        refresh_token="opaque-secret",
        password_hash="$argon2id$xyz",
    )
    dumped = json.dumps(line)
    for secret in (token, "hunter2", "abc123", "opaque-secret", "$argon2id$xyz"):
        assert secret not in dumped
    assert redact("eyJhbGciOi.eyJzdWIi.c2ln") == "[REDACTED]"
