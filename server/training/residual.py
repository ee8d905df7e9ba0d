"""Fixed-charge long-range training: the Coulomb term has no parameters, so the short-range
PaiNN is trained on the labels less it (energy, forces and stress alike) and put back into
the long-range module. The loss is the same as training the whole module; Ewald is
evaluated once per structure instead of twice differentiated every step."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import torch
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from mlipserve.server.models.families import family_module, native_potential
from mlipserve.server.models.longrange import LongRangePaiNN
from mlipserve.server.serving.local import LocalProvider
from mlipserve.server.training.report import evaluate_split

LABELS = ("energy", "forces", "stress")


def coulomb_only(module: LongRangePaiNN) -> LongRangePaiNN:
    """A float64 copy of `module` whose short-range part is zero: its Coulomb term alone."""
    head = copy.deepcopy(module).to(torch.float64)
    with torch.no_grad():
        for p in head.short.readout.parameters():
            p.zero_()
        head.short.shift.zero_()
    return head


def residual_structures(module: LongRangePaiNN, structures: Sequence[Atoms]) -> list[Atoms]:
    """Copies of `structures` labelled with their labels less the fixed-charge Coulomb part."""
    provider = LocalProvider(native_potential(coulomb_only(module), "coulomb"))
    out = []
    for atoms in structures:
        labels = atoms.calc.results
        props = [k for k in LABELS if k in labels and (k != "stress" or atoms.pbc.all())]
        (coulomb,) = provider.evaluate([atoms], props)
        rest = atoms.copy()
        rest.calc = SinglePointCalculator(rest, **{k: labels[k] - coulomb[k] for k in props})
        out.append(rest)
    return out


def train_fixed_charges(
    structures: Sequence[Atoms],
    model_config: object,
    cfg,
    out_dir: str | Path | None,
    init: LongRangePaiNN | None,
    progress: bool,
):
    """`loop.train` for a fixed-charge long-range model (its config or its warm start)."""
    from mlipserve.server.training.loop import TrainResult, train, write_report

    if init is not None:
        module = copy.deepcopy(init)
    else:
        module = family_module(model_config)
    residual = residual_structures(module, structures)
    short = train(
        residual,
        module.cfg.painn(),
        cfg,
        init=module.short if init is not None else None,
        progress=progress,
    )
    module = module.to(torch.float64)
    module.short.load_state_dict(short.module.state_dict())
    module = module.eval()
    test = [structures[i] for i in short.split["test"]]
    metrics = {**short.metrics, **evaluate_split(module, test)}
    result = TrainResult(module, metrics, short.history, split=short.split)
    if out_dir is not None:
        write_report(result, test, cfg, out_dir)
    return result
