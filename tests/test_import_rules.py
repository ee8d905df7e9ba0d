"""Which room may import which (ARCHITECTURE.md), checked on the source's AST: no import runs.

Every import counts, at the top of a file or inside a function: a lazy import of torch in
the client would still break the thin install the moment that function runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# (folder or file, forbidden module prefixes, why)
RULES = [
    (
        "client",
        ("torch", "mlipserve.server", "mlipserve.simulation", "mlipserve.cli"),
        "the thin client installs without torch or the server",
    ),
    (
        "simulation",
        ("torch", "mlipserve.server", "mlipserve.cli"),
        "drivers run on a ForceProvider, on the thin install",
    ),
    (
        "protos/mlipserve",
        ("torch", "mlipserve.server", "mlipserve.client", "mlipserve.simulation", "mlipserve.cli"),
        "the contract and its codec are the bottom layer",
    ),
    (
        "server/serving/batcher.py",
        ("torch", "mlipserve.server.models"),
        "the batcher knows nothing of models",
    ),
    (
        "server/serving/fairqueue.py",
        ("torch", "mlipserve.server.models"),
        "the fair queue knows nothing of models",
    ),
    (
        "server/models",
        (
            "mlipserve.server.serving",
            "mlipserve.server.rest",
            "mlipserve.server.queue",
            "mlipserve.server.app",
            "mlipserve.cli",
        ),
        "a model knows nothing of requests",
    ),
    ("server", ("mlipserve.cli",), "the CLI is the top layer: nothing imports it"),
]


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in a file, at any depth."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out += [(node.lineno, node.module)]
            # `from mlipserve.server import models` imports mlipserve.server.models
            out += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return out


def files(room: str) -> list[Path]:
    """The Python files of a folder (generated protobuf stubs excluded) or the one file."""
    path = ROOT / room
    found = [path] if path.is_file() else sorted(path.rglob("*.py"))
    return [f for f in found if "_pb2" not in f.name]


def violations(room: str, forbidden: tuple[str, ...]) -> list[str]:
    """`file:line imports module` for each forbidden import in a room."""
    bad = []
    for path in files(room):
        for line, module in imported_modules(path):
            if any(module == p or module.startswith(p + ".") for p in forbidden):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return bad


@pytest.mark.parametrize(("room", "forbidden", "why"), RULES, ids=[r[0] for r in RULES])
def test_rooms_import_only_what_they_may(room, forbidden, why):
    assert files(room), f"{room} holds no Python file: the rule checks nothing"
    bad = violations(room, forbidden)
    assert not bad, f"{why}:\n" + "\n".join(bad)


def test_the_checker_sees_lazy_and_aliased_imports(tmp_path):
    """The rule engine itself: a torch import inside a function and a from-import of a
    forbidden submodule are both found (a checker that finds nothing would pass every rule)."""
    room = tmp_path / "room"
    room.mkdir()
    (room / "a.py").write_text("def f():\n    import torch.nn as nn\n    return nn\n")
    (room / "b.py").write_text("from mlipserve.server import models\n")
    (room / "c.py").write_text("from mlipserve.serverless import x\nimport numpy\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        bad = violations("room", ("torch", "mlipserve.server.models"))
    finally:
        ROOT = saved
    assert bad == ["room/a.py:2 imports torch.nn", "room/b.py:1 imports mlipserve.server.models"]
