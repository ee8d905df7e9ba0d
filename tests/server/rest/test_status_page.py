"""The status page in a real browser (Debian's chromium driven by Playwright): figures on the
page change because requests were made, a job's state follows the worker, a harvest file shows
its pool and curve; with auth on and no key the page asks for one and shows no data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import httpx
import pytest
from ase.build import bulk
from playwright.sync_api import Page, expect, sync_playwright

from mlipserve.client import Client
from mlipserve.server.auth import KeyStore
from mlipserve.server.config import Settings
from mlipserve.server.queue.worker import Worker
from tests.conftest import ServerThread
from tests.server.rest.test_status import CU, HARVEST


def chromium_path() -> str:
    """Debian's chromium, installed with apt when absent (skip only where apt is missing)."""
    found = shutil.which("chromium")
    if found:
        return found
    if not shutil.which("apt-get"):
        pytest.skip("chromium is not installed and apt-get is unavailable")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    run = {"check": True, "capture_output": True, "timeout": 900}
    subprocess.run([*sudo, "apt-get", "update"], **run)
    subprocess.run([*sudo, "apt-get", "install", "-y", "chromium"], **run)
    found = shutil.which("chromium")
    assert found, "apt-get install chromium left no chromium on PATH"
    return found


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as pw:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        b = pw.chromium.launch(executable_path=chromium_path(), args=args)
        yield b
        b.close()


def row(page: Page, table: str, key: str, field: str):
    """One cell of a status table, by its row key and column field."""
    return page.locator(f'#{table} tr[data-key="{key}"] td[data-field="{field}"]')


def test_the_page_follows_traffic_jobs_and_harvesting(browser, tmp_path):
    srv = ServerThread(
        Settings(port=0, models=["lj", "emt"], data_dir=tmp_path / "data", workers=0)
    )
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(f"{srv.rest_url}/status")
        expect(page.locator("#dashboard")).to_be_visible()
        expect(page.locator("#login")).to_be_hidden()
        expect(row(page, "models", "lj@builtin-1", "requests")).to_have_text("0")
        expect(row(page, "models", "lj@builtin-1", "replica")).to_have_text(srv.address)
        expect(row(page, "harvest", "lj", "enabled")).to_have_text("off")

        ar = bulk("Ar", "fcc", a=5.3, cubic=True)
        with Client(srv.address, "lj") as client:
            for _ in range(6):
                client.evaluate(ar)
            client.evaluate([ar, ar, ar])  # one batch of 3 systems
        expect(row(page, "models", "lj@builtin-1", "requests")).to_have_text("7")
        expect(row(page, "models", "lj@builtin-1", "batches")).to_have_text("7")
        expect(row(page, "models", "lj@builtin-1", "systems-per-batch")).to_have_text("1.29")
        expect(row(page, "models", "lj@builtin-1", "atoms-per-batch")).to_have_text("5")
        expect(row(page, "models", "emt@ase", "requests")).to_have_text("0")
        expect(row(page, "tenants", "default", "share")).to_have_text("100.0 %")
        expect(page.locator("#requests-window")).to_have_text("7")
        assert page.locator("#chart-latency canvas").count() == 1

        params = {"structures": [CU], "dataset": "cu", "labeller": "emt"}
        job = httpx.post(f"{srv.rest_url}/v1/jobs", json={"kind": "label", "params": params})
        job_id = job.json()["id"]
        expect(row(page, "jobs", job_id, "state")).to_have_text("queued")
        Worker(srv.settings.worker_config()).run(max_jobs=1)
        expect(row(page, "jobs", job_id, "state")).to_have_text("done", timeout=15_000)
        expect(row(page, "jobs", job_id, "progress")).to_have_text("100 %")

        folder = srv.settings.model_store_dir / "_harvest"
        folder.mkdir(parents=True)
        (folder / "lj.json").write_text(json.dumps(HARVEST))
        expect(row(page, "harvest", "lj", "enabled")).to_have_text("on")
        expect(row(page, "harvest", "lj", "pool")).to_have_text("42")
        expect(row(page, "harvest", "lj", "labels")).to_have_text("200")
        expect(row(page, "harvest", "lj", "mae")).to_have_text("31.5 meV/Å")
        expect(page.locator('#al-curves figure[data-model="lj"] canvas')).to_have_count(1)
        page.screenshot(path=tmp_path / "status.png", full_page=True)
        assert (tmp_path / "status.png").stat().st_size > 10_000
        page.close()
    finally:
        srv.stop()


def test_with_auth_on_the_page_asks_for_a_key_and_shows_only_that_tenant(browser, tmp_path):
    srv = ServerThread(
        Settings(port=0, models=["lj"], auth=True, data_dir=tmp_path / "data", workers=0)
    )
    try:
        keys = KeyStore(srv.settings.key_db_url)
        user, other = keys.create("user", "lab-a")[1], keys.create("user", "lab-b")[1]
        ar = bulk("Ar", "fcc", a=5.3)
        for key, n in ((user, 2), (other, 3)):
            with Client(srv.address, "lj", api_key=key) as client:
                for _ in range(n):
                    client.evaluate(ar)
        page = browser.new_page()
        page.goto(f"{srv.rest_url}/status")
        expect(page.locator("#login")).to_be_visible()
        expect(page.locator("#dashboard")).to_be_hidden()
        body = page.locator("body").inner_text()
        assert "lab-a" not in body and "builtin-1" not in body
        assert page.locator("#models tbody tr").count() == 0
        page.screenshot(path=tmp_path / "login.png")

        page.fill("#api-key", "mls_wrong_key")
        page.click("#login-form button")
        expect(page.locator("#login-error")).to_contain_text("refused this key")
        expect(page.locator("#dashboard")).to_be_hidden()

        page.fill("#api-key", user)
        page.click("#login-form button")
        expect(page.locator("#dashboard")).to_be_visible()
        expect(page.locator("#who")).to_contain_text("user of tenant lab-a")
        expect(row(page, "models", "lj@builtin-1", "requests")).to_have_text("5")
        expect(row(page, "tenants", "lab-a", "requests")).to_have_text("2")
        assert page.locator("#tenants tbody tr").count() == 1  # lab-b's share is not shown
        assert page.evaluate("sessionStorage.getItem('mlipserve.apiKey')") == user
        page.screenshot(path=tmp_path / "signed-in.png", full_page=True)

        page.click("#logout")
        expect(page.locator("#login")).to_be_visible()
        assert page.locator("#tenants tbody tr").count() == 0
        page.close()
    finally:
        srv.stop()
