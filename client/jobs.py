"""A small REST client for the job queue (/v1/jobs): submit, follow and wait for jobs.

```python
from mlipserve.client.jobs import JobsClient

with JobsClient("http://127.0.0.1:8080", api_key=None) as jobs:
    job = jobs.label(new_structures, dataset="cu", labeller="emt")
    jobs.wait(job["id"], timeout=300)
    candidate = jobs.run("retrain", {"model": "cu", "dataset": "cu", "epochs": 30})["candidate"]
```
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Self

import httpx
import numpy as np

FINAL_STATES = frozenset({"done", "failed", "cancelled"})
KINDS = ("label", "retrain", "evaluate", "promote")


class JobFailed(RuntimeError):
    """A job ended as failed or cancelled; `record` holds its last state (error, logs)."""

    def __init__(self, record: dict) -> None:
        super().__init__(
            f"job {record.get('id')} ({record.get('kind')}) {record.get('state')}: "
            f"{record.get('error')}"
        )
        self.record = record


class JobsRequestError(RuntimeError):
    """The server refused a request (HTTP status ≥ 400); carries the status and its message."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status, self.detail = status, detail


def structure_dict(atoms: Any) -> dict:
    """An ase.Atoms (or SystemArrays) as the plain {numbers, positions, cell, pbc} of jobs."""
    cell = atoms.cell.array if hasattr(atoms.cell, "array") else atoms.cell
    return {
        "numbers": np.asarray(atoms.numbers).astype(int).tolist(),
        "positions": np.asarray(atoms.positions, dtype=float).tolist(),
        "cell": np.asarray(cell, dtype=float).tolist(),
        "pbc": np.asarray(atoms.pbc, dtype=bool).tolist(),
    }


class JobsClient:
    """Submit and follow queue jobs on a server's REST API.

    Args:
        url: the REST base address ("http://host:8080").
        api_key: sent as `authorization: Bearer <key>`; retrain/evaluate/promote need an
            admin key when the server has auth on.
        timeout: seconds for one HTTP request.
    """

    def __init__(
        self, url: str = "http://127.0.0.1:8080", api_key: str | None = None, timeout: float = 30.0
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {url!r}")
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        reply = self._http.request(method, path, **kwargs)
        if reply.status_code >= 400:
            try:
                detail = reply.json().get("detail", reply.text)
            except ValueError:
                detail = reply.text
            raise JobsRequestError(reply.status_code, str(detail))
        return reply.json()

    def submit(
        self, kind: str, params: dict, max_attempts: int = 3, time_limit_s: float = 600.0
    ) -> dict:
        """Queue a job; returns its record (with "id" and state "queued")."""
        if kind not in KINDS:
            raise ValueError(f"unknown job kind {kind!r}; known: {', '.join(KINDS)}")
        return self._call(
            "POST",
            "/v1/jobs",
            json={
                "kind": kind,
                "params": params,
                "max_attempts": max_attempts,
                "time_limit_s": time_limit_s,
            },
        )

    def get(self, job_id: str) -> dict:
        """A job's record: state, progress, logs, result, error."""
        return self._call("GET", f"/v1/jobs/{job_id}")

    def list(self, state: str | None = None, kind: str | None = None) -> list[dict]:
        """Jobs visible to this key, newest first."""
        params = {k: v for k, v in (("state", state), ("kind", kind)) if v}
        return self._call("GET", "/v1/jobs", params=params)

    def cancel(self, job_id: str) -> dict:
        """Cancel a queued or running job."""
        return self._call("POST", f"/v1/jobs/{job_id}/cancel")

    def wait(self, job_id: str, timeout: float = 600.0, poll_s: float = 0.5) -> dict:
        """Block until the job is final; return its result. Raises JobFailed or TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            record = self.get(job_id)
            if record["state"] == "done":
                return record.get("result") or {}
            if record["state"] in FINAL_STATES:
                raise JobFailed(record)
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"job {job_id} ({record['kind']}) still {record['state']} after {timeout:g} s"
                )
            time.sleep(poll_s)

    def run(
        self,
        kind: str,
        params: dict,
        timeout: float = 600.0,
        poll_s: float = 0.5,
        **submit_kwargs: Any,
    ) -> dict:
        """Submit a job and wait for its result."""
        job = self.submit(kind, params, **submit_kwargs)
        return self.wait(job["id"], timeout, poll_s)

    def label(
        self,
        structures: Sequence[Any],
        dataset: str,
        labeller: str = "emt",
        settings: dict | None = None,
        **submit_kwargs: Any,
    ) -> dict:
        """Queue a label job for ase.Atoms structures; returns the job record."""
        if not structures:
            raise ValueError("label needs at least one structure")
        params: dict[str, Any] = {
            "structures": [structure_dict(a) for a in structures],
            "labeller": labeller,
            "dataset": dataset,
        }
        if settings:
            params["settings"] = settings
        return self.submit("label", params, **submit_kwargs)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
