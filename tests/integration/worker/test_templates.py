"""Templates render in en and fr, escape HTML, fall back to en, refuse bad context."""

from __future__ import annotations

import pytest

from services.worker.mailer import Envelope, build_message
from services.worker.rendering import TEMPLATES, RenderError, render, resolve_locale
from services.worker.settings import WorkerSettings

CONTEXTS = {
    "verify_email": {"link": "https://app.test/verify-email?token=abc"},
    "reset_password": {"link": "https://app.test/reset-password?token=abc"},
    "password_changed": {},
    "register_attempt": {
        "login_link": "https://app.test/login",
        "reset_link": "https://app.test/reset-password",
    },
}


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_every_template_renders_in_english_and_french(template: str) -> None:
    en = render(template, CONTEXTS[template], "en")
    fr = render(template, CONTEXTS[template], "fr")
    assert en.locale == "en" and fr.locale == "fr"
    assert en.subject and fr.subject and en.subject != fr.subject
    assert "Hello" in en.text and "Bonjour" in fr.text
    assert '<html lang="fr">' in fr.html
    for value in CONTEXTS[template].values():
        assert value in en.text and value in fr.text
        assert value in en.html


def test_html_escapes_context_values_and_text_keeps_them() -> None:
    link = 'https://app.test/verify-email?token=a"><script>alert(1)</script>&x=1'
    email = render("verify_email", {"link": link}, "fr")
    assert "<script>" not in email.html
    assert "&lt;script&gt;" in email.html
    assert "&#34;&gt;" in email.html  # the quote cannot close the href attribute
    assert "&amp;x=1" in email.html
    assert link in email.text  # plain text is not markup: shown as is


def test_locale_resolution_falls_back_to_english() -> None:
    assert resolve_locale("fr-CA") == "fr"
    assert resolve_locale("FR_be") == "fr"
    assert resolve_locale("de") == "en"
    assert resolve_locale("../../etc") == "en"
    assert resolve_locale(None) == "en"
    assert render("password_changed", {}, "de").subject == "Your password was changed"


@pytest.mark.parametrize(
    ("template", "context"),
    [
        ("no_such_template", {}),
        ("verify_email", {}),
        ("verify_email", {"link": "javascript:alert(1)"}),
        ("verify_email", {"link": 42}),
        ("register_attempt", {"login_link": "https://a.test/"}),
    ],
)
def test_bad_messages_are_refused(template: str, context: dict) -> None:
    with pytest.raises(RenderError):
        render(template, context, "en")


def test_message_headers_are_stable_and_injection_proof() -> None:
    settings = WorkerSettings(mail_from="Shop <no-reply@shop.test>")
    email = render("password_changed", {}, "en")
    msg = build_message(email, Envelope(to="ann@example.com", outbox_id="abc-1"), settings)
    assert msg["Message-ID"] == "<abc-1@shop.test>"
    assert msg["To"] == "ann@example.com"
    assert msg.get_content_type() == "multipart/alternative"
    with pytest.raises(ValueError):
        build_message(
            email, Envelope(to="ann@example.com\r\nBcc: all@x.test", outbox_id="x"), settings
        )
