"""Proton-transfer barriers on the served default-molecular against GFN2-xTB (tblite, in this
process): malonaldehyde's by batched CI-NEB on the model vs ASE's CI-NEB on xTB, then the
MLIP-screen → xTB-refine workflow over candidate pathways.

Screen: malonaldehyde, the formic acid dimer's double transfer and the concerted transfer
round a cyclic water trimer (full run: and tetramer), ends relaxed on the model, all bands
relaxed at once; ranked by barrier with bands the ensemble distrusts (an image's max force
std above the model's trust_hi) last; the top candidate(s) refined on xTB (ends re-relaxed
on xTB, band from the model's path) and checked against a from-scratch xTB CI-NEB, with the
xTB single points each took. Writes the barrier plot and the refined band's profile.
Run: `python examples/molecular_neb.py --target HOST:PORT --model default-molecular`.
"""

from _common import options, write_summary

from mlipserve.server.training import molecular_data as md
from mlipserve.server.training import proton_bands as pb
from mlipserve.simulation import RemoteProvider
from mlipserve.simulation.provenance import provenance

args = options(__doc__, "default-molecular")
provider = RemoteProvider(args.target, args.model)
# the level above which the server flags a result `untrusted` (ListModels reports it)
served = [e for e in provider.client.list_models() if e["name"] == args.model]
TRUST = next(e for e in served if e["is_default"])["trust"]["trust_hi"]
check = md.barrier_check(provider)
print(f"malonaldehyde: model {check['model_eV']:.3f} eV, xTB {check['xtb_eV']:.3f} eV")
names = ("malonaldehyde", "formic_dimer", "water_trimer") if args.small else pb.CANDIDATES
top_k = 1 if args.small else 2
report, screen = pb.screen_refine(
    provider, names, top_k=top_k, trust=TRUST, max_steps=200 if args.small else 500
)
chosen = [names[i] for i in report.ranking[:top_k]]
scratch = {name: pb.xtb_neb(name) for name in chosen}
record = provenance(provider)
report.plot(args.output / "molecular_screen.png", "proton transfers: screen → xTB refine", record)
top = report.ranking[0]
report.refined[top].plot(args.output / "refined_top.png", f"{names[top]}, GFN2-xTB", record)
rows = {
    name: {k: v for k, v in row.items() if "profile" not in k}
    for name, row in screen["candidates"].items()
}
for name in chosen:
    rows[name]["xtb_scratch_barrier_eV"] = scratch[name]["barrier_eV"]
summary = {
    "malonaldehyde_model_eV": check["model_eV"],
    "malonaldehyde_xtb_eV": check["xtb_eV"],
    "malonaldehyde_converged": check["converged"],
    "trust_max_force_std_eV_per_A": TRUST,
    "ranking": [names[i] for i in report.ranking],
    "untrusted": [names[i] for i in report.untrusted],
    "candidates": rows,
    "xtb_calls_refine": screen["refine_xtb_calls"],
    "xtb_calls_scratch": sum(s["xtb_calls"] for s in scratch.values()),
}
write_summary(args.output / "molecular_neb.json", summary, provider)
for name in summary["ranking"]:
    row = rows[name]
    refined = (
        f", xTB refined {row['refined_barrier_eV']:.3f}" if "refined_barrier_eV" in row else ""
    )
    scratch_text = (
        f", xTB from scratch {row['xtb_scratch_barrier_eV']:.3f}" if name in scratch else ""
    )
    print(
        f"{name}: model {row['model_barrier_eV']:.3f} eV{refined}{scratch_text}"
        f"{'' if row['trusted'] else ' (untrusted)'}"
    )
print(f"xTB single points: refine {summary['xtb_calls_refine']}, from scratch "
      f"{summary['xtb_calls_scratch']}")  # fmt: skip
provider.close()
