"""`mlipserve jobs ...` (over REST) and `mlipserve worker` (a queue worker process)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from mlipserve.rest_call import rest_call
from rich.console import Console
from rich.table import Table

console = Console()
jobs_app = typer.Typer(help="Labelling and retraining jobs on a server's queue.",
                       no_args_is_help=True)
datasets_app = typer.Typer(help="Dataset sharing between tenants (over REST; admin to share).",
                           no_args_is_help=True)
URL = Annotated[str, typer.Option("--url", help="REST address of the server.")]
KEY = Annotated[str | None, typer.Option("--api-key", envvar="MLIPSERVE_API_KEY",
                                         help="API key (or MLIPSERVE_API_KEY).")]


@jobs_app.command("list")
def jobs_list(url: URL = "http://127.0.0.1:8080", api_key: KEY = None,
              state: Annotated[str | None, typer.Option(help="queued, running, done ...")] = None,
              kind: Annotated[str | None, typer.Option(help="label, retrain ...")] = None) -> None:
    """Jobs of your tenant (every tenant's for admins), newest first."""
    params = {k: v for k, v in (("state", state), ("kind", kind)) if v}
    table = Table(title=f"jobs on {url}")
    for col in ("id", "kind", "owner", "state", "progress", "attempts", "age", "error"):
        table.add_column(col)
    for job in rest_call(url, api_key, "GET", "/v1/jobs", params=params):
        table.add_row(job["id"], job["kind"], job["owner"], job["state"],
                      f"{100 * job['progress']:.0f}%", f"{job['attempts']}/{job['max_attempts']}",
                      f"{time.time() - job['created']:.0f} s", (job["error"] or "")[:60])
    console.print(table)


@jobs_app.command("show")
def jobs_show(job_id: str, url: URL = "http://127.0.0.1:8080", api_key: KEY = None) -> None:
    """One job's record: state, progress, logs and result as JSON."""
    console.print_json(json.dumps(rest_call(url, api_key, "GET", f"/v1/jobs/{job_id}")))


@jobs_app.command("submit")
def jobs_submit(
    kind: Annotated[str, typer.Argument(help="label, retrain, evaluate or promote")],
    params: Annotated[str, typer.Option(help="Job parameters as JSON (or @file.json).")] = "{}",
    structures: Annotated[Path | None, typer.Option(
        help="For label jobs: a structure file ASE reads (all frames).")] = None,
    time_limit_s: Annotated[float, typer.Option(help="Per attempt.")] = 600.0,
    max_attempts: Annotated[int, typer.Option()] = 3,
    url: URL = "http://127.0.0.1:8080", api_key: KEY = None,
) -> None:
    """Queue a job; prints its id. Example: `jobs submit label --structures new.xyz
    --params '{"dataset": "cu", "labeller": "emt"}'`."""
    body = json.loads(Path(params[1:]).read_text() if params.startswith("@") else params)
    if structures is not None:
        import ase.io

        body["structures"] = [{"numbers": a.numbers.tolist(), "positions": a.positions.tolist(),
                               "cell": a.cell.array.tolist(), "pbc": a.pbc.tolist()}
                              for a in ase.io.read(structures, index=":")]
    job = rest_call(url, api_key, "POST", "/v1/jobs", json={
        "kind": kind, "params": body, "time_limit_s": time_limit_s, "max_attempts": max_attempts})
    console.print(job["id"])


@jobs_app.command("cancel")
def jobs_cancel(job_id: str, url: URL = "http://127.0.0.1:8080", api_key: KEY = None) -> None:
    """Cancel a queued or running job."""
    job = rest_call(url, api_key, "POST", f"/v1/jobs/{job_id}/cancel")
    console.print(f"{job['id']}: {job['state']}")


@datasets_app.command("shares")
def datasets_shares(url: URL = "http://127.0.0.1:8080", api_key: KEY = None) -> None:
    """Shared datasets your tenant owns or receives (every share for admins)."""
    table = Table(title=f"dataset shares on {url}")
    for col in ("dataset", "shared with"):
        table.add_column(col)
    for row in rest_call(url, api_key, "GET", "/v1/datasets/shares"):
        table.add_row(row["dataset"], ", ".join(row["shared_with"]))
    console.print(table)


@datasets_app.command("share")
def datasets_share(
    owner: Annotated[str, typer.Argument(help="Tenant that owns the dataset.")],
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    tenants: Annotated[str, typer.Option(
        "--with", help="Comma-separated tenants that may read and label into it "
                       "(empty: unshare).")] = "",
    url: URL = "http://127.0.0.1:8080", api_key: KEY = None,
) -> None:
    """Share OWNER's dataset NAME with exactly the tenants given (admin key); jobs of those
    tenants name it as OWNER:NAME."""
    from urllib.parse import quote

    body = {"tenants": [t.strip() for t in tenants.split(",") if t.strip()]}
    owner_q, name_q = (quote(s, safe="").replace(".", "%2E") for s in (owner, name))
    out = rest_call(url, api_key, "PUT", f"/v1/datasets/shares/{owner_q}/{name_q}", json=body)
    console.print(f"{out['dataset']} shared with: {', '.join(out['shared_with']) or 'nobody'}")


def worker(
    redis_url: Annotated[str | None, typer.Option(
        help="Broker (Redis) URL; default MLIPSERVE_REDIS_URL, else the SQLite queue.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Datasets and (default) model store.")] = None,
    concurrency: Annotated[int, typer.Option(help="Jobs run at once.")] = 1,
) -> None:
    """Run queue workers (any number, on any machine that reaches the broker and the store)."""
    import logging
    import threading

    from mlipserve.server.config import Settings
    from mlipserve.server.memory import keep_freed_memory
    from mlipserve.server.queue.worker import Worker

    keep_freed_memory()  # before the worker threads start (see mlipserve.server.memory)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    overrides = {k: v for k, v in (("redis_url", redis_url), ("data_dir", data_dir)) if v}
    config = Settings(**overrides).worker_config()
    console.print(f"worker on {config.queue_url} (concurrency {concurrency})")
    stop = threading.Event()
    threads = [threading.Thread(target=Worker(config).run, args=(stop,), daemon=True)
               for _ in range(max(1, concurrency))]
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads):
            time.sleep(0.5)
    except KeyboardInterrupt:
        stop.set()
