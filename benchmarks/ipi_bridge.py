"""Benchmark: i-PI PIMD on served EMT through `mlipserve ipi-driver` vs ASE's SocketClient.

Same i-PI run (PIMD NVT, PILE-L, 8 beads, 32-atom fcc Cu, 300 K, 1 fs, unix socket) driven
(a) the usual way: ASE's `SocketClient` processes computing ASE's EMT in-process, 1 or 4 of
them; (b) by the bridge with 1 or 4 connections in one process, forwarding each bead to an
mlipserve server (child process, model "emt" = the same ASE EMT behind gRPC); (c) the
bridge on one connection with i-PI's batched protocol (`<batch_size>8`): all beads in one
message and one server request. Figure: ms per i-PI step from i-PI's own per-step timing
(verbosity high), median over the steps after a warm-up; runs interleaved over rounds so
machine load hits every configuration alike. Ratios: bridge / ASE at the same client count.
Both sides send energy, forces and virial (stress on). The server's ASE adapter builds EMT's
neighbour list anew for every structure while a SocketClient's EMT keeps it between steps,
so (d) ASE's client with a new neighbour list per call gives the same model cost and
isolates what the bridge, gRPC and the server add.
Run: `.venv/bin/python -m benchmarks.ipi_bridge` (BENCH_STEPS, BENCH_ROUNDS to change size).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from ase.build import bulk

from benchmarks.common import ChildServer, interleaved, write_result

STEPS = int(os.environ.get("BENCH_STEPS", "120"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
WARMUP_STEPS = 10
BEADS = 8
NAMES = {
    "ase": "ASE SocketClient + EMT",
    "ase-new": "ASE SocketClient + EMT, new NL per call",
    "bridge": "mlipserve bridge",
}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
IPI = str(Path(sys.executable).with_name("i-pi"))
CONFIGS = (
    ("ase", 1, 1),
    ("ase-new", 1, 1),
    ("bridge", 1, 1),
    ("ase", 4, 1),
    ("bridge", 4, 1),
    ("bridge", 1, 8),
)

XML = """<simulation verbosity="high" safe_stride="100000">
  <output prefix="sim"><properties stride="10" filename="out"> [ step, potential ] </properties>
  </output>
  <total_steps> {steps} </total_steps>
  <prng><seed> 31415 </seed></prng>
  <ffsocket name="driver" mode="unix" pbc="false">
    <address> {address} </address> <batch_size> {batch} </batch_size>
  </ffsocket>
  <system>
    <initialize nbeads="{beads}">
      <file mode="xyz"> init.xyz </file>
      <velocities mode="thermal" units="kelvin"> 300 </velocities>
    </initialize>
    <forces><force forcefield="driver"/></forces>
    <motion mode="dynamics"><dynamics mode="nvt">
      <timestep units="femtosecond"> 1.0 </timestep>
      <thermostat mode="pile_l"><tau units="femtosecond"> 100 </tau></thermostat>
    </dynamics></motion>
    <ensemble><temperature units="kelvin"> 300 </temperature></ensemble>
  </system>
</simulation>
"""


def copper():
    """32-atom fcc Cu (2×2×2 cubic cells, a = 3.61 Å)."""
    return bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)


def write_inputs(folder: Path, batch: int) -> str:
    """init.xyz (i-PI's xyz with the cell in the comment) and input.xml; the socket name."""
    atoms = copper()
    a, b, c = atoms.cell.lengths()
    header = f"# CELL(abcABC): {a} {b} {c} 90 90 90 cell{{angstrom}} positions{{angstrom}}"
    lines = [str(len(atoms)), header]
    lines += [
        f"{s} {x:.17g} {y:.17g} {z:.17g}" for s, (x, y, z) in zip(atoms.symbols, atoms.positions)
    ]
    (folder / "init.xyz").write_text("\n".join(lines) + "\n")
    address = f"mlipserve-bench-{uuid.uuid4().hex[:8]}"
    (folder / "input.xml").write_text(
        XML.format(steps=STEPS, address=address, batch=batch, beads=BEADS)
    )
    return address


def ase_client(address: str, new: bool) -> None:
    """Child process: ASE's SocketClient with ASE's EMT (waits for i-PI's socket first).

    `new`: EMT rebuilds its neighbour list for every structure, as the server's ASE adapter
    does (each structure of a batch may be another system), so model cost is equal.
    """
    from ase.calculators.calculator import all_changes
    from ase.calculators.emt import EMT
    from ase.calculators.socketio import SocketClient

    class NewEMT(EMT):
        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, all_changes)

    while not os.path.exists(f"/tmp/ipi_{address}"):
        time.sleep(0.05)
    atoms = copper()
    atoms.calc = NewEMT() if new else EMT()
    SocketClient(unixsocket=address).run(atoms, use_stress=True)


