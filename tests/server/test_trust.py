"""Trust levels: results carry 'candidate' / 'untrusted' flags from the ensemble's force std."""

from __future__ import annotations

from ase.build import bulk

from mlipserve.server.models.base import TRUST_HI, TRUST_LO
from mlipserve.server.serving.local import LocalProvider


def test_flags_follow_max_force_std_against_trust_levels():
    provider = LocalProvider("lj-ensemble")
    calm = bulk("Ar", "fcc", a=5.26, cubic=True)
    squeezed = calm.copy()
    squeezed.positions[0] += [1.2, 0.0, 0.0]  # far closer than any argon pair: members disagree
    mild = calm.copy()
    mild.positions[0] += [0.8, 0.0, 0.0]
    results = provider.evaluate([calm, mild, squeezed], ["energy", "forces", "uncertainty"])
    for res in results:
        std, flags = res["max_force_std"], res.get("warnings", [])
        if std > TRUST_HI:
            assert flags and flags[0].startswith("untrusted"), (std, flags)
        elif std > TRUST_LO:
            assert flags and flags[0].startswith("candidate"), (std, flags)
        else:
            assert not flags, (std, flags)
    stds = [r["max_force_std"] for r in results]
    assert stds[0] < TRUST_LO < TRUST_HI < stds[2]  # the three regimes are all exercised
    plain = provider.evaluate([squeezed], ["energy", "forces"])[0]
    assert "warnings" not in plain  # no uncertainty asked: no flag


def test_a_symmetric_cell_far_outside_the_model_is_flagged_by_its_energy_std():
    """The README's old example: Cu on the argon committee. Every force is zero by symmetry
    (so is the force std), yet the energy is hundreds of eV off and the members disagree by
    tens of eV per atom: the energy std per atom flags it."""
    from mlipserve.server.models.base import ENERGY_TRUST_HI

    provider = LocalProvider("lj-ensemble")
    copper = bulk("Cu", "fcc", a=3.61, cubic=True)
    (res,) = provider.evaluate([copper], ["energy", "forces", "uncertainty"])
    assert res["max_force_std"] < TRUST_LO  # the force check alone passes it
    assert res["energy_std"] / len(copper) > ENERGY_TRUST_HI
    assert any(w.startswith("untrusted: energy std") for w in res["warnings"]), res["warnings"]
    argon = bulk("Ar", "fcc", a=5.26, cubic=True)
    (calm,) = provider.evaluate([argon], ["energy", "forces", "uncertainty"])
    assert "warnings" not in calm  # its own element at its own density: no flag
