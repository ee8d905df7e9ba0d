"""`mlipserve ipi-driver`: real i-PI PIMD on served EMT equals i-PI driven by ASE's EMT."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.socketio import SocketClient, SocketIOCalculator
from ase.cell import Cell
from typer.testing import CliRunner

from mlipserve.cli import app
from mlipserve.client.ipi_driver import run_ipi_driver, unix_socket_path
from tests.conftest import free_port

IPI = Path(sys.executable).with_name("i-pi")
STEPS = 10
BEADS = 4
PROPERTIES = (
    "step",
    "conserved{electronvolt}",
    "potential{electronvolt}",
    "kinetic_cv{electronvolt}",
    "pressure_cv{megapascal}",
)

XML = """<simulation verbosity="quiet" safe_stride="1000">
  <output prefix="sim">
    <properties stride="1" filename="out"> [ {properties} ] </properties>
    <trajectory filename="pos" stride="{steps}" format="ase"> positions </trajectory>
  </output>
  <total_steps> {steps} </total_steps>
  <prng><seed> 31415 </seed></prng>
  <ffsocket name="driver" mode="{mode}" pbc="false">
    <address> {address} </address> <port> {port} </port> <batch_size> {batch} </batch_size>
  </ffsocket>
  <system>
    <initialize nbeads="{beads}">
      <file mode="xyz"> init.xyz </file>
      <velocities mode="thermal" units="kelvin"> 300 </velocities>
    </initialize>
    <forces><force forcefield="driver"/></forces>
    <motion mode="dynamics">
      <dynamics mode="nvt">
        <timestep units="femtosecond"> 1.0 </timestep>
        <thermostat mode="pile_l"><tau units="femtosecond"> 100 </tau></thermostat>
      </dynamics>
    </motion>
    <ensemble><temperature units="kelvin"> 300 </temperature></ensemble>
  </system>
