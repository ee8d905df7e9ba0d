"""What a running job sees: its parameters' home, progress and log reporting, cancellation."""

from __future__ import annotations

from pathlib import Path

from mlipserve.server.queue.jobstore import JobRecord, JobStore


class JobError(ValueError):
    """A permanent job failure (bad parameters, missing data): reported, never retried."""


class JobContext:
    """Handed to every job function with the job's parameters."""

    def __init__(self, store: JobStore, record: JobRecord, env: dict) -> None:
        self.store, self.record, self.env = store, record, env
        self.job_id = record.id

    @property
    def data_dir(self) -> Path:
        """The installation's data directory (datasets live under it)."""
        return Path(self.env["data_dir"])

    @property
    def store_dir(self) -> Path:
        """The model store directory."""
        return Path(self.env["store_dir"])

    def dataset_url(self, name: str) -> str:
        """A dataset name → its ase.db location (a URL or path is used as given)."""
        if not name:
            raise JobError("a dataset name is required")
        if "://" in name or name.endswith(".db"):
            return name
        if not name.replace("-", "").replace("_", "").isalnum():
            raise JobError(f"dataset name {name!r} may hold only letters, digits, - and _")
        folder = self.data_dir / "datasets"
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder / f"{name}.db")

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Report progress in [0, 1] (and log a line when given)."""
        self.store.update(self.job_id, progress=float(min(max(fraction, 0.0), 1.0)))
        if message:
            self.log(message)

    def log(self, line: str) -> None:
        """Append to the job's log."""
        self.store.log(self.job_id, line)

    def cancelled(self) -> bool:
        """Whether the job was asked to stop (long loops should check it)."""
        return self.store.cancel_requested(self.job_id)
