"""Benchmark 2: round trip at 64 atoms, mlipserve stream session vs ASE's i-PI socket.

The same calculator sits behind both transports: (a) a calculator returning zeros, so only
transport is timed, and (b) the built-in torch Lennard-Jones model (a cheap real model).
mlipserve: a server process serving it through the ASE adapter / as a model; the client's
`RemoteCalculator` holds one open stream. i-PI: ASE's `SocketIOCalculator` on a unix socket
with an ASE `SocketClient` process computing with the same calculator.
Goal: median ≤ 0.6× and p90 ≤ 0.3× of the i-PI socket's.
Run: `.venv/bin/python benchmarks/stream_vs_ipi.py`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile

import numpy as np
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.socketio import SocketClient, SocketIOCalculator

from benchmarks.common import free_port, interleaved, summarize, wait_ready, write_result

REPEATS = int(os.environ.get("BENCH_REPEATS", 2000))


class ZeroCalculator(Calculator):
    """Energy, forces and stress of zero: the cost of the transport alone."""

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        n = len(self.atoms)
        self.results = {
            "energy": 0.0,
            "free_energy": 0.0,
            "forces": np.zeros((n, 3)),
            "stress": np.zeros(6),
            "energies": np.zeros(n),  # the remote calculator asks for what a model offers
        }


class ProviderCalculator(Calculator):
    """The built-in LJ model in-process, as an ASE calculator (the socket client's engine)."""

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self):
        super().__init__()
        from mlipserve.server.serving.local import LocalProvider

        self.provider = LocalProvider("lj")

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        res = self.provider.evaluate([self.atoms])[0]
        self.results = {
            "energy": res["energy"],
            "free_energy": res["energy"],
            "forces": res["forces"],
        }


def make_calc(kind: str) -> Calculator:
    return ZeroCalculator() if kind == "zero" else ProviderCalculator()


def serve(port: int, kind: str) -> None:
    """Child process: an mlipserve server whose model is the chosen calculator."""
    from mlipserve.server.app import start_server
    from mlipserve.server.config import Settings
    from mlipserve.server.models.ase_adapter import ASECalculatorModel
    from mlipserve.server.models.base import ModelInfo
    from mlipserve.server.models.builtin import load_builtin
    from mlipserve.server.serving.registry import Registry

    async def main():
        registry = Registry()
        if kind == "zero":
            info = ModelInfo(name="bench", version="1", kind="ase:Zero", cutoff=0.0)
            registry.add(ASECalculatorModel(ZeroCalculator, info))
        else:
            registry.add(load_builtin("lj"))
        running = await start_server(Settings(port=port, rest=False), registry)
        await running.server.wait_for_termination()

    asyncio.run(main())


def socket_client(path: str, kind: str) -> None:
    """Child process: ASE's i-PI socket client computing with the chosen calculator."""
    atoms = system()
    atoms.calc = make_calc(kind)
    SocketClient(unixsocket=path).run(atoms)


def system():
    atoms = bulk("Ar", "fcc", a=5.26, cubic=True) * (2, 2, 4)  # 64 atoms
    atoms.rattle(0.02, seed=0)
    return atoms


def bump_and_force(atoms, rng):
    atoms.positions += rng.normal(0, 1e-4, atoms.positions.shape)
    return atoms.get_forces()


def measure(kind: str) -> dict:
    """Both transports live at once, called alternately so machine noise hits both alike."""
    from mlipserve.client import RemoteCalculator

    rng = np.random.default_rng(0)
    port = free_port()
    server = child("--serve", str(port), kind)
    wait_ready(f"127.0.0.1:{port}")
    path = f"mlipserve-bench-{os.getpid()}"
    sock = os.path.join(tempfile.gettempdir(), f"ipi_{path}")
    if os.path.exists(sock):
        os.unlink(sock)
    ours, theirs = system(), system()
    model = "bench" if kind == "zero" else "lj"
    try:
        with (
            RemoteCalculator(f"127.0.0.1:{port}", model) as remote,
            SocketIOCalculator(unixsocket=path) as socket_calc,
        ):
            client = child("--socket-client", path, kind)
            ours.calc, theirs.calc = remote, socket_calc
            stream, ipi = interleaved(
                lambda: bump_and_force(ours, rng),
                lambda: bump_and_force(theirs, rng),
                REPEATS,
                warmup=50,
            )
        client.wait(20)
    finally:
        server.terminate()
    row = {
        "calculator": kind,
        "atoms": len(ours),
        "mlipserve_stream": summarize(stream),
        "ipi_unix_socket": summarize(ipi),
    }
    row["median_ratio"] = row["mlipserve_stream"]["median_us"] / row["ipi_unix_socket"]["median_us"]
    row["p90_ratio"] = row["mlipserve_stream"]["p90_us"] / row["ipi_unix_socket"]["p90_us"]
    return row


def child(*args: str) -> subprocess.Popen:
    """This script in a child process, in one of its roles."""
    return subprocess.Popen([sys.executable, "-m", "benchmarks.stream_vs_ipi", *args])


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        return serve(int(sys.argv[2]), sys.argv[3])
    if len(sys.argv) == 4 and sys.argv[1] == "--socket-client":
        return socket_client(sys.argv[2], sys.argv[3])
    rows = []
    for kind in ("zero", "lj"):
        row = measure(kind)
        rows.append(row)
        print(
            f"{kind:5s} stream median {row['mlipserve_stream']['median_us']:7.0f} µs "
            f"p90 {row['mlipserve_stream']['p90_us']:7.0f} | i-PI median "
            f"{row['ipi_unix_socket']['median_us']:7.0f} "
            f"p90 {row['ipi_unix_socket']['p90_us']:7.0f}"
            f" | ratios {row['median_ratio']:.2f} / {row['p90_ratio']:.2f}"
        )
    path = write_result("stream_vs_ipi", {"rows": rows, "goal": "median <=0.6x, p90 <=0.3x"})
    print("wrote", path)


if __name__ == "__main__":
    sys.exit(main())
