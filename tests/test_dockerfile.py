"""The image is what it says: the Dockerfile's commands, ports, env names and health check
checked against the server's settings (no Docker engine runs here)."""

from __future__ import annotations

import re
from pathlib import Path

from mlipserve.server.config import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def env() -> dict[str, str]:
    found = {}
    for word, rest in instructions():
        if word == "ENV":
            found.update(dict(re.findall(r"(\w+)=(\S+)", rest)))
    return found


def test_every_mlipserve_env_name_is_a_setting_and_ports_match_expose():
    names = {k: v for k, v in env().items() if k.startswith("MLIPSERVE_")}
    fields = set(Settings.model_fields)
    assert names and all(k.removeprefix("MLIPSERVE_").lower() in fields for k in names), names
    settings = Settings(**{k.removeprefix("MLIPSERVE_").lower(): v for k, v in names.items()})
    exposed = {int(p) for w, rest in instructions() if w == "EXPOSE" for p in rest.split()}
    assert exposed == {settings.port, settings.rest_port}
    volumes = [rest for w, rest in instructions() if w == "VOLUME"]
    assert volumes == [str(settings.data_dir)]  # keys, store and queue persist


def test_cpu_torch_by_default_server_extra_only_and_no_pip_cache():
    args = dict(re.findall(r"ARG (\w+)=(\S+)", DOCKERFILE))
    assert args["TORCH_INDEX"] == "https://download.pytorch.org/whl/cpu"
    runs = " ".join(rest for w, rest in instructions() if w == "RUN")
    assert "torch==2.13.0 --index-url ${TORCH_INDEX}" in runs
    assert '".[server]"' in runs and not re.search(r"\.\[[^\]]*(dev|labellers)", runs)
    assert env()["PIP_NO_CACHE_DIR"] == "1"
    order = [w + " " + r for w, r in instructions()]
    first_copy = next(i for i, s in enumerate(order) if s.startswith("COPY"))
    deps = next(i for i, s in enumerate(order) if "requirements.txt" in s)
    code = next(i for i, s in enumerate(order) if s.startswith("COPY . "))
    assert first_copy < deps < code  # dependencies cached before the code is copied
    assert "useradd" in runs and "--uid 1000 " not in runs  # no clash with ubuntu's uid 1000


def test_health_check_and_command_are_real_commands():
    from typer.main import get_command

    from mlipserve.cli import app

    commands = set(get_command(app).commands)
    health = next(rest for w, rest in instructions() if w == "HEALTHCHECK")
    cmd = next(rest for w, rest in instructions() if w == "CMD")
    assert '["mlipserve", "health"]' in health and "health" in commands
    assert cmd == '["mlipserve", "serve"]' and "serve" in commands


def test_dockerignore_covers_build_outputs_and_caches():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "build", "**/__pycache__", ".pytest_cache", ".mypy_cache"} <= ignored
