"""`mlipserve status --once` against a real server: the figures follow real traffic and keys."""

from __future__ import annotations

import json
import re

import pytest
from ase.build import bulk
from typer.testing import CliRunner

from mlipserve.cli import app
from mlipserve.client import Client
from mlipserve.server.auth import KeyStore
from mlipserve.server.config import Settings
from tests.cli.said import said
from tests.conftest import ServerThread
from tests.server.rest.test_status import HARVEST

runner = CliRunner()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    data = tmp_path_factory.mktemp("status-cli")
    srv = ServerThread(Settings(port=0, models=["lj"], auth=True, data_dir=data, workers=0))
    keys = KeyStore(srv.settings.key_db_url)
    yield srv, keys.create("user", "lab-a")[1], keys.create("admin", "ops")[1]
    srv.stop()


def status(srv, key: str | None) -> tuple[int, str]:
    args = ["status", "--once", "--url", srv.rest_url]
    result = runner.invoke(app, args, env={"COLUMNS": "250", "MLIPSERVE_API_KEY": key or ""})
    return result.exit_code, " ".join(re.sub("[│┃]", " ", said(result)).split())  # cells only


def test_once_prints_one_snapshot_that_follows_traffic(lab):
    srv, user, admin = lab
    code, text = status(srv, admin)
    assert code == 0, text
    assert f"lj builtin-1 * {srv.address} 0 " in text  # model, default version, replica, queue
    assert "no requests" in text and "harvesting" in text
    folder = srv.settings.model_store_dir / "_harvest"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lj.json").write_text(json.dumps(HARVEST))
    ar = bulk("Ar", "fcc", a=5.3, cubic=True)
    with Client(srv.address, "lj", api_key=user) as client:
        for _ in range(3):
            client.evaluate(ar)
    code, text = status(srv, admin)
    assert code == 0, text
    # in the window: 3 requests in 3 batches of 1 request, 1 system, 4 atoms
    assert " 3 3 1.00 1.00 4 " in text
    assert "lab-a 3 12 " in text and "100.0 %" in text
    assert "lj on 42 lab-a: 30, lab-b: 12 200 100:48.0 200:31.5" in text


def test_a_user_key_sees_its_own_tenant_and_no_key_is_refused(lab):
    srv, user, _ = lab
    code, text = status(srv, user)
    assert code == 0 and "user of lab-a" in text and "lab-b: 12" not in text
    code, text = status(srv, None)
    assert code == 1 and "401" in text
