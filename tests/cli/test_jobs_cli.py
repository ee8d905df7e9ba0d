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
        assert record["created"][:4].isdigit() and record["created"][4] == "-"  # a date, not 1.7e9
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


def test_version_models_show_and_one_way_to_name_the_server(tmp_path):
    from mlipserve import __version__

    assert cli("--version").stdout.strip() == f"mlipserve {__version__}"
    srv = ServerThread(Settings(port=0, models=["lj-ensemble", "emt"], data_dir=tmp_path))
    try:
        env_url = {"MLIPSERVE_URL": srv.rest_url}
        shown = cli("models", "show", "emt", env=env_url)  # the REST address from the env
        assert shown.returncode == 0, shown.stderr + shown.stdout
        assert (
            "emt@" in shown.stdout and "Cu" in shown.stdout and "(default, loaded)" in shown.stdout
        )
        missing = cli("models", "show", "nope", env=env_url)
        assert missing.returncode == 1 and "unknown model 'nope'" in missing.stdout
        path = tmp_path / "ar.extxyz"
        ase.io.write(path, bulk("Ar", "fcc", a=5.26, cubic=True))
        env_target = {"MLIPSERVE_TARGET": srv.address}
        evaluated = cli("eval", str(path), "--model", "lj-ensemble", env=env_target)
        assert evaluated.returncode == 0, evaluated.stderr + evaluated.stdout
        assert "lj-ensemble@" in evaluated.stdout
    finally:
        srv.stop()
