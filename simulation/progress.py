"""One rich progress bar for the simulation drivers (MD loops, batched FIRE); silent when off."""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


class ProgressBar:
    """A context manager showing `description`, a bar, n/total, an info text (and the ETA).

    Disabled, it draws nothing and costs nothing (rich is not even imported).
    """

    def __init__(
        self,
        enabled: bool,
        description: str,
        total: int,
        *,
        transient: bool = True,
        eta: bool = True,
    ) -> None:
        self.enabled, self.description, self.total = enabled, description, total
        self.transient, self.eta = transient, eta
        self._bar: tuple[Progress, TaskID] | None = None

    def __enter__(self) -> Self:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            columns = [
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
            ]
            if self.eta:
                columns.append(TimeRemainingColumn())
            progress = Progress(*columns, transient=self.transient)
            progress.start()
            self._bar = (progress, progress.add_task(self.description, total=self.total, info=""))
        return self

    def advance(self) -> None:
        """One more item done."""
        if self._bar is not None:
            self._bar[0].advance(self._bar[1])

    def update(
        self,
        completed: int | None = None,
        description: str | None = None,
        info: str | None = None,
    ) -> None:
        """Set the items done, the description or the info text (None keeps each)."""
        if self._bar is None:
            return
        progress, task = self._bar
        if info is None:
            progress.update(task, completed=completed, description=description)
        else:
            progress.update(task, completed=completed, description=description, info=info)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar[0].stop()
            self._bar = None
