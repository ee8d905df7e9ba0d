"""Field sweep of the shipped field model against GFN2-xTB on held-out molecules.

For H2O, NH3, H2CO (rattled with a seed the training never used): E_z from −0.1 to 0.1 V/Å,
the model's dipole and force change (all fields in one call) beside xTB's; the polarizability
α_zz (slope of μ_z against E_z) of both. One PNG, one JSON.
Run: `.venv/bin/python -m benchmarks.field_sweep_xtb` (a few seconds).
"""

from __future__ import annotations

import numpy as np

from benchmarks.common import RESULTS, write_result
from mlipserve.server.models.builtin import load_builtin
from mlipserve.server.serving.local import LocalProvider
from mlipserve.server.training.field_data import _base, _label
from mlipserve.simulation.plotting import new_panels, save
from mlipserve.simulation.properties.field_sweep import field_sweep

NAMES = ("H2O", "NH3", "H2CO")


def main() -> None:
    provider = LocalProvider(load_builtin("field-molecules-xtb:float64"))
    fields = np.linspace(-0.1, 0.1, 11)[:, None] * np.array([0.0, 0.0, 1.0])
    fig, (ax_mu, ax_f) = new_panels(2, 11, 4.2)
    rows = {}
    for k, name in enumerate(NAMES):
        atoms = _base(name)
        atoms.rattle(0.04, seed=1000 + k)
        sweep = field_sweep(provider, atoms, fields=fields)
        ref = [_label(atoms, f) for f in fields]
        mu_ref = np.array([r.info["dipole_xtb"] for r in ref])
        f_ref = np.array([r.get_forces() for r in ref])
        zero = len(fields) // 2
        change = np.linalg.norm(sweep.forces - sweep.forces[zero], axis=-1).mean(-1)
        change_ref = np.linalg.norm(f_ref - f_ref[zero], axis=-1).mean(-1)
        alpha = np.polyfit(fields[:, 2], sweep.dipole[:, 2], 1)[0]
        alpha_ref = np.polyfit(fields[:, 2], mu_ref[:, 2], 1)[0]
        (line,) = ax_mu.plot(fields[:, 2], sweep.dipole[:, 2], "o-", ms=3, label=f"{name} model")
        ax_mu.plot(fields[:, 2], mu_ref[:, 2], "--", color=line.get_color(), label=f"{name} xTB")
        ax_f.plot(fields[:, 2], 1e3 * change, "o-", ms=3, color=line.get_color())
        ax_f.plot(fields[:, 2], 1e3 * change_ref, "--", color=line.get_color())
        rows[name] = {
            "alpha_zz_eA2_per_V": {"model": float(alpha), "xtb": float(alpha_ref)},
            "dipole_z_mae_eA": float(np.abs(sweep.dipole[:, 2] - mu_ref[:, 2]).mean()),
            "force_change_at_0.1_meV_per_A": {
                "model": float(1e3 * change[-1]),
                "xtb": float(1e3 * change_ref[-1]),
            },
        }
    ax_mu.set(xlabel="E_z (V/Å)", ylabel="μ_z (e·Å)", title="dipole: model (o) vs xTB (--)")
    ax_mu.legend(fontsize=7)
    ax_f.set(xlabel="E_z (V/Å)", ylabel="mean |F(E) − F(0)| (meV/Å)", title="forces vs field")
    print(rows)
    path = write_result("field_sweep_xtb", {"molecules": rows})
    save(fig, RESULTS / "field_sweep_xtb.png", "field-molecules-xtb vs GFN2-xTB")
    print(path)


if __name__ == "__main__":
    main()
