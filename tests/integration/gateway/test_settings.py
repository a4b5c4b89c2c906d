"""Gateway settings from the environment, as gunicorn starts it."""

from __future__ import annotations

import pytest

from gateway.settings import GatewaySettings


def test_routes_default_from_service_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JWKS_URL", raising=False)
    monkeypatch.delenv("GATEWAY_ROUTES", raising=False)
    monkeypatch.setenv("AUTH_URL", "http://auth-a:8001, http://auth-b:8001/")
    monkeypatch.setenv("USERS_URL", "http://users:8002")
    monkeypatch.setenv("GATEWAY_CATALOG_URL", "http://catalog-gw:8003")
    monkeypatch.setenv("CATALOG_URL", "http://ignored:8003")
    monkeypatch.setenv("GATEWAY_CORS_ORIGINS", '["https://app.example.com"]')
    settings = GatewaySettings()
    assert settings.route_table == {
        "/api/v1/auth": ["http://auth-a:8001", "http://auth-b:8001"],
        "/.well-known": ["http://auth-a:8001", "http://auth-b:8001"],
        "/api/v1/users": ["http://users:8002"],
        "/api/v1/catalog": ["http://catalog-gw:8003"],
    }
    assert settings.jwks_url == "http://auth-a:8001/.well-known/jwks.json"
    assert settings.cors_origins == ["https://app.example.com"]


def test_explicit_routes_and_jwks_url_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_ROUTES", '{"/api/v1/things": ["http://a:1", "http://b:2"]}')
    monkeypatch.setenv("JWKS_URL", "http://keys/jwks.json")
    settings = GatewaySettings()
    assert settings.route_table == {"/api/v1/things": ["http://a:1", "http://b:2"]}
    assert settings.jwks_url == "http://keys/jwks.json"


def test_a_route_without_upstreams_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_ROUTES", '{"/api/v1/things": []}')
    with pytest.raises(ValueError, match="at least one upstream"):
        GatewaySettings()
