"""pytest plugin: ASE's own tests with ASE's EMT replaced by RemoteCalculator on a served `emt`.

Loaded by `tests/client/test_ase_suite.py` in a child pytest (`-p tests.client.ase_remote_plugin`)
with MLIPSERVE_TARGET naming the server and MLIPSERVE_ASE_COUNTS a file for the counts of
calculators made and calculations run, so the outer test knows the remote one was used.
"""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import ase.calculators.emt

from mlipserve.client import RemoteCalculator

COUNTS = {"calculators": 0, "calculations": 0}


class RemoteEMT(RemoteCalculator):
    """What `EMT(...)` returns in ASE's tests: the served `emt` (EMT's own options ignored)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(os.environ["MLIPSERVE_TARGET"], model="emt")
        COUNTS["calculators"] += 1

    def calculate(self, *args, **kwargs) -> None:
        COUNTS["calculations"] += 1
        super().calculate(*args, **kwargs)


def pytest_configure(config) -> None:
    """Replace EMT before ASE's test modules import it; ASE's `asap3` fixture (the fast EMT
    its MTK NPT tests ask for) gets a module whose EMT is the remote one too."""
    ase.calculators.emt.EMT = RemoteEMT
    sys.modules["asap3"] = types.SimpleNamespace(EMT=RemoteEMT)  # type: ignore[assignment]


def pytest_unconfigure(config) -> None:
    """Write the counts for the outer test."""
    Path(os.environ["MLIPSERVE_ASE_COUNTS"]).write_text(json.dumps(COUNTS))
