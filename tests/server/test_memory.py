"""keep_freed_memory: freed big blocks stay in the process (glibc) unless turned off."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

SCRIPT = """
import numpy as np
from mlipserve.server.memory import keep_freed_memory

def rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 2**20

applied = keep_freed_memory()
before = rss_mb()
block = np.ones(400 * 2**20 // 8)  # 400 MB, touched
del block
print(applied, round(rss_mb() - before))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
@pytest.mark.parametrize("keep", ["1", "0"])
def test_freed_memory_kept_or_returned(keep):
    env = {**os.environ, "MLIPSERVE_KEEP_FREED_MEMORY": keep}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    applied, kept_mb = out[0] == "True", int(out[1])
    if keep == "1":
        assert applied and kept_mb > 350  # the 400 MB stay resident for the next tensor
    else:
        assert not applied and kept_mb < 50  # glibc unmapped the block at once
