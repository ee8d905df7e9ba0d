"""`mlipserve status`: the status page's figures in the terminal (a rich live view)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Group
from rich.table import Table

from mlipserve.cli.options import KEY, URL, console
from mlipserve.cli.rest import rest_call


def _num(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _ms(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f} ms"


def _table(title: str, columns: list[str], rows: list[list[str]], empty: str) -> Table:
    from rich import box

    table = Table(title=title, title_justify="left", expand=False, box=box.SIMPLE_HEAD)
    for col in columns:
        table.add_column(col, overflow="fold", no_wrap=col in ("replica", "id", "worker"))
    for row in rows:
        table.add_row(*row)
    if not rows:
        table.add_row(empty, *[""] * (len(columns) - 1))
    return table


def models_table(doc: dict) -> Table:
    """Models, versions, replica, queue depth, batch fill and latency."""
    rows = []
    for m in doc["models"]:
        w = m["window"]
        rows.append(
            [
                m["name"],
                m["version"] + (" *" if m["default"] else ""),
                m["replica"],
                str(m["queue_depth"]),
                str(m["requests_total"]),
                str(w.get("requests", 0)),
                str(w.get("batches", 0)),
                _num(w.get("requests_per_batch"), 2),
                _num(w.get("systems_per_batch"), 2),
                _num(w.get("atoms_per_batch"), 0),
                _ms(w.get("p50_ms")),
                _ms(w.get("p99_ms")),
            ]
        )
    columns = ["model", "version", "replica", "queue", "requests", "in window", "batches"]
    columns += ["req/batch", "sys/batch", "atoms/batch", "p50", "p99"]
    title = f"models (* default version; window {doc['window_s']:g} s)"
    return _table(title, columns, rows, "no models")


def tenants_table(doc: dict) -> Table:
    """Each tenant's share of compute in the window (only the caller's for a user key)."""
    rows = [
        [t, str(v["requests"]), str(v["atoms"]), f"{1e3 * v['compute_s']:.1f} ms"]
        + [f"{100 * v['share']:.1f} %"]
        for t, v in doc["tenants"].items()
    ]
    columns = ["tenant", "requests", "atoms", "compute", "share"]
    return _table("tenants' share of compute", columns, rows, "no requests")


def queue_tables(doc: dict) -> list[Table]:
    """Workers with their leases, and the newest jobs."""
    q = doc["queue"]
    workers = [
        [w["worker"], w["job"], w["kind"], str(w["attempt"]), _num(w["lease_expires_in_s"], 0)]
        for w in q["workers"]
    ]
    now = time.time()
    jobs = [
        [j["id"], j["kind"], j["owner"], j["state"], f"{100 * j['progress']:.0f}%"]
        + [f"{j['attempts']}/{j['max_attempts']}", f"{now - j['created']:.0f} s", j["error"] or ""]
        for j in q["jobs"][:15]
    ]
    note = q["error"] or ("" if q["configured"] else "no job queue")
    columns = ["id", "kind", "owner", "state", "progress", "attempts", "age", "error"]
    return [
        _table("workers", ["worker", "job", "kind", "attempt", "lease left s"], workers, "none"),
        _table(f"jobs (queued items: {q.get('queue_length', '–')}) {note}", columns, jobs, "none"),
    ]


def history_tables(doc: dict) -> list[Table]:
    """Promotion decisions and harvesting (pool, last round of the AL curve)."""
    promotions = [
        [
            time.strftime("%Y-%m-%d %H:%M", time.localtime(p["at"])) if p["at"] else "–",
            p["model"],
            str(p["candidate"]),
            str(p["previous"]),
            "promoted" if p["promoted"] else "kept current",
            _num(p["candidate_force_mae"]),
            _num(p["current_force_mae"]),
        ]
        for p in doc["promotions"]["entries"][:10]
    ]
    harvest = []
    for h in doc["harvest"]:
        last = h["rounds"][-1] if h["rounds"] else None
        curve = " ".join(
            f"{r['labels_total']}:{_num(r['heldout_force_mae_meV'])}" for r in h["rounds"][-6:]
        )
        harvest.append(
            [
                h["model"],
                h["error"] or ("on" if h["enabled"] else "off"),
                str(h["pool_size"]),
                ", ".join(f"{t}: {n}" for t, n in h["per_tenant"].items()),
                str(last["labels_total"]) if last else "–",
                curve or "–",
            ]
        )
    columns = ["when", "model", "candidate", "previous", "decision", "cand. F-MAE", "curr. F-MAE"]
    return [
        _table("promotions", columns, promotions, "none"),
        _table(
            "harvesting (curve: labels:held-out F-MAE meV/Å)",
            ["model", "harvesting", "pool", "per tenant", "labels", "curve"],
            harvest,
            "none",
        ),
    ]


def view(doc: dict) -> Group:
    """Every table of one status document."""
    o = doc["overall"]
    who = f"{doc['caller']['role']} of {doc['caller']['tenant']}" if doc["auth"] else "auth off"
    head = (
        f"[bold]mlipserve {doc['server_version']}[/bold] replica {doc['replica']} · {who} · "
        f"batches {o['batches']} · req/batch {_num(o['requests_per_batch'], 2)} · "
        f"p50 {_ms(o['p50_ms'])} · p99 {_ms(o['p99_ms'])}"
    )
    return Group(
        head,
        models_table(doc),
        tenants_table(doc),
        *queue_tables(doc),
        *history_tables(doc),
    )


def status(
    url: URL = "http://127.0.0.1:8080",
    api_key: KEY = None,
    once: Annotated[bool, typer.Option("--once", help="Print one snapshot and exit.")] = False,
    interval: Annotated[
        float, typer.Option(min=0.2, help="Seconds between refreshes of the live view.")
    ] = 1.0,
    window: Annotated[
        float, typer.Option(min=1.0, max=3600.0, help="Seconds of the rolling window.")
    ] = 60.0,
) -> None:
    """The server's status (what /status shows): models and versions on this replica, queue
    depth, batch fill, latency p50/p99, tenants' shares, workers, jobs, promotions and
    harvesting. A user key sees its own tenant's share and jobs. Ctrl-C ends the live view."""
    params = {"window_s": window}
    if once:
        console.print(view(rest_call(url, api_key, "GET", "/v1/status", params=params)))
        return
    from rich.live import Live

    doc = rest_call(url, api_key, "GET", "/v1/status", params=params)
    with Live(view(doc), console=console, refresh_per_second=4, screen=False) as live:
        try:
            while True:
                time.sleep(interval)
                live.update(view(rest_call(url, api_key, "GET", "/v1/status", params=params)))
        except KeyboardInterrupt:
            pass
