"""examples/water_md.py: 8 waters at 300 K on the served default-molecular stay liquid water."""

from __future__ import annotations

from tests.examples.conftest import run


def test_water_md_example(lab, tmp_path):
    s = run(lab, tmp_path, "water_md")
    assert s["provenance"]["model"] == "default-molecular"
    # 24 atoms: instantaneous T has σ ≈ 300 √(2/72) = 50 K; ~0.2 ps of τ = 20 fs Langevin
    # gives ~10-20 independent samples, so the mean sits within ±45 K (3σ) of 300 K
    assert 255 < s["mean_temperature_K"] < 345
    assert 25 < s["temperature_std_K"] < 90  # the canonical spread, not a frozen or hot box
    # liquid water's O–O first peak is 2.8 Å (xTB and the model: 2.8-3.0 Å); a box whose
    # H-bonds broke or collapsed moves it out of this band
    assert 2.6 < s["rdf_first_peak_A"] < 3.1 and s["rdf_first_peak_g"] > 1.5
    assert s["molecules_intact"] and s["max_oh_A"] < 1.2  # every H stays on its own O
