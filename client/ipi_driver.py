"""i-PI socket driver whose forces come from an mlipserve server (`mlipserve ipi-driver`).

i-PI (or ASE's `SocketIOCalculator`, or any code that serves the i-PI protocol) listens on a
socket; this driver connects as its client and forwards every structure it is sent to the
server over a gRPC stream. As in ASE's socketio, transport (`connect`), protocol (ASE's
`IPIProtocol`) and adapter (`IPIBridge`) are separate. Several connections in one process
(`clients`) let i-PI hand out its beads concurrently, and the server batches them; i-PI's
batched protocol (`<batch_size>` in `<ffsocket>`, announced in the INIT string) sends all
beads over one connection, and they go to the server as one request.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Protocol

import numpy as np
from ase import Atoms, units
from ase.calculators.socketio import IPIProtocol, SocketClosed
from ase.data import chemical_symbols
from ase.stress import voigt_6_to_full_3x3_stress

from mlipserve.client.client import Client, StreamSession
from mlipserve.client.core import RetryPolicy

DEFAULT_PORT = 31415  # ASE's SocketIOCalculator default; i-PI takes any <port>
SOCKETS_PREFIX = "/tmp/ipi_"  # where i-PI (and ASE) bind a unix socket named <address>
HDRLEN = 12


class AtomsEvaluator(Protocol):
    """What the bridge needs: `Client`, `StreamSession` and `RemoteProvider` all fit."""

    def evaluate(self, systems: list[Atoms], properties: Sequence[str]) -> list[dict]: ...


def unix_socket_path(address: str, prefix: str = SOCKETS_PREFIX) -> str:
    """The file of i-PI's unix socket: `prefix + address`, or `address` when it is a path."""
    return address if "/" in address else prefix + address


def connect(
    address: str = "localhost",
    port: int = DEFAULT_PORT,
    *,
    unix: bool = False,
    wait_s: float = 30.0,
) -> socket.socket:
    """Open a socket to i-PI, retrying while it does not listen yet (up to `wait_s` seconds).

    TCP sockets get TCP_NODELAY: without it Nagle's algorithm holds back the small protocol
    messages and each force call waits ~40 ms for a delayed ACK.
    """
    where = unix_socket_path(address) if unix else f"{address}:{port}"
    deadline = time.monotonic() + wait_s
    while True:
        sock = socket.socket(socket.AF_UNIX if unix else socket.AF_INET, socket.SOCK_STREAM)
        try:
            if unix:
                sock.connect(unix_socket_path(address))
            else:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.connect((address, port))
            return sock
        except (FileNotFoundError, ConnectionRefusedError) as err:
            sock.close()
            if time.monotonic() >= deadline:
                raise ConnectionError(
                    f"no i-PI server listens at {where} (waited {wait_s:g} s): {err}"
                ) from None
            time.sleep(0.1)
        except OSError as err:
            sock.close()
            raise ConnectionError(f"cannot connect to i-PI at {where}: {err}") from None


def virial_from_stress(stress: np.ndarray, volume: float) -> np.ndarray:
    """Virial (eV) from a Voigt stress (eV/Å³): W = -V σ."""
    return -volume * voigt_6_to_full_3x3_stress(np.asarray(stress))


def batch_size_from_init(init: str) -> int:
    """The `batch_size:N` token i-PI appends to the INIT string (1 when absent)."""
    for token in init.split(","):
        key, sep, value = token.partition(":")
        if sep and key.strip() == "batch_size":
            try:
                return max(1, int(value.strip()))
            except ValueError:
                raise ValueError(f"i-PI sent a bad batch size in INIT: {token!r}") from None
    return 1


