"""The batched MD driver on liquid water (default-molecular, in process): 8 waters at 300 K
stay intact at the right temperature, the thermostat's effective energy is conserved, and
the forces on the frame reached agree with GFN2-xTB (tblite), the model's own labeller."""

from __future__ import annotations

import numpy as np
import pytest
from ase import units

from mlipserve.server.models.builtin import load_builtin
from mlipserve.server.serving.local import LocalProvider
from mlipserve.server.training.molecular_frames import water_box
from mlipserve.simulation.blending.reference import ASECalculatorProvider
from mlipserve.simulation.md import MolecularDynamics
from mlipserve.simulation.md.integrators import langevin_baoab
from mlipserve.simulation.md.state import MDState
from mlipserve.simulation.properties.water import energy_drift, water_integrity

tblite = pytest.importorskip("tblite.ase")


def test_water_nvt_on_default_molecular_against_xtb():
    box = water_box(np.random.default_rng(7), 8)  # 24 atoms, 6.21 Å, as the training boxes
    state = MDState.from_atoms(box, temperature_K=300.0, seeds=0)
    md = MolecularDynamics(
        LocalProvider(load_builtin("default-molecular")),
        state,
        langevin_baoab(0.5 * units.fs, 300.0, 0.05 / units.fs),
    )
    log = md.log_energies(5)
    frames = []
    md.attach(lambda: frames.append(md.state.to_atoms(0)), 5)
    md.run(400)  # 0.2 ps
    rows = {k: v[:, 0] for k, v in log.arrays().items() if v.ndim == 2}
    prod = slice(len(frames) // 4, None)
    # mean of ~0.15 ps of τ = 20 fs Langevin on 24 atoms (σ_T ≈ 50 K): ±50 K is 3σ
    assert rows["temperature"][prod].mean() == pytest.approx(300.0, abs=50.0)
    intact = water_integrity(frames)
    assert intact["molecules_intact"] and intact["max_oh_A"] < 1.2
    # E_pot + E_kin + the heat the thermostat took: constant up to the O(dt²) splitting error
    time_ps = np.arange(len(rows["conserved"])) * 5 * 0.5e-3
    drift = energy_drift(time_ps, rows["conserved"], len(box))
    # (measured: 0.14 meV/atom/ps, std 0.09; leaving the thermostat's heat out gives ~6 meV)
    assert abs(drift["drift_meV_per_atom_per_ps"]) < 2.0 and drift["std_meV_per_atom"] < 0.5
    # the frame MD reached, evaluated by xTB: held-out force MAE 45 meV/Å, 83 on this frame
    last = frames[-1]
    xtb = ASECalculatorProvider(tblite.TBLite(method="GFN2-xTB", verbosity=0))
    ref = xtb.evaluate([last], ("energy", "forces"))[0]["forces"]
    mae = np.abs(last.get_forces() - ref).mean()
    assert mae < 0.12, f"force MAE vs xTB {mae:.3f} eV/Å"
