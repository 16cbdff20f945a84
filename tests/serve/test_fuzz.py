"""schemathesis against the service's own OpenAPI schema, in-process (ASGI): generated requests to every operation
(valid and invalid) never get a server error, and every answer matches the schema. Bounded: a few examples per
operation, loopback only (in-process, no network)."""

import schemathesis
from hypothesis import HealthCheck, settings

from recgen.serve.app import create_app
from recgen.serve.registry import create_registry
from recgen.serve.store import Store, sqlite_url

from .conftest import GENRES  # noqa: F401 - the shared fixtures module


def _app():
    import tempfile
    from pathlib import Path

    from recgen.models import create_model
    from recgen.testing.synthetic import make_titled_dataset

    folder = Path(tempfile.mkdtemp(prefix="recgen-fuzz-"))
    registry = create_registry(folder / "registry", create_model("ease", l2=10.0).fit(make_titled_dataset()))
    store = Store(sqlite_url(folder / "fuzz.sqlite"))
    app = create_app(registry, store, rate=0)
    app.state.key = store.create_key("fuzz")
    return app


APP = _app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_and_answers_match_the_schema(case):
    response = case.call(headers={"X-API-Key": APP.state.key})
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300])
    case.validate_response(response, checks=(schemathesis.checks.response_schema_conformance,))
