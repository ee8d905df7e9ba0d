"""schemathesis against the served OpenAPI document: no operation answers 5xx (bounded run).

The server runs for this module only (started at import: schemathesis reads the schema at
collection time); every operation gets a dozen generated requests.
"""

from __future__ import annotations

import atexit
import tempfile

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from mlipserve.server.config import Settings
from tests.conftest import ServerThread

_SERVER = ServerThread(
    Settings(
        port=0, models=["lj", "lj-ensemble"], data_dir=tempfile.mkdtemp(prefix="mlipserve-fuzz-")
    )
)
atexit.register(_SERVER.stop)
schema = schemathesis.openapi.from_url(f"{_SERVER.rest_url}/openapi.json")


@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_operation_answers_5xx(case):
    response = case.call(timeout=30)
    case.validate_response(response, checks=(not_a_server_error,))
