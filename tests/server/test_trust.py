"""Trust levels: results carry 'candidate' / 'untrusted' flags from the ensemble's force std."""

from __future__ import annotations

from ase.build import bulk

from mlipserve.server.serving.dispatch import TRUST_HI, TRUST_LO
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