class IPIBridge:
    """One i-PI client connection answered with the results of an mlipserve evaluator.

    Speaks the driver side of the i-PI protocol: STATUS (NEEDINIT until INIT, then READY or
    HAVEDATA), INIT (bead index and parameter string), POSDATA (one structure, or
    `batch_size` of them in i-PI's batched protocol), GETFORCE (FORCEREADY with energy,
    forces and virial in atomic units) and EXIT. Each POSDATA is one `evaluate` call.

    Args:
        sock: a connected socket (see `connect`).
        evaluator: where forces come from, e.g. `client.stream()`.
        template: the system i-PI runs; gives atomic numbers and pbc (i-PI sends neither).
        stress: ask for the stress and send the virial W = -V σ (zeros otherwise).
        log: a text file for ASE's protocol log, or None.
    """

    def __init__(
        self,
        sock: socket.socket,
        evaluator: AtomsEvaluator,
        template: Atoms,
        *,
        stress: bool = True,
        log: IO[str] | None = None,
    ) -> None:
        if len(template) == 0:
            raise ValueError("the template structure has no atoms")
        self.protocol = IPIProtocol(sock, txt=log)
        self.evaluator = evaluator
        self.numbers = template.numbers.copy()
        self.pbc = template.pbc.copy()
        self.properties = ("energy", "forces", "stress") if stress else ("energy", "forces")
        self.state = "NEEDINIT"
        self.bead_index: int | None = None
        self.init_string = ""
        self.batch_size = 1
        self.structures = 0
        self.said_exit = False
        self._results: list[tuple] = []

    def run(self) -> None:
        """Answer i-PI until it sends EXIT or closes the connection; then close the socket."""
        proto = self.protocol
        handlers = {
            "STATUS": lambda: proto.sendmsg(self.state),
            "INIT": self._init,
            "POSDATA": self._posdata,
            "GETFORCE": self._getforce,
        }
        try:
            while True:
                try:
                    msg = proto.recvmsg()
                except (SocketClosed, ConnectionError):
                    return
                if msg == "EXIT":
                    self.said_exit = True
                    return
                if msg not in handlers:
                    raise ValueError(f"unexpected i-PI message {msg!r}")
                handlers[msg]()
        finally:
            proto.socket.close()

    def _init(self) -> None:
        bead_index, initbytes = self.protocol.recvinit()
        self.bead_index = int(bead_index[0])
        self.init_string = initbytes.tobytes().decode("utf-8", errors="replace").rstrip("\0")
        self.batch_size = batch_size_from_init(self.init_string)
        self.state = "READY"

    def _atoms(self, cell: np.ndarray, positions: np.ndarray) -> Atoms:
        if len(positions) != len(self.numbers):
            raise ValueError(
                f"i-PI sent {len(positions)} atoms but the template structure "
                f"has {len(self.numbers)}"
            )
        return Atoms(numbers=self.numbers, positions=positions, cell=cell, pbc=self.pbc)

    def _posdata(self) -> None:
        proto = self.protocol
        if self.batch_size == 1:
            cell, _icell, positions = proto.recvposdata()
            systems = [self._atoms(cell, positions)]
        else:  # one atom count, then batch_size (h, h⁻¹) blocks, then the positions
            natoms = int(proto.recv(1, np.int32)[0])
            cells = proto.recv((self.batch_size, 2, 3, 3), np.float64)
            positions = proto.recv((self.batch_size, natoms, 3), np.float64)
            systems = [
                self._atoms(cells[i, 0].T * units.Bohr, positions[i] * units.Bohr)
                for i in range(self.batch_size)
            ]
        results = self.evaluator.evaluate(systems, self.properties)
        stress = "stress" in self.properties
        self._results = [
            (
                r["energy"],
                r["forces"],
                virial_from_stress(r["stress"], a.cell.volume) if stress else np.zeros((3, 3)),
            )
            for r, a in zip(results, systems)
        ]
        self.structures += len(systems)
        self.state = "HAVEDATA"

    def _getforce(self) -> None:
        if self.state != "HAVEDATA":
            raise ValueError("i-PI asked for forces before sending positions")
        if self.batch_size == 1:
            self.protocol.sendforce(*self._results[0])
        else:  # energies, one atom count, forces, virials, then an empty extra per structure
            energy = np.array([r[0] for r in self._results]) / units.Ha
            forces = np.stack([r[1] for r in self._results]) * (units.Bohr / units.Ha)
            virial = np.stack([r[2].T for r in self._results]) / units.Ha
            payload = b"".join(
                [
                    b"FORCEREADY".ljust(HDRLEN),
                    energy.tobytes(),
                    np.int32(forces.shape[1]).tobytes(),
                    forces.tobytes(),
                    virial.tobytes(),
                    np.zeros(len(self._results), np.int32).tobytes(),
                ]
            )
            self.protocol.socket.sendall(payload)
        self._results = []
        self.state = "READY"


