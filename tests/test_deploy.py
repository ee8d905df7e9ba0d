"""deploy/kubernetes: every manifest is valid against Kubernetes' schemas, and the server's
command, ports, settings, probes and drain time in them match the server's own code."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from typer.main import get_command

from mlipserve.cli import app
from mlipserve.server.config import Settings
from mlipserve.server.rest.health import PUBLIC

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "kubernetes"
K8S_VERSION = "1.30.0"


def documents() -> list[tuple[str, dict]]:
    out = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        out += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return out


def by_kind(kind: str, name: str) -> dict:
    return next(d for _, d in documents() if d["kind"] == kind and d["metadata"]["name"] == name)


def _id(value: object) -> str:
    return value if isinstance(value, str) else value["metadata"]["name"]  # type: ignore[index]


@pytest.mark.parametrize(("file", "doc"), documents(), ids=_id)
def test_manifest_is_valid_against_the_kubernetes_schema(file, doc):
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest():
    listed = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())["resources"]
    present = sorted(p.name for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == present


def environment() -> dict[str, str]:
    """MLIPSERVE_* of the ConfigMap and the Secret the containers load."""
    config = by_kind("ConfigMap", "mlipserve-config")["data"]
    secret = by_kind("Secret", "mlipserve-db")["stringData"]
    return {k: v for k, v in {**config, **secret}.items() if k.startswith("MLIPSERVE_")}


def test_every_setting_named_is_a_server_setting_and_parses():
    env = environment()
    fields = Settings.model_fields
    unknown = [k for k in env if k.removeprefix("MLIPSERVE_").lower() not in fields]
    assert not unknown, f"not settings of mlipserve serve: {unknown}"
    server = by_kind("Deployment", "mlipserve-server")["spec"]["template"]["spec"]
    for container in server["containers"]:
        for item in container.get("env", []):
            assert item["name"].removeprefix("MLIPSERVE_").lower() in fields, item["name"]
    parsed = Settings(**{k.removeprefix("MLIPSERVE_").lower(): v for k, v in env.items()})
    assert parsed.auth and parsed.workers == 0 and parsed.host == "0.0.0.0"


def test_commands_ports_probes_and_drain_match_the_server():
    env = Settings(**{k.removeprefix("MLIPSERVE_").lower(): v for k, v in environment().items()})
    commands = get_command(app).commands  # type: ignore[attr-defined]
    server = by_kind("Deployment", "mlipserve-server")["spec"]["template"]["spec"]
    (container,) = server["containers"]
    assert container["command"][0] == "mlipserve" and container["command"][1] in commands
    assert container["command"][1] == "serve"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": env.port, "rest": env.rest_port}
    for probe in ("startupProbe", "readinessProbe"):
        assert container[probe]["grpc"]["port"] == env.port  # health: exempt from auth
    live = container["livenessProbe"]["httpGet"]
    assert live["path"] in PUBLIC and live["port"] == env.rest_port  # no key needed
    assert live["scheme"] == ("HTTPS" if env.tls_cert else "HTTP")
    assert server["terminationGracePeriodSeconds"] > env.drain_s
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert env.store_dir in mounts and str(env.data_dir) in mounts
    assert env.tls_cert.startswith("/tls/") and "/tls" in mounts
    worker = by_kind("Deployment", "mlipserve-worker")["spec"]["template"]["spec"]
    assert worker["containers"][0]["command"][:2] == ["mlipserve", "worker"]
    assert "worker" in commands


def test_headless_service_gives_clients_every_replica():
    headless = by_kind("Service", "mlipserve-headless")["spec"]
    server = by_kind("Deployment", "mlipserve-server")
    assert headless["clusterIP"] == "None"
    assert headless["selector"].items() <= server["spec"]["template"]["metadata"]["labels"].items()
    assert headless["ports"][0]["targetPort"] == "grpc"
    redis = by_kind("Service", "mlipserve-redis")["spec"]["ports"][0]["port"]
    assert environment()["MLIPSERVE_REDIS_URL"] == f"redis://mlipserve-redis:{redis}/0"
