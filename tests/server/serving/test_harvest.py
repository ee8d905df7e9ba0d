"""Harvesting on the server: the pool a real gRPC server keeps for an ensemble model.

Random-weight two-member PaiNN ensembles (one stored model per test, so the pools are
apart) with `trust_lo` 0, so every system is a candidate and its sigma is the max force std
the server reports when asked for uncertainty. Tenants are API keys (auth on).
"""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
import torch
from ase.build import bulk

from mlipserve.client import AsyncClient, Client, RemoteCalculator
from mlipserve.server.auth import KeyStore
from mlipserve.server.config import Settings
from mlipserve.server.models.painn import PaiNN, PaiNNConfig
from mlipserve.server.queue.jobstore import JobStore
from mlipserve.server.serving.harvest import HARVEST_TENANT, HARVESTED
from mlipserve.server.serving.harvest_pool import Pool, read_summary
from mlipserve.server.store import ModelStore
from mlipserve.simulation import RemoteProvider
from mlipserve.wire import SystemArrays
from tests.conftest import ServerThread

CFG = PaiNNConfig(cutoff=4.0, features=8, radial=6, layers=1, members=2, max_z=30)
MODELS = (
    "off", "dedup", "budget", "rate", "optout", "broken", "trigger", "rest", "conditions",
    "viarest",
)  # fmt: skip


def metadata() -> dict:
    return {
        "family": "painn",
        "config": CFG.to_dict(),
        "cutoff": CFG.cutoff,
        "elements": [29],
        "ensemble_size": CFG.members,
        "dtype": "float64",
        "trust_lo": 0.0,
    }


