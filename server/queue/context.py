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

    @property
    def caller(self):
        """Who the job runs for: its owner tenant and the role of the key that submitted it."""
        from mlipserve.server.queue.params import Caller

        return Caller(self.record.owner, self.record.role)

    def checked_params(self) -> dict:
        """The job's parameters, checked again here against the operator's labeller policy
        and the dataset rules (a job put on the queue by other means gets no further)."""
        from mlipserve.server.labellers.policy import PolicyError, load_policy
        from mlipserve.server.queue.datasets import DatasetError, ShareBook
        from mlipserve.server.queue.params import ParamError, check_job

        try:
            return check_job(
                self.record.kind,
                self.record.params,
                self.caller,
                load_policy(self.store_dir),
                ShareBook(self.store_dir),
            )
        except (ParamError, PolicyError, DatasetError) as err:
            raise JobError(f"refused: {err}") from None

    def labeller(self, name: str, settings: dict | None):
        """The labeller the operator's policy allows for `name` with `settings`."""
        from mlipserve.server.labellers.factory import make_labeller

        _, merged = self.labeller_plan(name, settings)
        try:
            return make_labeller(name, **merged)
        except ValueError as err:
            raise JobError(f"bad label parameters: {err}") from None

    def labeller_plan(self, name: str, settings: dict | None):
        """(policy entry, checked settings) for labeller `name`: what to build, and where."""
        from mlipserve.server.labellers.policy import PolicyError, load_policy

        try:
            return load_policy(self.store_dir).resolve(name, settings)
        except PolicyError as err:
            raise JobError(f"refused: {err}") from None

    def dataset_url(self, ref: str, param: str = "params.dataset") -> str:
        """The location of dataset `ref` ("name" or "owner:name") if this job may use it."""
        from mlipserve.server.queue.datasets import (
            DatasetError,
            ShareBook,
            authorize,
            dataset_location,
        )

        try:
            target = authorize(
                ref, self.caller.tenant, self.caller.role, ShareBook(self.store_dir), param
            )
            return dataset_location(self.data_dir, target, self.env.get("dataset_db", ""))
        except DatasetError as err:
            raise JobError(f"refused: {err}") from None

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
