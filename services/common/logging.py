"""JSON-lines logging with the request id, user id and service on every line.

Secrets never reach a log line: a filter masks values of sensitive keys and
anything shaped like a bearer token or JWT before formatting.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
import time
from typing import Any

from services.common.context import request_id_var, route_var, user_id_var

# Every pattern below does work linear in the text's length (redaction runs on the event
# loop, on paths and values a client chose): a match may only start where a run of word
# characters starts (a lookbehind), runs are taken whole (possessive `++`, no backtracking
# into them), so no character is scanned again from each of many start positions.
#
# A run of [\w.-] holding "eyJ": the JWT (eyJ<header>.<payload>.<signature>) inside it is
# found by _redact_jwts, segment by segment.
_JWT_RUN = re.compile(r"(?<![\w.-])(?=[\w.-]*?eyJ)[\w.-]++")
_BEARER = re.compile(r"(?i)(bearer\s++)[\w.~+/=-]++")
_SENSITIVE_KEY = re.compile(r"(?i)(password|secret|token|authorization|cookie|hash|key)")
# key (a whole [\w-] run naming a secret), separator, value (quoted or up to a delimiter).
_SENSITIVE_PAIR = re.compile(
    r"(?i)(?<![\w-])(?=[\w-]*?(?:password|secret|token|authorization|api_key))"
    r"([\w-]++)(\s*+[=:]\s*+)"
    r"(\"[^\"]*+\"|'[^']*+'|[^\s,;&]++)"
)
# Anything the three patterns above could match contains one of these: most lines (access
# log fields, routes, ids) contain none and cost one search instead of three substitutions.
_MAYBE_SECRET = re.compile(r"(?i)eyJ|bearer|password|secret|token|authorization|api_key")
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


@functools.lru_cache(maxsize=512)
def _sensitive_key(key: str) -> bool:
    return bool(_SENSITIVE_KEY.search(key)) and key != "token_type"


def _redact_jwts(match: re.Match[str]) -> str:
    """Each eyJ<[\\w-]+>.<[\\w-]+>.<[\\w-]*> in a run of [\\w.-] becomes [REDACTED]: the
    run split at its dots, a token starts at the first "eyJ" of a segment that has a
    character after it and spans that segment's rest and the next two (the second non-empty).
    """
    segments = match.group().split(".")
    out: list[str] = []
    i = 0
    while i < len(segments):
        segment = segments[i]
        start = segment.find("eyJ")
        if 0 <= start < len(segment) - 3 and i + 2 < len(segments) and segments[i + 1]:
            out.append(segment[:start] + "[REDACTED]")
            i += 3
        else:
            out.append(segment)
            i += 1
    return ".".join(out)


def redact(text: str) -> str:
    if not _MAYBE_SECRET.search(text):
        return text
    if "eyJ" in text:
        text = _JWT_RUN.sub(_redact_jwts, text)
    text = _BEARER.sub(r"\1[REDACTED]", text)
    return _SENSITIVE_PAIR.sub(r"\1\2[REDACTED]", text)


def _redact_value(key: str, value: Any) -> Any:
    if _sensitive_key(key):
        return "[REDACTED]"
    if isinstance(value, str):
        return redact(value)
    return value


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "service": self.service,
            "message": redact(record.getMessage()),
        }
        for key, var in (
            ("request_id", request_id_var),
            ("user_id", user_id_var),
            ("route", route_var),
        ):
            value = var.get()
            if value is not None:
                entry[key] = value
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = _redact_value(key, value)
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def configure_logging(service: str, level: str = "INFO") -> None:
    """Route every logger (ours, uvicorn's, gunicorn's) through one JSON handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "gunicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # Our own access log replaces uvicorn's (it has the route, duration and request id).
    logging.getLogger("uvicorn.access").disabled = True