def one_run(kind: str, clients: int, batch: int, server: str) -> np.ndarray:
    """One i-PI run; i-PI's wall time of every step after the warm-up (seconds)."""
    folder = Path(tempfile.mkdtemp(prefix="ipi-bench-"))
    address = write_inputs(folder, batch)
    ipi = subprocess.Popen(
        [IPI, "input.xml"],
        cwd=folder,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if kind.startswith("ase"):
        drivers = [
            subprocess.Popen(
                [sys.executable, "-m", "benchmarks.ipi_bridge", f"--{kind}-client", address],
                env=ENV,
            )
            for _ in range(clients)
        ]
    else:
        drivers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mlipserve.cli",
                    "ipi-driver",
                    str(folder / "init.xyz"),
                    "--unix",
                    "--address",
                    address,
                    "--server",
                    server,
                    "--model",
                    "emt",
                    "--clients",
                    str(clients),
                ],
                env=ENV,
                stdout=subprocess.DEVNULL,
            )
        ]
    out, _ = ipi.communicate(timeout=900)
    for proc in drivers:
        if proc.wait(60) != 0:
            raise RuntimeError(f"{kind} driver exited with {proc.returncode}")
    if ipi.returncode != 0:
        raise RuntimeError(f"i-PI failed:\n{out[-3000:]}")
    steps = [float(t) for t in re.findall(r"t/step:\s*([0-9.eE+-]+)", out)]
    return np.array(steps[WARMUP_STEPS:])


def emt_cost_ms(repeats: int = 20) -> dict:
    """EMT per 32-atom call (energy, forces, stress): as a SocketClient runs it (neighbour
    list kept between steps) and as the server's ASE adapter runs it (every structure new)."""
    from ase.calculators.calculator import all_changes
    from ase.calculators.emt import EMT

    rng = np.random.default_rng(0)
    atoms = copper()
    atoms.calc = EMT()
    fresh = EMT()

    def step() -> None:
        atoms.positions += rng.normal(0, 1e-3, atoms.positions.shape)
        atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()

    def new() -> None:
        fresh.calculate(atoms.copy(), ["energy", "forces", "stress"], all_changes)

    a, b = interleaved(step, new, repeats)
    return {
        "neighbour_list_kept": 1e3 * float(np.median(a)),
        "every_structure_new": 1e3 * float(np.median(b)),
    }


def plot(rows: list[dict], path: Path) -> None:
    """Bar chart of median ms per i-PI step for every configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.2))
    labels = [r["label"] for r in rows]
    ax.barh(
        labels,
        [r["median_ms_per_step"] for r in rows],
        color=["tab:blue" if r["driver"] == "bridge" else "tab:gray" for r in rows],
    )
    ax.set_xlabel(f"ms per i-PI step ({BEADS} beads × {len(copper())} Cu, EMT; median)")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] in ("--ase-client", "--ase-new-client"):
        return ase_client(sys.argv[2], new=sys.argv[1] == "--ase-new-client")
    samples: dict[tuple, list[np.ndarray]] = {c: [] for c in CONFIGS}
    with ChildServer("--models", "emt") as server:
        for rnd in range(ROUNDS):
            for config in CONFIGS:
                samples[config].append(one_run(*config, server.address))
                times = samples[config][-1]
                print(f"round {rnd} {config}: {1e3 * np.median(times):6.1f} ms/step", flush=True)
    rows = []
    for (kind, clients, batch), runs in samples.items():
        times = np.concatenate(runs) * 1e3
        label = f"{NAMES[kind]}, {clients} client{'s' if clients > 1 else ''}" + (
            f", i-PI batch_size {batch}" if batch > 1 else ""
        )
        rows.append(
            {
                "label": label,
                "driver": kind,
                "clients": clients,
                "batch_size": batch,
                "median_ms_per_step": float(np.median(times)),
                "p90_ms_per_step": float(np.percentile(times, 90)),
                "median_per_round": [float(1e3 * np.median(r)) for r in runs],
                "steps_timed": int(times.size),
            }
        )
    by = {(r["driver"], r["clients"], r["batch_size"]): r["median_ms_per_step"] for r in rows}
    ratios = {
        "bridge_over_ase_1_client": by[("bridge", 1, 1)] / by[("ase", 1, 1)],
        "bridge_over_ase_new_emt_1_client": by[("bridge", 1, 1)] / by[("ase-new", 1, 1)],
        "bridge_over_ase_4_clients": by[("bridge", 4, 1)] / by[("ase", 4, 1)],
        "bridge_batch8_over_ase_4_clients": by[("bridge", 1, 8)] / by[("ase", 4, 1)],
    }
    for r in rows:
        print(
            f"{r['label']:55s} median {r['median_ms_per_step']:6.1f} ms/step "
            f"p90 {r['p90_ms_per_step']:6.1f}"
        )
    print({k: round(v, 2) for k, v in ratios.items()})
    emt = emt_cost_ms()
    print(f"EMT per call: {emt}")
    path = write_result(
        "ipi_bridge",
        {
            "system": f"{BEADS} beads x {len(copper())} Cu atoms, EMT, PIMD NVT PILE-L, "
            "unix socket",
            "steps_per_run": STEPS,
            "warmup_steps_dropped": WARMUP_STEPS,
            "rounds": ROUNDS,
            "rows": rows,
            "ratios": ratios,
            "emt_ms_per_call": emt,
        },
    )
    plot(rows, path.with_suffix(".png"))
    print("wrote", path)


if __name__ == "__main__":
    sys.exit(main())
