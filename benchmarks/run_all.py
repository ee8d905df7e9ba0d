"""Run every benchmark in turn (`make bench`)."""

from __future__ import annotations

import subprocess
import sys

for name in ("remote_vs_local", "stream_vs_ipi", "batching_throughput"):
    print(f"== {name}", flush=True)
    subprocess.run([sys.executable, "-m", f"benchmarks.{name}"], check=True)