@dataclass
class DriverReport:
    """What a driver run did, per connection: structures evaluated, bead index (INIT), batch
    size, and whether i-PI ended with EXIT (rather than closing the socket)."""

    model: str
    structures: list[int] = field(default_factory=list)
    said_exit: list[bool] = field(default_factory=list)
    bead_indices: list[int | None] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)


def check_model(client: Client, model: str, template: Atoms, stress: bool) -> str:
    """`name@version` the requests will reach ("server default" when `model` is empty).

    ValueError when the model is not served, lacks the template's elements, or gives no
    stress while the virial is wanted. ServerUnavailable when no server answers.
    """
    models = client.list_models()
    if not model:
        return "server default"
    versions = [m for m in models if m["name"] == model]
    if not versions:
        raise ValueError(
            f"model {model!r} is not served at {', '.join(client.targets)}; "
            f"served: {sorted({m['name'] for m in models})}"
        )
    info = next((m for m in versions if m["is_default"]), versions[0])
    missing = (
        sorted(
            set(template.get_chemical_symbols()) - {chemical_symbols[z] for z in info["elements"]}
        )
        if info["elements"]
        else []
    )
    if missing:
        raise ValueError(f"model {model!r} does not cover the elements {missing} of the structure")
    if stress and "stress" not in info["properties"]:
        raise ValueError(f"model {model!r} gives no stress; run with stress off (--no-stress)")
    return f"{info['name']}@{info['version']}"


def run_ipi_driver(
    template: Atoms,
    target: str | Sequence[str] = "127.0.0.1:50051",
    model: str = "",
    *,
    address: str = "localhost",
    port: int = DEFAULT_PORT,
    unix: bool = False,
    clients: int = 1,
    stress: bool = True,
    api_key: str | None = None,
    connect_wait_s: float = 30.0,
    server_wait_s: float = 10.0,
    log: IO[str] | None = None,
) -> DriverReport:
    """Serve i-PI's force requests from an mlipserve server until i-PI says EXIT.

    Checks the server and model first (see `check_model`; ServerUnavailable after
    `server_wait_s` when no server answers), then opens `clients` connections to i-PI,
    each in its own thread with its own gRPC stream over one channel.
    """
    if clients < 1:
        raise ValueError(f"clients must be at least 1, got {clients}")
    # a system without a periodic cell has no volume, hence no stress: i-PI gets a zero virial
    stress = stress and bool(np.all(template.pbc))
    if not unix and not 0 < port < 65536:
        raise ValueError(f"port must be in 1..65535, got {port}")
    with Client(
        target, model, api_key=api_key, retry=RetryPolicy(total_timeout_s=server_wait_s)
    ) as probe:
        report = DriverReport(model=check_model(probe, model, template, stress))
    client = Client(target, model, api_key=api_key)
    sockets: list[socket.socket] = []
    sessions: list[StreamSession] = []
    bridges: list[IPIBridge] = []
    try:
        for _ in range(clients):
            sockets.append(connect(address, port, unix=unix, wait_s=connect_wait_s))
            sessions.append(client.stream())
            bridges.append(IPIBridge(sockets[-1], sessions[-1], template, stress=stress, log=log))
        _run_all(bridges, sockets)
    finally:
        for session in sessions:
            session.close()
        for s in sockets:
            s.close()
        client.close()
    for bridge in bridges:
        report.structures.append(bridge.structures)
        report.said_exit.append(bridge.said_exit)
        report.bead_indices.append(bridge.bead_index)
        report.batch_sizes.append(bridge.batch_size)
    return report


def _run_all(bridges: list[IPIBridge], sockets: list[socket.socket]) -> None:
    """Run every bridge in a thread; the first error stops the others and is raised."""
    errors: list[BaseException] = []

    def stop_all() -> None:
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def work(bridge: IPIBridge) -> None:
        try:
            bridge.run()
        except BaseException as err:  # noqa: BLE001 - handed to the main thread
            errors.append(err)
            stop_all()

    threads = [threading.Thread(target=work, args=(b,), daemon=True) for b in bridges]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.5)
    except KeyboardInterrupt:
        stop_all()
        raise
    if errors:
        raise errors[0]
