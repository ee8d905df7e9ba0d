"""Build `build/pkg/mlipserve/...`: the installed package's tree as links to the source rooms.

The distribution maps folders to packages (pyproject's `package-dir`: client/ is
mlipserve.client, ...), which only an installer understands. Type checkers and import tests
want the package as a tree; this writes one made of directory links, so it never goes stale
for files added later. Usage: `python .ci/package_tree.py` prints the tree's root.
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build(out: Path = ROOT / "build" / "pkg") -> Path:
    """(Re)create the link tree under `out`; returns `out`."""
    package_dir = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    shutil.rmtree(out, ignore_errors=True)
    top = out / "mlipserve"
    top.mkdir(parents=True)
    for item in (ROOT / package_dir["mlipserve"]).iterdir():  # the root package: files + v1
        if item.suffix in (".py", ".pyi") or item.name == "py.typed":
            (top / item.name).symlink_to(item)
    for package, folder in package_dir.items():
        if package == "mlipserve":
            continue
        link = out.joinpath(*package.split("."))
        if link.parent.exists() and not link.exists():
            link.symlink_to(ROOT / folder, target_is_directory=True)
    return out


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "pkg"))
