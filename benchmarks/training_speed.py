"""Issue "The MLIP family": seconds per training epoch of the default model's recipe.

The shipped default's training set (`mlipserve data --seed 0 --scale 8`: 432 EMT structures,
5,256 atoms), its architecture (PaiNN, 32 features, 2 layers, cutoff 5 Å) and batch size 8,
float32 on the CPU. Per-epoch time is (t(4 epochs) - t(1 epoch)) / 3, so the set-up and the
final test evaluation cancel. K = 4 against K = 1 gives the ensemble's training cost; the
shipped default took 166 epochs (v1 72 + v2 94), so that many epochs at this speed is the
time to retrain it. Run: `.venv/bin/python -m benchmarks.training_speed`.
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.common import write_result
from mlipserve.server.models.painn import PaiNNConfig
from mlipserve.server.training.emt_data import generate
from mlipserve.server.training.loop import TrainConfig, train

SHIPPED_EPOCHS = 166


def seconds(structures, members: int, epochs: int) -> float:
    """Wall time of a whole `train` call (no early stop, no report files)."""
    cfg = PaiNNConfig(cutoff=5.0, features=32, layers=2, members=members, max_z=79)
    t0 = time.perf_counter()
    train(
        structures,
        cfg,
        TrainConfig(epochs=epochs, batch_size=8, seed=0, patience=10**6),
        progress=False,
    )
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=int, default=8, help="training-set size (8: the default's)")
    args = parser.parse_args()
    structures = generate(seed=0, scale=args.scale)
    rows = {}
    for members in (1, 4):
        one, four = seconds(structures, members, 1), seconds(structures, members, 4)
        rows[f"k{members}"] = {
            "epoch_s": (four - one) / 3,
            "one_epoch_run_s": one,
            "four_epoch_run_s": four,
        }
        print(f"K={members}: {rows[f'k{members}']['epoch_s']:.2f} s per epoch")
    ratio = rows["k4"]["epoch_s"] / rows["k1"]["epoch_s"]
    minutes = rows["k4"]["epoch_s"] * SHIPPED_EPOCHS / 60
    print(
        f"K=4 / K=1 per epoch {ratio:.2f}x; "
        f"the default's {SHIPPED_EPOCHS} epochs: {minutes:.1f} min"
    )
    path = write_result(
        "training_speed",
        {
            "structures": len(structures),
            "atoms": sum(len(a) for a in structures),
            "torch_threads": torch.get_num_threads(),
            "rows": rows,
            "ratio_k4_over_k1": ratio,
            "shipped_epochs": SHIPPED_EPOCHS,
            "minutes_for_shipped_epochs_k4": minutes,
        },
    )
    print("wrote", path)


if __name__ == "__main__":
    main()
