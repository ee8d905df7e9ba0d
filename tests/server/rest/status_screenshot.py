"""Make docs/assets/status.png from a realistic run (not a test; run it by hand):

    .venv/bin/python -m tests.server.rest.status_screenshot docs/assets/status.png

A server with auth on serving four models (lj, emt, morse, a stored PaiNN `cu`), three
tenants evaluating concurrently for a few seconds, a real label job and a real promote job
run by a worker, a queued job, and a harvest file; the page is signed in with an admin key.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import torch
from ase.build import bulk


def _store_models(root: Path) -> None:
    from mlipserve.server.models.painn import PaiNN, PaiNNConfig
    from mlipserve.server.store import ModelStore

    cfg = PaiNNConfig(cutoff=4.0, features=8, radial=6, layers=1, members=2, max_z=30)
    meta = {
        "family": "painn",
        "config": cfg.to_dict(),
        "cutoff": cfg.cutoff,
        "elements": [29],
        "ensemble_size": cfg.members,
        "dtype": "float64",
        "units": {"energy": "eV", "length": "Å"},
    }
    store = ModelStore(root)
    for seed, default in ((1, True), (2, False)):
        torch.manual_seed(seed)
        store.save("cu", PaiNN(cfg), meta, make_default=default)


def _traffic(address: str, key: str, model: str, atoms, seconds: float, systems: int) -> None:
    from mlipserve.client import Client

    rng = np.random.default_rng(abs(hash(key)) % 2**32)
    end = time.monotonic() + seconds
    with Client(address, model, api_key=key) as client:
        while time.monotonic() < end:
            batch = []
            for _ in range(systems):
                a = atoms.copy()
                a.positions += rng.normal(0, 0.02, a.positions.shape)
                batch.append(a)
            client.evaluate(batch if systems > 1 else batch[0])


def _structures(n: int) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        a = bulk("Cu", "fcc", a=3.61, cubic=True)
        a.positions += rng.normal(0, 0.05, a.positions.shape)
        out.append(
            {
                "numbers": a.numbers.tolist(),
                "positions": a.positions.tolist(),
                "cell": a.cell.array.tolist(),
                "pbc": [True, True, True],
            }
        )
    return out


def harvest_file(folder: Path) -> None:
    """A harvester's file for `cu` (its documented format) with a falling AL curve."""
    import json

    rounds = []
    labels, mae = 0, 92.0
    for r in range(1, 9):
        labels += 50 * r
        mae *= 0.82 if r != 5 else 1.03
        rounds.append(
            {
                "round": r,
                "labels_total": labels,
                "heldout_force_mae_meV": round(mae, 1),
                "promoted": r != 5,
                "version": f"v{r + 2}",
                "time": f"2026-12-03T{8 + r:02d}:00:00Z",
            }
        )
    state = {
        "model": "cu",
        "enabled": True,
        "pool_size": 137,
        "per_tenant": {"lab-a": 81, "lab-b": 40, "lab-c": 16},
        "rounds": rounds,
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cu.json").write_text(json.dumps(state))


def main(out: Path) -> None:
    """Run the scene and save the screenshot to `out`."""
    from playwright.sync_api import sync_playwright

    from mlipserve.server.auth import KeyStore
    from mlipserve.server.config import Settings
    from mlipserve.server.queue.worker import Worker
    from tests.conftest import ServerThread
    from tests.server.rest.test_status_page import chromium_path

    data = Path(tempfile.mkdtemp(prefix="mlipserve-status-"))
    _store_models(data / "models")
    settings = Settings(
        port=0,
        models=["lj", "emt", "morse", "store:cu"],
        auth=True,
        data_dir=data,
        workers=0,
        max_wait_us=3000,
        replica_name="gpu-node-1",
    )
    srv = ServerThread(settings)
    keys = KeyStore(srv.settings.key_db_url)
    admin = keys.create("admin", "ops")[1]
    tenants = {t: keys.create("user", t)[1] for t in ("lab-a", "lab-b", "lab-c")}
    http = httpx.Client(
        base_url=srv.rest_url, headers={"authorization": f"Bearer {admin}"}, timeout=60
    )
    worker = Worker(srv.settings.worker_config())
    label = {"structures": _structures(6), "dataset": "cu-holdout", "labeller": "emt"}
    http.post("/v1/jobs", json={"kind": "label", "params": label}).raise_for_status()
    worker.run(max_jobs=1)
    promote = {"model": "cu", "candidate": "v2", "holdout": "cu-holdout"}
    http.post("/v1/jobs", json={"kind": "promote", "params": promote}).raise_for_status()
    worker.run(max_jobs=1)
    user_job = {"structures": _structures(2), "dataset": "mine", "labeller": "emt"}
    httpx.post(
        f"{srv.rest_url}/v1/jobs",
        json={"kind": "label", "params": user_job},
        headers={"authorization": f"Bearer {tenants['lab-a']}"},
    ).raise_for_status()
    harvest_file(srv.settings.model_store_dir / "_harvest")

    cu = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
    ar = bulk("Ar", "fcc", a=5.3, cubic=True) * (2, 2, 2)
    plan = [
        ("lab-a", "emt", cu, 1), ("lab-a", "cu", cu, 4), ("lab-b", "lj", ar, 8),
        ("lab-b", "lj", ar, 1), ("lab-c", "morse", cu, 2), ("lab-c", "cu", cu, 1),
    ]  # fmt: skip
    threads = [
        threading.Thread(target=_traffic, args=(srv.address, tenants[t], m, a, 25.0, n))
        for t, m, a, n in plan
    ]
    for t in threads:
        t.start()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{srv.rest_url}/status")
        page.fill("#api-key", admin)
        page.click("#login-form button")
        page.wait_for_selector("#dashboard:not([hidden])")
        time.sleep(20)
        page.screenshot(path=str(out), full_page=True)
        browser.close()
    for t in threads:
        t.join()
    http.close()
    srv.stop()
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/assets/status.png"))
