"""Run every benchmark in turn (`make bench`)."""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = (
    "remote_vs_local",
    "stream_vs_ipi",
    "batching_throughput",
    "md_replicas",
    "neb_batched",
    "relax_batched",
    "ensemble_cost",
    "training_speed",
    "auth_overhead",
)
BENCHMARKS += ("ipi_bridge",)  # i-PI through `mlipserve ipi-driver` vs ASE SocketClient
BENCHMARKS += ("label_throughput",)  # labels per hour through the queue, 1 vs 2 workers
BENCHMARKS += ("al_curve",)  # held-out force error vs labels, uncertainty-picked vs random
BENCHMARKS += ("pimd",)  # PIMD 32 beads: batched vs bead-by-bead calls, overhead vs i-PI
BENCHMARKS += ("uncertainty_overhead",)  # ms per MD step with the uncertainty check vs without
BENCHMARKS += ("mace_committee",)  # needs the mace extra (own venv); exits 0 without it

for name in BENCHMARKS:
    print(f"== {name}", flush=True)
    subprocess.run([sys.executable, "-m", f"benchmarks.{name}"], check=True)
