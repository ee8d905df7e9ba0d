"""`mlipserve jobs submit|list|show|cancel` against a real server's REST API."""

from __future__ import annotations

import json

import ase.io
from ase.build import bulk
from mlipserve.server.config import Settings

from tests.conftest import ServerThread
from tests.test_cli import cli


def test_jobs_commands_round_trip(tmp_path):
    frames = [bulk("Cu", cubic=True), bulk("Ni", cubic=True)]
    path = tmp_path / "new.extxyz"
    ase.io.write(path, frames)
    srv = ServerThread(Settings(port=0, models=["lj"], data_dir=tmp_path))
    try:
        url = ["--url", srv.rest_url]
        out = cli("jobs", "submit", "label", "--structures", str(path), "--params",
                  '{"dataset": "cli", "labeller": "emt"}', *url)
        assert out.returncode == 0, out.stderr + out.stdout
        job_id = out.stdout.strip()
        shown = cli("jobs", "show", job_id, *url)
        record = json.loads(shown.stdout)
        assert record["kind"] == "label" and record["state"] == "queued"
        listed = cli("jobs", "list", *url)
        assert job_id in listed.stdout and "label" in listed.stdout
        cancelled = cli("jobs", "cancel", job_id, *url)
        assert f"{job_id}: cancelled" in cancelled.stdout
        missing = cli("jobs", "show", "nope", *url)
        assert missing.returncode == 1 and "404" in missing.stdout
        bad = cli("jobs", "submit", "label", "--params", '{"dataset": "cli"}', *url)
        assert bad.returncode == 1 and "params.structures" in bad.stdout
    finally:
        srv.stop()