def cells(n: int, seed: int) -> list:
    """`n` distinct rattled Cu cells (4 atoms)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
        atoms.rattle(0.1, seed=int(rng.integers(1 << 30)))
        out.append(atoms)
    return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("harvest")
    store = ModelStore(root / "models")
    for i, name in enumerate(MODELS):
        torch.manual_seed(i)
        store.save(name, PaiNN(CFG), metadata())
    server = ServerThread(
        Settings(
            port=0,
            models=[f"store:{m}" for m in MODELS],
            auth=True,
            data_dir=root,
            watch_store_s=0,
        )
    )
    keys = KeyStore(server.settings.key_db_url)
    tenants = {t: keys.create("user", t)[1] for t in ("alice", "bob", "carol", "../../evil")}
    tenants["admin"] = keys.create("admin", "ops")[1]
    yield server, store, tenants
    server.stop()


def enable(lab, model: str, **settings) -> None:
    """What an admin's PUT does, then the server's settings refresh (not waited for)."""
    server, store, _ = lab
    store.update_metadata(model, "v1", harvest={"enabled": True, **settings})
    server.running.harvester.refresh()


def evaluate(lab, tenant: str, model: str, systems, properties=("energy", "forces"), **kw):
    server, _, tenants = lab
    with Client(server.address, model, api_key=tenants[tenant], **kw) as client:
        out = client.evaluate(list(systems), properties)
    assert server.running.harvester.idle.wait(20)
    return out


def sigmas(lab, model: str, systems) -> np.ndarray:
    """The max force std the server reports (asked by an opted-out tenant)."""
    out = evaluate(lab, "carol", model, systems, ("energy", "forces", "uncertainty"), harvest=False)
    return np.array([r["max_force_std"] for r in out])


def pool(lab, model: str) -> Pool:
    return Pool(lab[1].root, model)


def test_harvesting_is_off_by_default(lab):
    server = lab[0]
    out = evaluate(lab, "alice", "off", cells(3, 0))
    assert not server.running.harvester.wants("off")
    assert "max_force_std" not in out[0] and "harvest_sigma" not in out[0]
    assert not (lab[1].root / "_harvest" / "off").exists()


def test_the_pool_is_deduplicated_by_structure_and_keeps_tenant_and_sigma(lab):
    enable(lab, "dedup")
    a, b = cells(2, 1)
    a.positions = np.round(a.positions, 3) + 1e-4
    moved = a.copy()
    moved.positions += 2e-4  # within the hash's 1e-3 Å rounding: the same structure
    out = evaluate(lab, "alice", "dedup", [a, a, b])
    assert "max_force_std" not in out[0] and "harvest_sigma" not in out[0]  # not asked: not sent
    evaluate(lab, "alice", "dedup", [moved])
    evaluate(lab, "bob", "dedup", [b])  # another tenant's copy is still a duplicate
    kept = pool(lab, "dedup").waiting()
    assert [k.info["tenant"] for k in kept] == ["alice", "alice"]
    np.testing.assert_allclose([k.info["sigma"] for k in kept], sigmas(lab, "dedup", [a, b]))
    np.testing.assert_allclose(kept[0].positions, a.positions)
    summary = read_summary(lab[1].root, "dedup")
    assert summary == {
        "model": "dedup",
        "enabled": True,
        "pool_size": 2,
        "per_tenant": {"alice": 2},
        "rounds": [],
    }


def test_the_budget_keeps_each_tenants_most_uncertain_structures(lab):
    enable(lab, "budget", budget_per_tenant=3)
    systems = cells(6, 2)
    for system in systems:
        evaluate(lab, "alice", "budget", [system])
    evaluate(lab, "../../evil", "budget", cells(2, 3))
    kept = pool(lab, "budget").waiting()
    alice = sorted(k.info["sigma"] for k in kept if k.info["tenant"] == "alice")
    np.testing.assert_allclose(alice, np.sort(sigmas(lab, "budget", systems))[-3:])
    assert pool(lab, "budget").counts() == {"../../evil": 2, "alice": 3}
    harvest = lab[1].root / "_harvest"  # a tenant's name is a value, never a path
    assert {p.name for p in harvest.iterdir()} <= {f"{m}{s}" for m in MODELS for s in ("", ".json")}
    assert not list(lab[1].root.parent.rglob("*evil*"))


def test_the_rate_is_counted_per_tenant_per_minute(lab):
    enable(lab, "rate", rate_per_minute=2)
    before = HARVESTED.labels("rate")._value.get()
    for system in cells(5, 4):
        evaluate(lab, "alice", "rate", [system])
    evaluate(lab, "bob", "rate", cells(1, 5))
    assert pool(lab, "rate").counts() == {"alice": 2, "bob": 1}
    assert HARVESTED.labels("rate")._value.get() - before == 3


def test_a_tenant_that_opts_out_has_nothing_stored(lab):
    server, _, tenants = lab
    enable(lab, "optout")
    evaluate(lab, "carol", "optout", cells(3, 6), harvest=False)
    provider = RemoteProvider(server.address, "optout", harvest=False, api_key=tenants["carol"])
    try:
        provider.evaluate(cells(2, 7))
    finally:
        provider.close()
    evaluate(lab, "alice", "optout", cells(1, 8))  # harvesting is on for the others
    assert server.running.harvester.idle.wait(20)
    assert pool(lab, "optout").counts() == {"alice": 1}
    assert "carol" not in pool(lab, "optout").tenants_ever()


def test_systems_with_conditions_are_not_kept(lab):
    """The round's labellers label neutral and at zero field: a structure evaluated in a field
    or with a charge would get wrong labels, so the harvester counts and skips it."""
    server = lab[0]
    enable(lab, "conditions")
    plain, fielded, charged = (SystemArrays.from_atoms(a) for a in cells(3, 13))
    fielded.conditions["external_field"] = np.array([0.0, 0.0, 0.05])
    charged.conditions["charge"] = np.array(1.0)
    skipped = HARVESTED.labels("conditions")._value.get()
    harvester = server.running.harvester
    harvester.offer("conditions", 0.0, "alice", [fielded, plain, charged], [0.5, 0.5, 0.5])
    assert harvester.idle.wait(20)
    kept = pool(lab, "conditions").waiting()
    assert len(kept) == 1
    np.testing.assert_allclose(kept[0].positions, plain.positions)
    assert HARVESTED.labels("conditions")._value.get() == skipped + 2


def test_a_failing_writer_never_fails_a_request(lab):
    blocker = lab[1].root / "_harvest" / "broken"
    blocker.parent.mkdir(exist_ok=True)
    blocker.write_text("a file where the pool's folder should be")
    enable(lab, "broken")
    failed = HARVESTED.labels("failed")._value.get()
    systems = cells(3, 9)
    out = evaluate(lab, "alice", "broken", systems)
    reference = sigmas(lab, "broken", systems)  # the same server, the same model: it serves
    assert len(out) == 3 and all(np.isfinite(r["forces"]).all() for r in out)
    assert len(reference) == 3
    assert HARVESTED.labels("failed")._value.get() > failed


def test_the_round_trigger_submits_one_round_job_at_a_time(lab):
    server = lab[0]
    enable(lab, "trigger", round_every_candidates=3)
    jobs = JobStore(server.settings.job_queue_url)
    evaluate(lab, "alice", "trigger", cells(2, 10))
    assert not [j for j in jobs.list(kind="harvest_round") if j.params["model"] == "trigger"]
    evaluate(lab, "bob", "trigger", cells(2, 11))
    evaluate(lab, "bob", "trigger", cells(3, 12))  # due again, but the first is not finished
    rounds = [j for j in jobs.list(kind="harvest_round") if j.params["model"] == "trigger"]
    assert len(rounds) == 1
    assert (rounds[0].owner, rounds[0].role, rounds[0].state) == (HARVEST_TENANT, "admin", "queued")
    jobs.cancel(rounds[0].id)


def test_admins_set_harvesting_over_rest(lab):
    server, store, tenants = lab
    url = f"{server.rest_url}/v1/models/rest/harvest"
    admin = {"authorization": f"Bearer {tenants['admin']}"}
    with httpx.Client() as http:
        user = http.put(
            url, json={"enabled": True}, headers={"authorization": f"Bearer {tenants['alice']}"}
        )
        assert user.status_code == 403
        assert (
            http.get(url, headers={"authorization": f"Bearer {tenants['alice']}"}).status_code
            == 403
        )
        bad = http.put(url, json={"enabled": True, "budget_per_tenant": 0}, headers=admin)
        assert bad.status_code == 422 and "budget_per_tenant" in bad.text
        bad = http.put(url, json={"enabled": True, "path": "/etc"}, headers=admin)
        assert bad.status_code == 422 and "path" in bad.text
        ok = http.put(url, json={"enabled": True, "labels_per_round": 8}, headers=admin)
        assert ok.status_code == 200, ok.text
        assert store.metadata("rest")["harvest"]["labels_per_round"] == 8
        shown = http.get(url, headers=admin).json()
        assert shown["settings"]["enabled"] and shown["summary"] is None
    server.running.harvester.refresh()
    evaluate(lab, "bob", "rest", cells(1, 13))
    assert json.loads((store.root / "_harvest" / "rest.json").read_text())["per_tenant"] == {
        "bob": 1
    }


def test_every_client_surface_carries_the_opt_out(lab):
    server, _, tenants = lab
    atoms = cells(1, 14)[0]
    assert Client(server.address, harvest=False).request([atoms], ["energy"]).no_harvest
    assert not Client(server.address).request([atoms], ["energy"]).no_harvest
    assert AsyncClient(server.address, harvest=False).request([atoms], ["energy"]).no_harvest
    enable(lab, "optout")
    client = Client(server.address, "optout", api_key=tenants["bob"])
    with RemoteCalculator(client=client, owns_client=True, harvest=False) as calc:
        atoms.calc = calc
        assert np.isfinite(atoms.get_forces()).all()
        assert calc.todict()["harvest"] is False
    assert server.running.harvester.idle.wait(20)
    assert "bob" not in pool(lab, "optout").tenants_ever()


def test_rest_evaluations_are_harvested_unless_they_opt_out(lab):
    server, _, tenants = lab
    enable(lab, "viarest")
    url = f"{server.rest_url}/v1/models/viarest/evaluate"
    kept, skipped, plain = cells(3, 15)

    def post(atoms, tenant: str, **extra) -> httpx.Response:
        body = {"systems": [{"positions": atoms.positions.tolist(), "numbers": [29] * 4,
                             "cell": atoms.cell.tolist(), "pbc": [True] * 3}],
                "properties": ["energy", "forces"], **extra}  # fmt: skip
        headers = {"authorization": f"Bearer {tenants[tenant]}"}
        return httpx.post(url, json=body, headers=headers)

    reply = post(kept, "alice")
    assert reply.status_code == 200, reply.text
    assert "harvest_sigma" not in reply.json()["results"][0]
    assert post(skipped, "bob", no_harvest=True).status_code == 200
    bad = post(plain, "bob", no_harvest="yes")
    assert bad.status_code == 422 and "no_harvest" in bad.text
    assert server.running.harvester.idle.wait(20)
    waiting = pool(lab, "viarest").waiting()
    assert [w.info["tenant"] for w in waiting] == ["alice"]
    np.testing.assert_allclose(waiting[0].positions, kept.positions)
    np.testing.assert_allclose([w.info["sigma"] for w in waiting], sigmas(lab, "viarest", [kept]))
