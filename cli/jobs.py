"""`mlipserve jobs ...` (over REST) and `mlipserve worker` (a queue worker process)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mlipserve.cli.options import KEY, URL, EpilogHelp, console
from mlipserve.cli.rest import rest_call

app = typer.Typer(help="Labelling and retraining jobs on a server's queue.", no_args_is_help=True)


@app.command("list")
def jobs_list(
    url: URL = "http://127.0.0.1:8080",
    api_key: KEY = None,
    state: Annotated[str | None, typer.Option(help="queued, running, done ...")] = None,
    kind: Annotated[str | None, typer.Option(help="label, retrain ...")] = None,
) -> None:
    """Jobs of your tenant (every tenant's for admins), newest first."""
    params = {k: v for k, v in (("state", state), ("kind", kind)) if v}
    table = Table(title=f"jobs on {url}")
    for col in ("id", "kind", "owner", "state", "progress", "attempts", "age", "error"):
        table.add_column(col)
    for job in rest_call(url, api_key, "GET", "/v1/jobs", params=params):
        table.add_row(
            job["id"],
            job["kind"],
            job["owner"],
            job["state"],
            f"{100 * job['progress']:.0f}%",
            f"{job['attempts']}/{job['max_attempts']}",
            f"{time.time() - job['created']:.0f} s",
            (job["error"] or "")[:60],
        )
    console.print(table)


@app.command("show")
def jobs_show(job_id: str, url: URL = "http://127.0.0.1:8080", api_key: KEY = None) -> None:
    """One job's record: state, progress, logs and result as JSON (times in local ISO form)."""
    record = rest_call(url, api_key, "GET", f"/v1/jobs/{job_id}")
    console.print_json(json.dumps(readable_times(record)))


TIME_FIELDS = ("created", "enqueued", "started", "finished")


def readable_times(record: dict) -> dict:
    """The record with its Unix-time fields as local ISO timestamps (the rest unchanged)."""
    from datetime import datetime

    out = dict(record)
    for key in TIME_FIELDS:
        if isinstance(out.get(key), (int, float)):
            out[key] = datetime.fromtimestamp(out[key]).isoformat(sep=" ", timespec="seconds")
    return out


def _type_name(prop: dict) -> str:
    """A parameter's type from its JSON schema: `string | null` as `str | None`."""
    names = {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}
    names |= {"array": "list", "object": "dict", "null": "None"}
    kinds = [p.get("type", "any") for p in prop.get("anyOf", [prop])]
    return " | ".join(names.get(k, k) for k in kinds)


def job_kinds_help() -> str:
    """Each job kind's parameters: name, type, default and meaning (for --help)."""
    try:
        from mlipserve.server.queue.params import ADMIN_KINDS, SCHEMAS
    except ImportError:  # the thin client's install: no server extra
        return "Job kinds and their parameters are listed here once mlipserve[server] is installed."
    lines = ["Job kinds and their --params (JSON keys):"]
    for kind, schema in SCHEMAS.items():
        who = " (admin key)" if kind in ADMIN_KINDS else ""
        lines.append(f"  {kind}{who}: {(schema.__doc__ or '').strip().splitlines()[0]}")
        props = schema.model_json_schema()["properties"]
        for name, field in schema.model_fields.items():
            kind_of = _type_name(props[name])
            default = (
                "required"
                if field.is_required()
                else f"default {field.get_default(call_default_factory=True)!r}"
            )
            about = f": {field.description}" if field.description else ""
            lines.append(f"    {name} ({kind_of}; {default}){about}")
    lines.append(
        "Label jobs refuse a labeller the operator has not enabled (`mlipserve labellers`)."
    )
    return "\n".join(lines)


class JobKindsHelp(EpilogHelp):
    """`jobs submit`'s command: its --help lists every job kind's parameters."""

    def epilog_text(self) -> str:
        """The job kinds and their parameters."""
        return job_kinds_help()


def _params(text: str) -> dict:
    """--params as a JSON object, inline or from @file."""
    try:
        raw = Path(text[1:]).read_text() if text.startswith("@") else text
        body = json.loads(raw)
    except OSError as err:
        raise typer.BadParameter(f"cannot read {text[1:]}: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise typer.BadParameter(f"not JSON ({err})") from None
    if not isinstance(body, dict):
        raise typer.BadParameter("must be a JSON object")
    return body


@app.command("submit", cls=JobKindsHelp)
def jobs_submit(
    kind: Annotated[str, typer.Argument(help="label, retrain, evaluate or promote")],
    params: Annotated[str, typer.Option(help="Job parameters as JSON (or @file.json).")] = "{}",
    structures: Annotated[
        Path | None, typer.Option(help="For label jobs: a structure file ASE reads (all frames).")
    ] = None,
    time_limit_s: Annotated[float, typer.Option(help="Per attempt.")] = 600.0,
    max_attempts: Annotated[int, typer.Option()] = 3,
    url: URL = "http://127.0.0.1:8080",
    api_key: KEY = None,
) -> None:
    """Queue a job; prints its id. Example: `jobs submit label --structures new.xyz
    --params '{"dataset": "cu", "labeller": "emt"}'`."""
    body = _params(params)
    if structures is not None:
        import ase.io

        try:
            frames = ase.io.read(structures, index=":")
        except Exception as err:  # noqa: BLE001 - ASE raises many kinds for unreadable files
            raise typer.BadParameter(f"cannot read {structures}: {err}") from None
        body["structures"] = [
            {
                "numbers": a.numbers.tolist(),
                "positions": a.positions.tolist(),
                "cell": a.cell.array.tolist(),
                "pbc": a.pbc.tolist(),
            }
            for a in frames
        ]
    job = rest_call(
        url,
        api_key,
        "POST",
        "/v1/jobs",
        json={
            "kind": kind,
            "params": body,
            "time_limit_s": time_limit_s,
            "max_attempts": max_attempts,
        },
    )
    console.print(job["id"])


@app.command("cancel")
def jobs_cancel(job_id: str, url: URL = "http://127.0.0.1:8080", api_key: KEY = None) -> None:
    """Cancel a queued or running job."""
    job = rest_call(url, api_key, "POST", f"/v1/jobs/{job_id}/cancel")
    console.print(f"{job['id']}: {job['state']}")


def worker(
    redis_url: Annotated[
        str | None,
        typer.Option(
            help="Broker (Redis) URL; default MLIPSERVE_REDIS_URL, else the SQLite queue."
        ),
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Datasets and (default) model store.")
    ] = None,
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
    settings = Settings(**overrides)
    config = settings.worker_config()
    from mlipserve.server import store_events

    store_events.configure(settings.announce_url)  # promotions by this worker are announced
    console.print(f"worker on {config.queue_url} (concurrency {concurrency})")
    stop = threading.Event()
    threads = [
        threading.Thread(target=Worker(config).run, args=(stop,), daemon=True)
        for _ in range(max(1, concurrency))
    ]
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads):
            time.sleep(0.5)
    except KeyboardInterrupt:
        stop.set()