</simulation>
"""


def copper(triclinic: bool = False):
    """A 32-atom fcc Cu cell, slightly rattled; or 27 atoms in the rhombohedral primitive
    cell (60° angles, i-PI's orientation: a along x, b in the xy plane), where a transposed
    cell matrix changes the structure."""
    if triclinic:
        atoms = bulk("Cu", "fcc", a=3.61) * (3, 3, 3)
        atoms.set_cell(Cell.fromcellpar(atoms.cell.cellpar()), scale_atoms=True)
    else:
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
    atoms.rattle(0.02, seed=1)
    return atoms


def write_inputs(
    folder: Path, mode: str, batch: int = 1, triclinic: bool = False
) -> tuple[str, int]:
    """i-PI's init.xyz and input.xml in `folder`; returns the socket address and port."""
    atoms = copper(triclinic)
    cellpar = " ".join(f"{float(x):.17g}" for x in atoms.cell.cellpar())
    header = f"# CELL(abcABC): {cellpar} cell{{angstrom}} positions{{angstrom}}"
    lines = [str(len(atoms)), header]
    lines += [
        f"{s} {x:.17g} {y:.17g} {z:.17g}" for s, (x, y, z) in zip(atoms.symbols, atoms.positions)
    ]
    (folder / "init.xyz").write_text("\n".join(lines) + "\n")
    address = f"mlipserve-{uuid.uuid4().hex[:10]}" if mode == "unix" else "127.0.0.1"
    port = free_port()
    (folder / "input.xml").write_text(
        XML.format(
            properties=", ".join(PROPERTIES),
            steps=STEPS,
            mode=mode,
            address=address,
            port=port,
            batch=batch,
            beads=BEADS,
        )
    )
    return address, port


def start_ipi(folder: Path) -> subprocess.Popen:
    """i-PI on folder/input.xml (its socket appears a moment later)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.Popen(
        [str(IPI), "input.xml"],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_for_socket(proc: subprocess.Popen, address: str, timeout: float = 30.0) -> None:
    """Block until i-PI has bound its unix socket (ASE's client does not retry)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(unix_socket_path(address)):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"i-PI did not open its socket: {proc.communicate()[0][-3000:]}")
        time.sleep(0.05)


def finish(proc: subprocess.Popen, folder: Path) -> dict[str, np.ndarray]:
    """Wait for i-PI; its properties (columns of sim.out) and final bead positions."""
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out.decode(errors="replace")[-3000:]
    table = np.loadtxt(folder / "sim.out", ndmin=2)
    beads = [ase.io.read(folder / f"sim.pos_{b}.extxyz", index=-1).positions for b in range(BEADS)]
    return {
        **{name: table[:, i] for i, name in enumerate(PROPERTIES)},
        "positions": np.array(beads),
    }


def run_reference(folder: Path, triclinic: bool = False) -> dict[str, np.ndarray]:
    """i-PI driven the way its docs show: ASE's SocketClient with EMT in-process."""
    address, _ = write_inputs(folder, "unix", triclinic=triclinic)
    proc = start_ipi(folder)
    atoms = copper(triclinic)
    atoms.calc = EMT()
    wait_for_socket(proc, address)
    connect(address).run(atoms, use_stress=True)
    return finish(proc, folder)


def connect(address: str, timeout: float = 30.0) -> SocketClient:
    """ASE's SocketClient on i-PI's unix socket, retried: the socket file appears when i-PI
    binds it, a moment before it listens (a connect in between is refused)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return SocketClient(unixsocket=address)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return run_reference(tmp_path_factory.mktemp("ipi-reference"))


@pytest.fixture(scope="module")
def reference_triclinic(tmp_path_factory):
    return run_reference(tmp_path_factory.mktemp("ipi-reference-triclinic"), triclinic=True)


def run_bridge(
    folder: Path, server, mode: str, clients: int, batch: int = 1, triclinic: bool = False
):
    address, port = write_inputs(folder, mode, batch, triclinic)
    proc = start_ipi(folder)
    report = run_ipi_driver(
        copper(triclinic),
        server.address,
        "emt",
        address=address,
        port=port,
        unix=mode == "unix",
        clients=clients,
    )
    return finish(proc, folder), report


@pytest.mark.parametrize(("mode", "clients", "batch"), [("unix", 2, 1), ("inet", 1, BEADS)])
def test_pimd_through_bridge_equals_ase_socket_client(
    reference, server, tmp_path, mode, clients, batch
):
    """Same seed, same EMT: i-PI's energies, pressure and bead positions agree to 1e-8.

    Reference: the same i-PI input driven by ASE's SocketClient with ASE's EMT in-process
    (the usual way to couple ASE calculators to i-PI). Both paths evaluate EMT in float64,
    so any protocol or unit slip (Bohr, Hartree, virial transpose, bead mix-up) shows far
    above 1e-8 (relative); the energies must also change along the run. Variants: unix
    socket with two connections (beads dispatched concurrently); TCP with i-PI's batched
    protocol (all beads in one message, one server request).
    """
    ours, report = run_bridge(tmp_path, server, mode, clients, batch)
    assert report.model == "emt@ase"
    assert sum(report.structures) >= BEADS * STEPS
    assert report.batch_sizes == [batch] * clients
    assert report.said_exit == [True] * clients
    assert None not in report.bead_indices  # every connection went through INIT
    assert np.ptp(reference["potential{electronvolt}"]) > 1e-3
    for key in PROPERTIES[1:]:
        np.testing.assert_allclose(ours[key], reference[key], rtol=1e-8, atol=1e-8, err_msg=key)
    np.testing.assert_allclose(ours["positions"], reference["positions"], rtol=0, atol=1e-8)


def test_triclinic_pimd_through_bridge_equals_ase_socket_client(
    reference_triclinic, server, tmp_path
):
    """The same check on a rhombohedral cell (60° angles): i-PI sends an upper-triangular h
    with the lattice vectors as columns; read as rows (a transposed cell) the structure is a
    different crystal and the energies disagree by far more than 1e-8."""
    cell = copper(triclinic=True).cell.array
    assert np.abs(cell - cell.T).max() > 1.0  # a transposed cell cannot hide here
    ours, report = run_bridge(tmp_path, server, "inet", 1, BEADS, triclinic=True)
    assert report.model == "emt@ase" and sum(report.structures) >= BEADS * STEPS
    assert np.ptp(reference_triclinic["potential{electronvolt}"]) > 1e-3
    for key in PROPERTIES[1:]:
        np.testing.assert_allclose(
            ours[key], reference_triclinic[key], rtol=1e-8, atol=1e-8, err_msg=key
        )
    np.testing.assert_allclose(ours["positions"], reference_triclinic["positions"], atol=1e-8)


def test_ase_socket_server_through_cli_matches_emt(server, tmp_path):
    """ASE's SocketIOCalculator (the i-PI server side) on `mlipserve ipi-driver`: EMT values.

    Reference: ASE's EMT in-process on the same rattled structures; energy, forces and the
    stress rebuilt from the virial agree to 1e-9 (double precision, Bohr/Hartree round
    trip). The command exits 0 once the server sends EXIT.
    """
    write_inputs(tmp_path, "unix")  # i-PI's init.xyz: elements only, pbc from --pbc
    name = f"mlipserve-{uuid.uuid4().hex[:10]}"
    with SocketIOCalculator(unixsocket=name) as calc:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlipserve.cli",
                "ipi-driver",
                str(tmp_path / "init.xyz"),
                "--unix",
                "--address",
                name,
                "--server",
                server.address,
                "--model",
                "emt",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        got, want = [], []
        for seed in range(3):
            probe = copper()
            probe.rattle(0.05, seed=10 + seed)
            probe.calc = calc
            got.append((probe.get_potential_energy(), probe.get_forces(), probe.get_stress()))
            probe.calc = EMT()
            want.append((probe.get_potential_energy(), probe.get_forces(), probe.get_stress()))
        calc.server.protocol.end()
    out = proc.communicate(timeout=30)[0].decode(errors="replace")
    assert proc.returncode == 0, out
    assert "3 structures evaluated on emt@ase" in out and "without EXIT" not in out
    for (e, f, s), (e0, f0, s0) in zip(got, want):
        assert abs(e - e0) < 1e-9
        np.testing.assert_allclose(f, f0, rtol=0, atol=1e-9)
        np.testing.assert_allclose(s, s0, rtol=0, atol=1e-9)
        assert np.abs(s0).max() > 1e-3


def test_atom_count_mismatch_is_a_clear_error(server):
    """A structure of another size than the template stops the driver with a ValueError."""
    name = f"mlipserve-{uuid.uuid4().hex[:10]}"
    failures: list[BaseException] = []

    def ask() -> None:
        small = bulk("Cu", "fcc", a=3.61, cubic=True)
        with SocketIOCalculator(unixsocket=name) as calc:
            small.calc = calc
            try:
                small.get_potential_energy()
            except OSError as err:  # the driver hangs up: ASE sees a closed socket
                failures.append(err)

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    with pytest.raises(ValueError, match="i-PI sent 4 atoms but the template structure has 32"):
        run_ipi_driver(copper(), server.address, "emt", address=name, unix=True)
    thread.join(10)
    assert failures


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--server", "127.0.0.1:{dead}", "--server-wait", "0.5"], 1, "no server answered"),
        (["--server", "{live}", "--model", "nope"], 2, "model 'nope' is not served"),
        (
            ["--server", "{live}", "--unix", "--address", "nothing-{dead}", "--wait", "0.3"],
            1,
            "no i-PI server listens at /tmp/ipi_nothing",
        ),
        (["--server", "{live}", "--clients", "0"], 2, "clients must be at least 1"),
    ],
)
def test_bad_inputs_exit_with_a_clear_message(server, tmp_path, args, code, message):
    """Unreachable server, unknown model, no i-PI socket, no clients: message and exit code."""
    ase.io.write(tmp_path / "init.xyz", copper())
    args = [a.format(dead=free_port(), live=server.address) for a in args]
    result = CliRunner().invoke(app, ["ipi-driver", str(tmp_path / "init.xyz"), *args])
    assert result.exit_code == code, result.output
    assert message in " ".join(result.output.split())


def test_elements_the_model_lacks_are_refused_before_connecting(server):
    """Iron is not in EMT's parameter set: the driver says so before it touches i-PI."""
    iron = bulk("Fe", "bcc", a=2.87, cubic=True)
    with pytest.raises(ValueError, match=r"model 'emt' does not cover the elements \['Fe'\]"):
        run_ipi_driver(
            iron, server.address, "emt", address="never-used", unix=True, connect_wait_s=0
        )


def test_driver_module_imports_without_torch():
    """The bridge is part of the thin client: importing it loads neither torch nor the server."""
    code = (
        "import sys, mlipserve.client.ipi_driver; "
        "bad = [m for m in ('torch', 'mlipserve.server') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_molecule_without_pbc_gets_a_zero_virial_not_an_error(server, tmp_path):
    """`--no-pbc` on a molecule: energy and forces are EMT's; the virial is sent as zeros
    (there is no volume, hence no stress) instead of failing with a stress error."""
    from ase.build import molecule

    probe = molecule("CO")
    probe.center(vacuum=5.0)
    probe.pbc = False
    ase.io.write(tmp_path / "co.xyz", probe)
    name = f"mlipserve-{uuid.uuid4().hex[:10]}"
    with SocketIOCalculator(unixsocket=name) as calc:
        cmd = [sys.executable, "-m", "mlipserve.cli", "ipi-driver", str(tmp_path / "co.xyz")]
        cmd += ["--unix", "--address", name, "--target", server.address, "--model", "emt"]
        proc = subprocess.Popen(
            [*cmd, "--no-pbc"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        probe.calc = calc
        energy, forces = probe.get_potential_energy(), probe.get_forces()
        calc.server.protocol.end()
    out = proc.communicate(timeout=30)[0].decode(errors="replace")
    assert proc.returncode == 0, out
    probe.calc = EMT()
    assert abs(energy - probe.get_potential_energy()) < 1e-9
    np.testing.assert_allclose(forces, probe.get_forces(), atol=1e-9)
    assert np.abs(forces).max() > 0.1
