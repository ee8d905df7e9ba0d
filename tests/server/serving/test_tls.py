"""TLS on both gRPC and REST with a self-signed certificate; the client takes a CA file."""

from __future__ import annotations

import shutil
import subprocess

import httpx
import pytest
from ase.build import bulk

from mlipserve.client import Client, RetryPolicy, ServerUnavailable
from mlipserve.server.config import Settings
from tests.conftest import ServerThread


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make a test certificate")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(folder / "key.pem"),
            "-out",
            str(folder / "cert.pem"),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return folder / "cert.pem", folder / "key.pem"


def test_tls_grpc_and_rest(certificate):
    cert, key = certificate
    srv = ServerThread(Settings(port=0, models=["lj"], tls_cert=str(cert), tls_key=str(key)))
    try:
        target = f"localhost:{srv.running.port}"
        res = Client(target, "lj", ca_file=str(cert)).evaluate(bulk("Ar", "fcc", a=5.3))
        assert res["energy"] < 0
        plain = Client(target, "lj", retry=RetryPolicy(total_timeout_s=1.0))
        with pytest.raises(ServerUnavailable):
            plain.evaluate(bulk("Ar", "fcc", a=5.3))
        url = f"https://localhost:{srv.running.rest_port}/healthz"
        assert httpx.get(url, verify=str(cert)).json() == {"status": "ok"}
        with pytest.raises(httpx.ConnectError):
            httpx.get(url)  # not trusted without the CA
    finally:
        srv.stop()


def test_half_a_tls_configuration_is_refused():
    with pytest.raises(ValueError, match="both --tls-cert and --tls-key"):
        Settings(tls_cert="cert.pem").check_exposure()


def test_health_command_plain_and_with_tls(certificate, monkeypatch):
    """`mlipserve health` (the image's health check) answers 0 on a live server, plaintext
    and with TLS on, and 1 where nothing listens."""
    from typer.testing import CliRunner

    from mlipserve.cli import app

    runner = CliRunner()
    cert, key = certificate
    plain = ServerThread(Settings(port=0, models=["lj"]))
    try:
        ok = runner.invoke(app, ["health", "--port", str(plain.running.port)])
        assert ok.exit_code == 0 and "healthy" in ok.output, ok.output
    finally:
        plain.stop()
    dead = runner.invoke(app, ["health", "--port", str(plain.running.port), "--timeout", "0.5"])
    assert dead.exit_code == 1 and "unhealthy" in dead.output
    srv = ServerThread(Settings(port=0, models=["lj"], tls_cert=str(cert), tls_key=str(key)))
    try:
        monkeypatch.setenv("MLIPSERVE_TLS_CERT", str(cert))
        monkeypatch.setenv("MLIPSERVE_TLS_KEY", str(key))
        ok = runner.invoke(app, ["health", "--rest-port", str(srv.running.rest_port)])
        assert ok.exit_code == 0 and "https://127.0.0.1" in ok.output, ok.output
    finally:
        srv.stop()
