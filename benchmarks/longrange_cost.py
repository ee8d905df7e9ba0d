"""Benchmark: what the long-range (Coulomb) term costs next to the short-range PaiNN.

In process (`LocalProvider`, energy + forces, float64, CPU or the GPU if present): the same
tiny PaiNN (16 features, 2 layers, 4 members, 5 Å) alone and with fixed-charge Coulomb by
Ewald and by PME (8 Å real space, accuracy 1e-6), on rocksalt NaCl of 1,000 and 10,648 ions
(Ewald at 10,648 ions is skipped: ~5e5 k-vectors × 1e4 ions); then 8 cells of 64 ions in one
call against 8 calls. Last, torch-pme's two ways to batch: our loop over systems against
padding every system (neighbour pairs, k-vectors) with masks and `torch.vmap` over the
calculator, on the Coulomb term alone. Ratios are per run, timings the median of `--repeats`.
Run: `.venv/bin/python -m benchmarks.longrange_cost` (about 3 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from ase.build import bulk

from benchmarks.common import write_result
from mlipserve.server.models.families import native_potential
from mlipserve.server.models.longrange import LongRangeConfig, LongRangePaiNN
from mlipserve.server.models.painn import PaiNN, PaiNNConfig
from mlipserve.server.serving.local import LocalProvider

SIZES = {"features": 16, "radial": 8, "layers": 2, "members": 4, "max_z": 17, "cutoff": 5.0}


def providers(methods: tuple[str, ...]) -> dict[str, LocalProvider]:
    """PaiNN alone and PaiNN + Coulomb by each method, all with the same short-range weights."""
    torch.manual_seed(0)
    short = PaiNN(PaiNNConfig(**SIZES))
    out = {"short-range": LocalProvider(native_potential(short, "sr"))}
    for method in methods:
        cfg = LongRangeConfig(
            **SIZES, element_charges={"11": 1.0, "17": -1.0}, coulomb_cutoff=8.0, method=method
        )
        module = LongRangePaiNN(cfg)
        module.short.load_state_dict(short.state_dict())
        out[method] = LocalProvider(native_potential(module, method))
    return out


def timed(provider: LocalProvider, systems: list, repeats: int, one_by_one: bool = False) -> float:
    """Median seconds of an energy + forces evaluation of `systems`."""
    times = []
    for _ in range(repeats + 1):  # the first call warms up
        start = time.perf_counter()
        if one_by_one:
            for s in systems:
                provider.evaluate([s], ["energy", "forces"])
        else:
            provider.evaluate(systems, ["energy", "forces"])
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))


def coulomb_inputs(systems: list) -> tuple:
    """Batch graph, charges, positions and cells of `systems` for the Coulomb term alone."""
    from mlipserve.server.models.batch import SystemBatch
    from mlipserve.server.models.neighbors import batch_neighbors
    from mlipserve.wire import SystemArrays

    batch = SystemBatch.concat([SystemArrays.from_atoms(a) for a in systems])
    edges, shifts = batch_neighbors(batch, 8.0)
    graph = {
        "system_index": torch.tensor(batch.system_index),
        "n_systems": batch.n_systems,
        "pbc": torch.tensor(batch.pbc),
        "edge_index": torch.tensor(edges),
        "edge_shift": torch.tensor(shifts),
    }
    charges = torch.tensor(np.where(batch.numbers == 11, 1.0, -1.0))[None]
    return graph, charges, torch.tensor(batch.positions), torch.tensor(batch.cell)


def padded_vmap_energy(electrostatics, graph, charges, positions, cell) -> torch.Tensor:
    """The Coulomb energy with every system padded to the largest and torch.vmap over them."""
    from torch.nn.utils.rnn import pad_sequence

    from mlipserve.server.models.torch_potential import edge_vectors

    n_sys = graph["n_systems"]
    n = positions.shape[0] // n_sys
    i, j = graph["edge_index"]
    r = edge_vectors({**graph, "positions": positions, "cell": cell}).norm(dim=-1)
    owner = graph["system_index"][i]
    pairs, dists, kvecs = [], [], []
    for s in range(n_sys):
        keep = (owner == s) & (r < 8.0)
        pairs.append(torch.stack([i[keep] - s * n, j[keep] - s * n], 1))
        dists.append(r[keep])
        kvecs.append(electrostatics.kvectors(cell[s]))
    mask = pad_sequence([torch.ones(len(d), dtype=torch.bool) for d in dists], batch_first=True)
    q = charges.reshape(n_sys, n, 1)

    def one(qq, cc, pp, nn, dd, mm, kk):
        return electrostatics.calculator(
            charges=qq, cell=cc, positions=pp, neighbor_indices=nn, neighbor_distances=dd,
            pair_mask=mm, kvectors=kk,
        )  # fmt: skip

    potential = torch.vmap(one)(
        q, cell, positions.reshape(n_sys, n, 3), pad_sequence(pairs, batch_first=True),
        pad_sequence(dists, batch_first=True, padding_value=1.0), mask,
        pad_sequence(kvecs, batch_first=True),
    )  # fmt: skip
    return (q * potential).sum()


def loop_vs_vmap(systems: list, repeats: int) -> dict:
    """Energy + forces of the Coulomb term of `systems`: loop over systems vs padded vmap."""
    from mlipserve.server.models.electrostatics import Electrostatics, EwaldParameters

    electrostatics = Electrostatics(EwaldParameters.pinned(8.0, 1e-6)).to(torch.float64)
    graph, charges, positions, cell = coulomb_inputs(systems)

    def loop():
        pos = positions.clone().requires_grad_(True)
        energy = electrostatics(charges, pos, cell, graph).sum()
        return energy, torch.autograd.grad(energy, pos)[0]

    def vmapped():
        pos = positions.clone().requires_grad_(True)
        energy = padded_vmap_energy(electrostatics, graph, charges, pos, cell)
        return energy, torch.autograd.grad(energy, pos)[0]

    (e1, f1), (e2, f2) = loop(), vmapped()
    times: dict[str, list[float]] = {"loop": [], "vmap": []}
    for _ in range(repeats + 1):
        for name, fn in (("loop", loop), ("vmap", vmapped)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    loop_s, vmap_s = (float(np.median(times[k][1:])) for k in ("loop", "vmap"))
    return {
        "systems": len(systems),
        "loop_s": loop_s,
        "vmap_s": vmap_s,
        "vmap_over_loop": vmap_s / loop_s,
        "energy_difference_eV": float(abs(e1 - e2).detach()),
        "max_force_difference_eV_A": float((f1 - f2).abs().max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cell = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    rows = []
    for reps, methods in ((5, ("ewald", "pme")), (11, ("pme",))):
        atoms = cell * (reps, reps, reps)
        models = providers(methods)
        base = timed(models["short-range"], [atoms], args.repeats)
        row = {"ions": len(atoms), "short_range_s": base}
        for method in methods:
            seconds = timed(models[method], [atoms], args.repeats)
            row[f"{method}_s"] = seconds
            row[f"{method}_over_short_range"] = seconds / base
        rows.append(row)
        print(row)
    models = providers(("ewald", "pme"))
    small = [cell * (2, 2, 2) for _ in range(8)]
    for k, atoms in enumerate(small):
        atoms.rattle(0.05, seed=k)
    batching = {}
    for name, provider in models.items():
        together = timed(provider, small, args.repeats)
        apart = timed(provider, small, args.repeats, one_by_one=True)
        batching[name] = {"batched_s": together, "one_by_one_s": apart, "speedup": apart / together}
    print(batching)
    padding = loop_vs_vmap(small, args.repeats)
    print(padding)
    write_result(
        "longrange_cost",
        {"sizes": SIZES, "by_size": rows, "batch_8x64": batching, "loop_vs_vmap_8x64": padding},
    )


if __name__ == "__main__":
    main()
