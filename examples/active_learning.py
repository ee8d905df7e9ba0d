"""On-the-fly active learning: hot copper MD on the default ensemble asks EMT for labels.

Frames whose max force std passes `trust_lo` are labelled by the server's queue (EMT) into a
dataset; with `--retrain` (needs the model in the server's store and a held-out dataset)
an untrusted frame pauses MD, retrains, promotes and resumes on the new version.
Without it (the default here) the run only labels: the dataset grows while MD goes on.
Run: `python examples/active_learning.py --target HOST:PORT --url http://HOST:8080`.
"""

from _common import options, write_summary
from ase import units
from ase.build import bulk

from mlipserve.client.jobs import JobsClient
from mlipserve.simulation import MDState, RemoteProvider, langevin_baoab
from mlipserve.simulation.active_learning import ActiveLearningConfig, ActiveLearningMD

args = options(__doc__, "default")
steps = 30 if args.small else 2000
crystal = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
config = ActiveLearningConfig(
    model=args.model,
    dataset="al-example",
    trust_lo=0.005 if args.small else 0.05,  # low in the quick run so that it labels
    trust_hi=0.5,
    retrain="wait",  # label only: another party (or `mlipserve jobs submit retrain`) retrains
    max_retrains=0,
    exhausted="continue",
    submit_every=10,
    label_batch=2,
    job_timeout_s=120,
)
provider = RemoteProvider(args.target, args.model)
state = MDState.from_atoms([crystal, crystal], temperature_K=1200, seeds=[0, 1])
with JobsClient(args.url) as jobs:
    al = ActiveLearningMD(
        provider, state, langevin_baoab(2 * units.fs, 1200, 0.02 / units.fs), jobs, config
    )
    al.run(steps, progress=True)
    al.wait_for_labels()
paths = al.save(args.output / "al_run")
kinds = [e["kind"] for e in al.events]
summary = {
    "candidates": kinds.count("candidate"),
    "labelled": kinds.count("labelled"),
    "steps": steps,
}
write_summary(args.output / "active_learning.json", summary, provider)
print(f"{summary['candidates']} candidate frames, {summary['labelled']} label jobs done")
provider.close()
