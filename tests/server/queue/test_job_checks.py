"""Defence in depth: jobs put straight on the queue meet the same checks in the worker.

No REST in front: `JobStore.submit` writes whatever it is given, as anyone who can reach the
broker could. Workers run real EMT; the labeller policy and dataset shares are real files.
"""

from __future__ import annotations

import pytest
from ase.build import bulk

from mlipserve.server.dataset import Dataset
from mlipserve.server.queue.jobstore import JobStore
from mlipserve.server.queue.lease import LeasePolicy
from mlipserve.server.queue.payload import atoms_to_dict
from mlipserve.server.queue.worker import Worker, WorkerConfig

FAST = LeasePolicy(ttl_s=2.0, heartbeat_s=0.5, reap_every_s=0.5)


def cu(n: int = 1, seed: int = 0) -> list[dict]:
    out = []
    for i in range(n):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.rattle(0.05, seed=seed + i)
        out.append(atoms_to_dict(atoms))
    return out


def run_one(
    queue_url: str, data_dir, kind: str, params: dict, owner: str = "bob", role: str = "user"
):
    store = JobStore(queue_url)
    job = store.submit(kind, params, owner=owner, role=role, max_attempts=1)
    Worker(WorkerConfig(queue_url=queue_url, data_dir=str(data_dir), policy=FAST, poll_s=0.05)).run(
        max_jobs=1
    )
    return store.get(job.id)


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'queue.db'}"


def test_injected_import_path_labeller_never_runs(queue_url, tmp_path):
    marker = tmp_path / "pwned"
    record = run_one(
        queue_url,
        tmp_path,
        "label",
        {
            "labeller": "ase:subprocess.Popen",
            "settings": {"args": ["touch", str(marker)]},
            "structures": cu(),
            "dataset": "x",
        },
        role="admin",
    )
    assert not marker.exists()  # the command never ran
    assert record.state == "failed" and record.attempts == 1
    assert "params.labeller 'ase:subprocess.Popen' is not enabled" in record.error


def test_injected_settings_outside_the_policy_never_reach_the_calculator(sqlite_url, tmp_path):
    record = run_one(
        sqlite_url,
        tmp_path,
        "label",
        {
            "labeller": "emt",
            "settings": {"restart": str(tmp_path / "x")},
            "structures": cu(),
            "dataset": "x",
        },
    )
    assert record.state == "failed" and "params.settings.restart is not a setting" in record.error


@pytest.mark.parametrize(
    "dataset",
    [
        "{tmp}/outside/abs.db",
        "../escape",
        "a/b",
        "%2e%2e",
        "postgresql://evil.example/db",
        "x.db/../../y",
        "CU",
    ],
)
def test_injected_dataset_paths_are_refused(sqlite_url, tmp_path, dataset):
    dataset = dataset.format(tmp=tmp_path)
    record = run_one(sqlite_url, tmp_path, "label", {"structures": cu(), "dataset": dataset})
    assert record.state == "failed" and "params.dataset" in record.error
    assert "is not a dataset name" in record.error
    made = [p for p in tmp_path.rglob("*.db") if p.name != "queue.db"]
    assert made == [], made
    assert not (tmp_path.parent / "escape.db").exists()


def test_datasets_are_per_tenant_and_shared_only_by_an_admin(sqlite_url, tmp_path):
    alice = run_one(
        sqlite_url, tmp_path, "label", {"structures": cu(2), "dataset": "cu"}, owner="alice"
    )
    bob_own = run_one(sqlite_url, tmp_path, "label", {"structures": cu(1, 7), "dataset": "cu"})
    assert alice.state == bob_own.state == "done"
    with Dataset(tmp_path / "datasets" / "alice" / "cu.db") as data:
        assert data.count() == 2
    with Dataset(tmp_path / "datasets" / "bob" / "cu.db") as data:
        assert data.count() == 1
    into = {"structures": cu(1, 20), "dataset": "alice:cu"}
    refused = run_one(sqlite_url, tmp_path, "label", into)
    assert refused.state == "failed"
    assert "dataset 'cu' of tenant 'alice' is not shared with tenant 'bob'" in refused.error
    from mlipserve.server.queue.datasets import DatasetRef, ShareBook

    ShareBook(tmp_path / "models").set(DatasetRef("alice", "cu"), ["bob"])
    shared = run_one(sqlite_url, tmp_path, "label", into)
    assert shared.state == "done", shared.error
    with Dataset(tmp_path / "datasets" / "alice" / "cu.db") as data:
        assert data.count() == 3


def test_model_jobs_of_a_user_key_are_refused_in_the_worker(sqlite_url, tmp_path):
    for kind, params in (
        ("retrain", {"model": "cu", "dataset": "alice:cu"}),
        ("evaluate", {"model": "cu", "candidate": "v2", "holdout": "alice:h"}),
        ("promote", {"model": "cu", "candidate": "v2", "holdout": "h"}),
    ):
        record = run_one(sqlite_url, tmp_path, kind, params)
        assert record.state == "failed" and f"{kind} jobs need an admin key" in record.error


@pytest.mark.parametrize(
    "params, message",
    [
        ({"model": "../../etc", "dataset": "cu"}, "params.model"),
        ({"model": "cu", "dataset": "cu", "epochs": 10**9}, "params.epochs"),
        ({"model": "cu", "dataset": "cu", "batch_size": 0}, "params.batch_size"),
        ({"model": "cu", "dataset": "/srv/other.db"}, "params.dataset"),
        ({"model": "cu", "dataset": "cu", "device": "cuda:7"}, "params.device"),
    ],
)
def test_admin_retrain_params_are_bounded(sqlite_url, tmp_path, params, message):
    record = run_one(sqlite_url, tmp_path, "retrain", params, owner="ops", role="admin")
    assert record.state == "failed" and message in record.error


def test_operator_enabled_import_path_runs_with_its_checked_settings(sqlite_url, tmp_path):
    from mlipserve.server.labellers.policy import LabellerEntry, LabellerPolicy, save_policy

    policy = LabellerPolicy()
    policy.labellers["ase:tests.server.queue.slow_emt.SlowEMT"] = LabellerEntry.model_validate(
        {"user": {"delay": {"type": "float", "min": 0, "max": 1}}}
    )
    save_policy(tmp_path / "models", policy)
    slow = "ase:tests.server.queue.slow_emt.SlowEMT"
    ok = run_one(
        sqlite_url,
        tmp_path,
        "label",
        {"labeller": slow, "settings": {"delay": 0}, "structures": cu(), "dataset": "s"},
    )
    assert ok.state == "done", ok.error
    too_slow = run_one(
        sqlite_url,
        tmp_path,
        "label",
        {"labeller": slow, "settings": {"delay": 30}, "structures": cu(1, 3), "dataset": "s"},
    )
    assert (
        too_slow.state == "failed" and "params.settings.delay must be in [0, 1]" in too_slow.error
    )
