"""Run every benchmark in turn (`make bench`)."""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = ("remote_vs_local", "stream_vs_ipi", "batching_throughput", "md_replicas",
              "neb_batched", "relax_batched", "ensemble_cost", "auth_overhead")

for name in BENCHMARKS:
    print(f"== {name}", flush=True)
    subprocess.run([sys.executable, "-m", f"benchmarks.{name}"], check=True)
