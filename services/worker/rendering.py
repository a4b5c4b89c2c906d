"""Email templates: one place (services/worker/templates/<locale>/), text and HTML parts,
a subject per locale, the recipient's locale when a translation exists, English otherwise.

HTML is autoescaped; text parts are not (they are not markup). Links must be http(s):
escaping alone would let a `javascript:` URL through into an href.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    select_autoescape,
)

TEMPLATES_DIR = Path(__file__).parent / "templates"
DEFAULT_LOCALE = "en"

# The context each template needs (see docs/conventions.md).
TEMPLATES: dict[str, frozenset[str]] = {
    "verify_email": frozenset({"link"}),
    "reset_password": frozenset({"link"}),
    "password_changed": frozenset(),
    "register_attempt": frozenset({"login_link", "reset_link"}),
}


class RenderError(ValueError):
    """The message can never be rendered (unknown template, bad context): a permanent failure."""


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    text: str
    html: str
    locale: str


@lru_cache(maxsize=1)
def environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(enabled_extensions=("html",), default=False),
        undefined=StrictUndefined,
        keep_trailing_newline=False,
        auto_reload=False,
    )


@lru_cache(maxsize=1)
def available_locales() -> frozenset[str]:
    return frozenset(p.name for p in TEMPLATES_DIR.iterdir() if p.is_dir())


def resolve_locale(requested: str | None) -> str:
    """'fr-CA' -> 'fr' when only fr exists; anything unknown -> 'en'."""
    if requested:
        tag = requested.strip().replace("_", "-").lower()
        for candidate in (tag, tag.split("-", 1)[0]):
            if candidate in available_locales():
                return candidate
    return DEFAULT_LOCALE


def _check_context(template: str, context: dict[str, Any]) -> dict[str, str]:
    if template not in TEMPLATES:
        raise RenderError(f"unknown template {template!r}")
    missing = TEMPLATES[template] - context.keys()
    if missing:
        raise RenderError(f"template {template!r} needs {sorted(missing)}")
    values: dict[str, str] = {}
    for key in TEMPLATES[template]:
        value = context[key]
        if not isinstance(value, str):
            raise RenderError(f"context value {key!r} must be a string")
        if key.endswith("link") and not value.startswith(("https://", "http://")):
            raise RenderError(f"context value {key!r} must be an http(s) URL")
        values[key] = value
    return values


def render(template: str, context: dict[str, Any], locale: str | None = None) -> RenderedEmail:
    values = _check_context(template, context)
    lang = resolve_locale(locale)
    env = environment()
    try:
        subject = env.get_template(f"{lang}/{template}.subject.txt").render(values)
        # Header injection guard: a subject is one line.
        subject = " ".join(subject.split())
        variables = {**values, "locale": lang, "subject": subject}
        text = env.get_template(f"{lang}/{template}.txt").render(variables)
        html = env.get_template(f"{lang}/{template}.html").render(variables)
    except TemplateError as exc:
        raise RenderError(f"template {template!r} failed to render: {type(exc).__name__}") from exc
    return RenderedEmail(subject=subject, text=text + "\n", html=html, locale=lang)
