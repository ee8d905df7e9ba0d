"""The `nacl-rigid-ion` labeller: the served Fumi–Tosi model in-process as an ASE calculator."""

from __future__ import annotations

from ase.calculators.calculator import Calculator, all_changes

from mlipserve.server.models.rigid_ion import nacl_rigid_ion
from mlipserve.server.serving.local import LocalProvider


class RigidIonCalculator(Calculator):
    """The Fumi–Tosi model in-process as an ASE calculator (the `nacl-rigid-ion` labeller)."""

    implemented_properties = ["energy", "forces", "stress", "energies"]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.provider = LocalProvider(nacl_rigid_ion(device="cpu"))

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        """Energy, forces, per-atom energies (and stress for a periodic cell) in one call."""
        super().calculate(atoms, properties, system_changes)
        props = ["energy", "forces", "energies"] + (["stress"] if self.atoms.pbc.all() else [])
        result = self.provider.evaluate([self.atoms], props)[0]
        self.results = {k: result[k] for k in props}
