"""Auth's request schemas say exactly what its request models enforce.

Schemathesis (what `make fuzz` runs) draws schema-valid and schema-invalid bodies for
every auth request model, each behind a route that answers 204 once the body validates:
a valid body refused is a schema that promises too much, an invalid one accepted is a
schema that says too little. Regression: the token and password fields carried a
pattern naming lone surrogates (`\\ud800-\\udfff`), which ECMA-262 validators (the
fuzzer's, the clients') refuse as a regex; the fuzzer then dropped the pattern and sent
NULs, which the model refused (POST /auth/refresh, positive_data_acceptance).
"""

from __future__ import annotations

from typing import Annotated, Any

import pytest
import schemathesis
import schemathesis.engine
from email_validator import SPECIAL_USE_DOMAIN_NAMES
from fastapi import FastAPI, Form, Response
from schemathesis import GenerationMode
from schemathesis.engine import Status, events

from services.auth import schemas

JSON_MODELS = [
    model
    for model in vars(schemas).values()
    if isinstance(model, type)
    and issubclass(model, schemas.Request)
    and model not in (schemas.Request, schemas.LoginForm)
]


def _app() -> FastAPI:
    app = FastAPI()
    for model in JSON_MODELS:

        def route(body: Any) -> Response:
            return Response(status_code=204)

        route.__annotations__ = {"body": model, "return": Response}
        app.post(f"/{model.__name__}", status_code=204, operation_id=model.__name__)(route)

    @app.post("/LoginForm", status_code=204)
    def form(body: Annotated[schemas.LoginForm, Form()]) -> Response:
        return Response(status_code=204)

    return app


def _failures(app: FastAPI) -> list[str]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.update(continue_on_failure=True)
    schema.config.seed = 19
    schema.config.phases.update(phases=["examples", "coverage", "fuzzing"])
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=60
    )
    checks = {"positive_data_acceptance", "negative_data_rejection", "not_a_server_error"}
    found: list[str] = []
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.NonFatalError | events.FatalError):
            found.append(f"error: {event!r}")
        elif isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            for case_id, nodes in recorder.checks.items():
                body = recorder.cases[case_id].value.body
                found += [
                    f"{recorder.label} [{node.name}] {body!r}"
                    for node in nodes
                    if node.status == Status.FAILURE
                    and node.name in checks
                    and not _special_use_email(node.name, body)
                ]
    return found


def _special_use_email(check: str, body: Any) -> bool:
    """`format: email` is syntax; a special-use domain (`.test`) is refused on top, a
    rule no schema states (the same allowance as tests/fuzz/schemathesis.toml's)."""
    email = body.get("email") if isinstance(body, dict) else None
    return (
        check == "positive_data_acceptance"
        and isinstance(email, str)
        and email.rsplit(".", 1)[-1].lower() in SPECIAL_USE_DOMAIN_NAMES
    )


def test_the_models_cover_every_auth_request() -> None:
    names = {model.__name__ for model in JSON_MODELS}
    assert {"RefreshRequest", "LoginRequest", "ChangePasswordRequest"} <= names


@pytest.mark.timeout(240)
def test_schema_valid_bodies_pass_and_invalid_ones_do_not() -> None:
    found = _failures(_app())
    assert not found, "\n".join(found[:20])
