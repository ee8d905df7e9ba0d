"""Issue "The MLIP family": µs per atom per evaluation, default model vs a MACE committee of 4.

Both are K=4 committees served through TorchPotential (one neighbour list, forces and stress
by our autograd), float32, CPU, in-process via LocalProvider, properties energy + forces +
stress + uncertainty, timed interleaved in one run on rattled fcc Cu cells of 1,008 and
10,192 atoms. The MACE members are ScaleShiftMACE with RANDOM weights (speed does not depend
on the weights), sized like the default PaiNN (32 features, 2 layers, cutoff 5 Å): hidden
irreps 16x0e+16x1o, 2 interactions, r_max 5 Å, max_ell 2, correlation 2, the default's 7
elements. The 10k size is skipped when one MACE evaluation takes longer than 60 s.
Needs the `mace` extra in a venv of its own (mace-torch's e3nn conflicts with sevenn's):
`/tmp/macevenv/bin/python -m benchmarks.mace_committee`; without mace it says so and exits 0.
"""

from __future__ import annotations

import importlib.util
import time

import numpy as np

SIZES = {1008: (6, 6, 7), 10192: (14, 14, 13)}
PROPS = ["energy", "forces", "stress", "uncertainty"]
MAX_SECONDS = 60.0  # skip a size when one MACE evaluation takes longer
MEMBERS = 4


def mace_member(seed: int, elements: list[int]):
    """A random ScaleShiftMACE of about the default PaiNN member's size (float32)."""
    import torch

    from mlipserve.server.models.mace_model import mace_imports

    with mace_imports():  # mace before e3nn: e3nn alone fails on weights-only unpickling
        from e3nn import o3
        from mace import modules
    torch.manual_seed(seed)
    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    return modules.ScaleShiftMACE(
        r_max=5.0,
        num_bessel=8,
        num_polynomial_cutoff=5,
        max_ell=2,
        interaction_cls=block,
        interaction_cls_first=block,
        num_interactions=2,
        num_elements=len(elements),
        hidden_irreps=o3.Irreps("16x0e + 16x1o"),
        MLP_irreps=o3.Irreps("16x0e"),
        gate=torch.nn.functional.silu,
        atomic_energies=np.full(len(elements), -3.0),
        avg_num_neighbors=40.0,
        atomic_numbers=elements,
        correlation=2,
        atomic_inter_scale=1.0,
        atomic_inter_shift=0.0,
    )


def mace_committee(elements: list[int]):
    """A TorchPotential over an Ensemble of MEMBERS random MACE members."""
    from mlipserve.server.models.base import ModelInfo
    from mlipserve.server.models.ensemble import Ensemble
    from mlipserve.server.models.mace_model import MaceEnergy
    from mlipserve.server.models.torch_potential import TorchPotential

    members = [MaceEnergy(mace_member(seed, elements)) for seed in range(MEMBERS)]
    info = ModelInfo(
        name="mace-committee",
        version="random",
        kind="mace",
        cutoff=5.0,
        elements=frozenset(elements),
        ensemble_size=MEMBERS,
        dtype="float32",
        device="cpu",
    )
    return TorchPotential(Ensemble(members), info)


def main() -> None:
    if importlib.util.find_spec("mace") is None:
        print(
            "mace_committee: mace-torch is not installed (needs the 'mace' extra in its own "
            "venv); skipped"
        )
        return
    import torch
    from ase.build import bulk

    from benchmarks.common import interleaved, summarize, write_result
    from mlipserve.server.models.builtin import load_builtin
    from mlipserve.server.serving.local import LocalProvider

    default = LocalProvider(load_builtin("default", device="cpu"))
    elements = sorted(default.model.info.elements)
    mace = LocalProvider(mace_committee(elements))
    params = {
        name: sum(w.numel() for w in prov.model.module.parameters())
        for name, prov in (("default", default), ("mace", mace))
    }
    print(
        f"parameters (all {MEMBERS} members): default {params['default']}, "
        f"MACE {params['mace']}; torch threads {torch.get_num_threads()}"
    )
    rows = []
    for n, reps in SIZES.items():
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * reps
        atoms.rattle(0.02, seed=0)
        t0 = time.perf_counter()
        mace.evaluate([atoms], PROPS)  # warm-up and the 60 s check
        first = time.perf_counter() - t0
        if first > MAX_SECONDS:
            print(
                f"{n} atoms: one MACE evaluation took {first:.0f} s > {MAX_SECONDS:.0f} s; skipped"
            )
            rows.append({"atoms": n, "skipped": f"MACE evaluation {first:.1f} s > 60 s"})
            continue
        repeats = 10 if n < 5000 else 3
        t_def, t_mace = interleaved(
            lambda a=atoms: default.evaluate([a], PROPS),
            lambda a=atoms: mace.evaluate([a], PROPS),
            repeats,
            warmup=1,
        )
        row = {"atoms": n, "default": summarize(t_def), "mace": summarize(t_mace)}
        row["default_us_per_atom"] = row["default"]["median_us"] / n
        row["mace_us_per_atom"] = row["mace"]["median_us"] / n
        row["ratio_mace_over_default"] = row["mace"]["median_us"] / row["default"]["median_us"]
        rows.append(row)
        print(
            f"{n:6d} atoms  default {row['default_us_per_atom']:8.1f} µs/atom  MACE "
            f"{row['mace_us_per_atom']:8.1f} µs/atom  MACE/default "
            f"{row['ratio_mace_over_default']:.2f}",
            flush=True,
        )
    path = write_result(
        "mace_committee",
        {
            "rows": rows,
            "parameters": params,
            "torch_threads": torch.get_num_threads(),
            "properties": PROPS,
            "dtype": "float32",
            "device": "cpu",
            "members": MEMBERS,
            "mace_config": "ScaleShiftMACE, random weights, hidden 16x0e+16x1o, 2 interactions, "
            "r_max 5, max_ell 2, correlation 2, 8 Bessel, MLP 16x0e",
            "default_model": f"shipped default {default.model.info.version} (PaiNN 32 features, "
            "2 layers, cutoff 5, K=4)",
        },
    )
    print("wrote", path)


if __name__ == "__main__":
    main()
