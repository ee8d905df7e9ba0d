"""RemoteCalculator: an ASE Calculator whose results come from an mlipserve server.

It behaves like ASE's own calculators: `results` holds only ASE's property names (so
`SinglePointCalculator(atoms, **calc.results)` works), everything the model offers for a
state comes back in one call, `atoms.info` conditions (charge, spin, `conditions`) are part
of the state, a calculator shared by threads is safe, and a forgotten one releases its
stream when it is garbage-collected. What ASE has no name for sits in `calc.extras`:
`model`, `model_version` and, for ensembles with `uncertainty=True`, `energy_std`,
`forces_std` (per atom), `max_force_std` and the server's `warnings`.
"""

from __future__ import annotations

import threading
import warnings
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.data import chemical_symbols

from mlipserve.client.client import Client, StreamSession
from mlipserve.client.errors import TrustWarning
from mlipserve.wire import conditions_from_info

# EMT's order, then what field-conditioned models add (ASE's "dipole" and "charges")
ASE_PROPERTIES = (
    "energy", "free_energy", "energies", "forces", "stress", "dipole", "charges", "born_charges",
    "polarizability",
)  # fmt: skip
EXTRAS = ("model", "model_version", "energy_std", "forces_std", "max_force_std", "warnings")


def _release(session: StreamSession | None, client: Client, owns_client: bool) -> None:
    """Close what a calculator opened (also run when it is garbage-collected)."""
    if session is not None:
        session.close()
    if owns_client:
        client.close()


def same_conditions(a: Any, b: Any) -> bool:
    """Whether two ase.Atoms carry the same per-system conditions in `info`."""
    ca, cb = conditions_from_info(a.info), conditions_from_info(b.info)
    return ca.keys() == cb.keys() and all(np.array_equal(ca[k], cb[k]) for k in ca)


def has_volume(atoms: Any) -> bool:
    """Periodic in all directions with a cell of non-zero volume (stress is defined)."""
    return bool(np.all(atoms.pbc)) and abs(float(np.linalg.det(atoms.cell.array))) > 1e-10


