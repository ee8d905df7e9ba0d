"""`mlipserve jobs submit|list|show|cancel` against a real server's REST API."""

from __future__ import annotations

import json

import ase.io
from ase.build import bulk

from mlipserve.server.config import Settings
from tests.cli.test_cli import cli
from tests.conftest import ServerThread


def test_jobs_commands_round_trip(tmp_path):
    frames = [bulk("Cu", cubic=True), bulk("Ni", cubic=True)]
    path = tmp_path / "new.extxyz"
    ase.io.write(path, frames)
    srv = ServerThread(Settings(port=0, models=["lj"], data_dir=tmp_path))
    try:
        url = ["--url", srv.rest_url]
        out = cli(
            "jobs",
            "submit",
            "label",
            "--structures",
            str(path),
            "--params",
            '{"dataset": "cli", "labeller": "emt"}',
            *url,
        )
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


def test_jobs_cli_refuses_import_paths_and_dataset_paths_and_shares(tmp_path):
    frames = tmp_path / "one.extxyz"
    ase.io.write(frames, [bulk("Cu", cubic=True)])
    marker = tmp_path / "pwned"
    srv = ServerThread(Settings(port=0, models=["lj"], data_dir=tmp_path))
    try:
        url = ["--url", srv.rest_url]
        popen = json.dumps(
            {
                "dataset": "cli",
                "labeller": "ase:subprocess.Popen",
                "settings": {"args": ["touch", str(marker)]},
            }
        )
        out = cli("jobs", "submit", "label", "--structures", str(frames), "--params", popen, *url)
        assert out.returncode == 1 and "403" in out.stdout, out.stdout + out.stderr
        assert "params.labeller 'ase:subprocess.Popen' is not enabled" in out.stdout
        for dataset in ("/tmp/x.db", "../x"):
            out = cli(
                "jobs",
                "submit",
                "label",
                "--structures",
                str(frames),
                "--params",
                json.dumps({"dataset": dataset}),
                *url,
            )
            assert out.returncode == 1 and "params.dataset" in out.stdout, out.stdout
        assert not marker.exists() and not list(tmp_path.rglob("x.db"))
        shared = cli("datasets", "share", "default", "cli", "--with", "lab-b,lab-c", *url)
        assert shared.returncode == 0 and "default:cli shared with: lab-b, lab-c" in shared.stdout
        listed = cli("datasets", "shares", *url)
        assert "default:cli" in listed.stdout and "lab-b, lab-c" in listed.stdout
        bad = cli("datasets", "share", "default", "..", *url)
        assert bad.returncode == 1 and "not a dataset name" in bad.stdout
    finally:
        srv.stop()
