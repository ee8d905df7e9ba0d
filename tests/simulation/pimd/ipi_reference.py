"""Run i-PI 3.3.1 (the peer code) on a unix socket with one of its own py_driver potentials.

`start_ipi` writes an input (PIMD, NVT, PILE-L or PILE-G, BAOAB splitting, no centre-of-mass
fixing) and an xyz of N atoms, starts `i-pi` and then `i-pi-py_driver` in the background and
returns an `IPIRun`; `IPIRun.wait()` returns the properties i-PI wrote, one array per name.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BIN = Path(sys.executable).parent
PROPERTIES = ("step", "kinetic_cv", "kinetic_td", "potential", "r_gyration", "conserved")
UNITS = {
    "kinetic_cv": "electronvolt",
    "kinetic_td": "electronvolt",
    "potential": "electronvolt",
    "r_gyration": "angstrom",
    "conserved": "electronvolt",
}

INPUT = """<simulation verbosity='{verbosity}' safe_stride='1000000'>
  <output prefix='sim'>
    <properties stride='{stride}' filename='out'> [ {properties} ] </properties>
  </output>
  <total_steps> {steps} </total_steps>
  <prng><seed> {seed} </seed></prng>
  <ffsocket name='driver' mode='unix' pbc='false'>
    <address> {address} </address>
    <latency> 1e-4 </latency>
  </ffsocket>
  <system>
    <initialize nbeads='{beads}'>
      <file mode='xyz' units='angstrom'> init.xyz </file>
      <velocities mode='thermal' units='kelvin'> {temperature} </velocities>
    </initialize>
    <forces><force forcefield='driver'/></forces>
    <motion mode='dynamics'>
      <fixcom> False </fixcom>
      <dynamics mode='nvt' splitting='baoab'>
        <timestep units='femtosecond'> {dt_fs} </timestep>
        <thermostat mode='{thermostat}'>
          <tau units='femtosecond'> {tau_fs} </tau>
        </thermostat>
      </dynamics>
    </motion>
    <ensemble><temperature units='kelvin'> {temperature} </temperature></ensemble>
  </system>
</simulation>
"""


def ipi_available() -> bool:
    """Whether the `i-pi` and `i-pi-py_driver` scripts sit next to this Python."""
    return (BIN / "i-pi").exists() and (BIN / "i-pi-py_driver").exists()


@dataclass
class IPIRun:
    """A running i-PI and its driver; `wait()` collects the output."""

    folder: Path
    server: subprocess.Popen
    driver: subprocess.Popen | None
    socket: Path

    def wait(self, timeout: float = 120.0) -> dict[str, np.ndarray]:
        """Wait for i-PI to finish and read `sim.out` (one array per property)."""
        try:
            self.server.wait(timeout)
        finally:
            for proc in (self.server, self.driver):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
            self.socket.unlink(missing_ok=True)
        data = np.loadtxt(self.folder / "sim.out", ndmin=2)
        return {name: data[:, i] for i, name in enumerate(PROPERTIES)}


def start_ipi(
    folder: Path,
    symbols: list[str],
    positions: np.ndarray,
    beads: int,
    steps: int,
    temperature: float,
    dt_fs: float,
    tau_fs: float,
    driver_args: list[str],
    thermostat: str = "pile_l",
    seed: int = 12345,
    stride: int = 1,
    cell: float = 50.0,
    verbosity: str = "low",
) -> IPIRun:
    """Start i-PI in `folder` and an `i-pi-py_driver` with `driver_args` (e.g. -m harmonic).

    With verbosity "medium" i-PI logs its mean wall time per step every 100 steps to ipi.log.
    """
    folder.mkdir(parents=True, exist_ok=True)
    address = f"mlipserve-{uuid.uuid4().hex[:10]}"
    header = (
        f"# CELL(abcABC): {cell} {cell} {cell} 90.0 90.0 90.0 "
        "cell{angstrom} positions{angstrom}"
    )
    lines = [str(len(symbols)), header]
    lines += [f"{s} {x:.10f} {y:.10f} {z:.10f}" for s, (x, y, z) in zip(symbols, positions)]
    (folder / "init.xyz").write_text("\n".join(lines) + "\n")
    props = ", ".join(n if n == "step" else f"{n}{{{UNITS[n]}}}" for n in PROPERTIES)
    (folder / "input.xml").write_text(
        INPUT.format(
            stride=stride,
            properties=props,
            steps=steps,
            seed=seed,
            address=address,
            beads=beads,
            temperature=temperature,
            dt_fs=dt_fs,
            thermostat=thermostat,
            tau_fs=tau_fs,
            verbosity=verbosity,
        )
    )
    log = (folder / "ipi.log").open("w")
    server = subprocess.Popen(
        [str(BIN / "i-pi"), "input.xml"], cwd=folder, stdout=log, stderr=subprocess.STDOUT
    )
    socket = Path("/tmp") / f"ipi_{address}"
    deadline = time.monotonic() + 60
    while not socket.exists():
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            server.wait(10)
            log.close()
            raise RuntimeError(f"i-PI did not open its socket: {(folder / 'ipi.log').read_text()}")
        time.sleep(0.05)
    driver = subprocess.Popen(
        [str(BIN / "i-pi-py_driver"), "-u", "-a", address, *driver_args],
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()  # the children hold their own copies
    return IPIRun(folder, server, driver, socket)