class RemoteCalculator(Calculator):
    """ASE calculator over a streaming session (or plain unary calls).

    Args:
        target: server address (or list of addresses), used when `client` is None.
        model: model name on the server; empty selects the default.
        client: an existing Client to use; the calculator closes it only when `owns_client`.
        owns_client: close `client` with the calculator (default: only a client it made).
        stream: use one open stream (lowest latency) rather than unary calls.
        uncertainty: ask for the ensemble spread on every call (into `extras`).
        harvest: False sends `no_harvest` with every call (a harvesting server keeps none
            of these structures); with `client`, False also turns that client's off.
    """

    implemented_properties = list(ASE_PROPERTIES)

    def __init__(
        self,
        target: str | Sequence[str] = "127.0.0.1:50051",
        model: str = "",
        *,
        client: Client | None = None,
        stream: bool = True,
        uncertainty: bool = False,
        owns_client: bool | None = None,
        harvest: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._owns_client = client is None if owns_client is None else owns_client
        self.client = client if client is not None else Client(target, model, harvest=harvest)
        self.client.harvest = self.client.harvest and harvest
        self.stream = stream
        self.uncertainty = uncertainty
        self.extras: dict[str, Any] = {}
        self._session: StreamSession | None = self.client.stream() if stream else None
        self._info: dict[str, Any] | None = None
        self._warned: set[str] = set()
        self._lock = threading.RLock()
        self._release = weakref.finalize(
            self, _release, self._session, self.client, self._owns_client
        )

    # -- what the served model offers ---------------------------------------------------
    def model_info(self) -> dict[str, Any]:
        """The served model's description (ListModels), fetched once."""
        if self._info is None:
            models = self.client.list_models()
            name = self.client.model
            chosen = [m for m in models if (m["name"] == name if name else m["is_default"])]
            if not chosen:
                served = sorted({m["name"] for m in models})
                raise ValueError(f"model {name!r} is not served; served: {served}")
            self._info = next((m for m in chosen if m["is_default"]), chosen[0])
        return self._info

    def _wanted(self, atoms: Any, properties: Sequence[str]) -> list[str]:
        """Every property to fetch for this state: what was asked, plus what is cheap."""
        info = self.model_info()
        offered = set(info["properties"]) | {"free_energy"}
        missing = [p for p in properties if p not in offered]
        if missing:
            raise PropertyNotImplementedError(
                f"model {info['name']!r} does not compute {missing}; it offers "
                f"{sorted(set(info['properties']) - {'uncertainty'})}"
            )
        if info["elements"]:
            unknown = sorted(set(atoms.numbers.tolist()) - set(info["elements"]))
            if unknown:
                symbols = [chemical_symbols[z] for z in unknown]
                raise NotImplementedError(f"model {info['name']!r} has no parameters for {symbols}")
        wanted = {"energy", "forces"} | {p for p in properties if p != "free_energy"}
        wanted |= {"energies", "charges"} & offered  # they come with the energy
        if "stress" in offered and has_volume(atoms):
            wanted.add("stress")  # one more backward pass, not another round trip
        if self.uncertainty and "uncertainty" in offered:
            wanted.add("uncertainty")
        return sorted(wanted)

    # -- the Calculator protocol ----------------------------------------------------------
    def check_state(self, atoms: Any, tol: float = 1e-15) -> list[str]:
        """ASE's state check, plus the conditions in `atoms.info`."""
        changes = super().check_state(atoms, tol)
        if self.atoms is not None and not changes and not same_conditions(self.atoms, atoms):
            changes.append("info")
        return changes

    def get_property(self, name: str, atoms: Any = None, allow_calculation: bool = True) -> Any:
        """ASE's `get_property`, one thread at a time (the state and results are shared)."""
        with self._lock:
            return super().get_property(name, atoms, allow_calculation)

    def calculate(
        self, atoms: Any = None, properties: Sequence[str] = ("energy",), system_changes=all_changes
    ) -> None:
        """Evaluate `atoms` remotely and fill `results` (ASE names) and `extras`."""
        with self._lock:
            super().calculate(atoms, properties, system_changes)
            wanted = self._wanted(self.atoms, properties)
            evaluator = self._session if self._session is not None else self.client
            result = evaluator.evaluate(self.atoms, wanted)
            result = {**result, "free_energy": result["energy"]}
            self.results = {k: result[k] for k in ASE_PROPERTIES if k in result}
            self.extras = {k: result[k] for k in EXTRAS if k in result}
            self._warn(self.extras.get("warnings", ()))

    def _warn(self, flags: Sequence[str]) -> None:
        """Each kind of server flag once per calculator (a trajectory), as a TrustWarning."""
        for flag in flags:
            kind = flag.split(" ", 3)[:3]  # e.g. "untrusted: energy std"
            key = " ".join(kind)
            if key not in self._warned:
                self._warned.add(key)
                warnings.warn(
                    f"{self.client.model or 'default model'}: {flag} (further such flags of "
                    "this calculator are in calc.extras['warnings'] only)",
                    TrustWarning,
                    stacklevel=4,
                )

    def todict(self, skip_default: bool = True) -> dict[str, Any]:
        """The settings that make an equal calculator (ASE's convention)."""
        return {
            "target": list(self.client.targets),
            "model": self.client.model,
            "stream": self.stream,
            "uncertainty": self.uncertainty,
            "harvest": self.client.harvest,
        }

    def __deepcopy__(self, memo: dict) -> RemoteCalculator:
        """A calculator with the same settings, its own connection, and copies of the state."""
        import copy

        new = RemoteCalculator(
            client=self.client.clone(),
            owns_client=True,
            stream=self.stream,
            uncertainty=self.uncertainty,
        )
        new.atoms = None if self.atoms is None else self.atoms.copy()
        new.results = copy.deepcopy(self.results, memo)
        new.extras = copy.deepcopy(self.extras, memo)
        return new

    def close(self) -> None:
        """Close the stream (and the client when this calculator created it)."""
        self._release()
        self._session = None

    def __enter__(self) -> RemoteCalculator:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
