"""`--help` explains itself: every setting, every job kind's parameters, nothing cut."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from mlipserve.cli import app
from mlipserve.server.config import Settings
from mlipserve.server.queue.params import SCHEMAS
from tests.cli.said import said

runner = CliRunner()


def _help(*args: str) -> str:
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.output


def test_serve_help_lists_every_setting_without_cutting_anything():
    text = _help("serve")
    missing = [n for n in Settings.model_fields if f"MLIPSERVE_{n.upper()}=" not in text]
    assert not missing, f"settings absent from `serve --help`: {missing}"
    assert "…" not in text  # rich's tables cut long option names with an ellipsis
    assert "--tenant-max-queued-atoms" in text and "--insecure-public / --private" in text
    assert "MLIPSERVE_PORT=50051: gRPC port" in text


def test_jobs_submit_help_documents_each_kind_and_parameter():
    text = _help("jobs", "submit")
    for kind, schema in SCHEMAS.items():
        assert f"  {kind}" in text
        for name in schema.model_fields:
            assert f"      {name} (" in text, f"{kind}.{name} is not in `jobs submit --help`"
    assert "base_version (str | None; default None)" in text
    assert "retrain (admin key)" in text


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("{bad", "not JSON"),
        ("[1, 2]", "must be a JSON object"),
        ("@/nonexistent.json", "cannot read"),
    ],
)
def test_jobs_submit_bad_params_are_one_line_errors(params, message):
    result = runner.invoke(app, ["jobs", "submit", "label", "--params", params])
    assert result.exit_code == 2
    assert message in said(result) and "Traceback" not in result.output
