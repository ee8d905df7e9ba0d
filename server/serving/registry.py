"""The model registry: name → versions → loaded model with its own batcher."""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from mlipserve.server.models.base import Potential, splits_call
from mlipserve.server.serving.batcher import DynamicBatcher
from mlipserve.server.serving.checks import InvalidInput
from mlipserve.server.serving.dispatch import (
    EvalRequest,
    PreparedRequests,
    prepare_requests,
    run_prepared_requests,
    run_requests,
)
from mlipserve.server.serving.livestats import LiveStats
from mlipserve.server.serving.metrics import LOADED, record_batch


def instrumented(model: Potential, live: LiveStats | None = None):
    """The batch function of a model, recording each batch's size and compute time (in
    Prometheus and, when given, the status page's window `live`). It takes the requests,
    or `prepare_requests`' result when the batcher pipelines (prepares N+1 while N runs)."""
    name = model.info.name

    def batch(arg: list[EvalRequest] | PreparedRequests) -> list[list[dict] | InvalidInput]:
        start = time.perf_counter()
        if isinstance(arg, PreparedRequests):
            requests, out = arg.requests, run_prepared_requests(model, arg)
        else:
            requests, out = arg, run_requests(model, arg)
        elapsed = time.perf_counter() - start
        atoms = sum(r.n_atoms for r in requests)
        record_batch(name, len(requests), atoms, elapsed)
        if live is not None:
            systems = sum(len(r.systems) for r in requests)
            live.record_batch(name, model.info.version, len(requests), systems, atoms, elapsed)
        log.debug(  # one line per batch: INFO would drown a busy server's log
            "batch",
            extra={
                "fields": {
                    "model": name,
                    "requests": len(requests),
                    "atoms": atoms,
                    "compute_s": round(elapsed, 6),
                }
            },
        )
        return out

    return batch


log = logging.getLogger("mlipserve.batches")


def pipeline_setting() -> bool | None:
    """MLIPSERVE_PIPELINE: 1 (prepare batch N+1 while N runs), 0 (never: e.g. a CPU shared
    with other busy processes, where the preparing thread competes for the cores), auto
    (default: for every model that splits its call into `prepare` and `run`)."""
    raw = os.environ.get("MLIPSERVE_PIPELINE", "auto").strip().lower()
    if raw not in ("1", "0", "auto"):
        raise ValueError(f"MLIPSERVE_PIPELINE must be 1, 0 or auto, not {raw!r}")
    return None if raw == "auto" else raw == "1"


@dataclass
class LoadedModel:
    """A model version in memory and the batcher that feeds it."""

    model: Potential
    batcher: DynamicBatcher[EvalRequest, list[dict]]


def cut(text: str, limit: int = 64) -> str:
    """`text` cut to `limit` characters for messages and logs (a caller's name may be huge)."""
    return text if len(text) <= limit else text[:limit] + f"…({len(text)} chars)"


class UnknownModel(KeyError):
    """No such model or version is loaded; the message says what is."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry:
    """Loaded models by name and version, each with a default version."""

    def __init__(
        self,
        *,
        batching: bool = True,
        max_batch_atoms: int = 100_000,
        max_wait_us: int = 0,
        pipeline: bool | None = None,
    ) -> None:
        self.batching = batching
        # prepare batch N+1 (neighbour lists, tensors) while N runs; None: as
        # MLIPSERVE_PIPELINE says (by default for every model that splits its call)
        self.pipeline = pipeline
        self.max_batch_atoms = max_batch_atoms
        self.max_wait_s = max_wait_us * 1e-6
        self._models: dict[str, dict[str, LoadedModel]] = {}
        self._defaults: dict[str, str] = {}
        self.default_model = ""
        self.live = LiveStats()  # recent batches and requests, for the status page

    def add(self, model: Potential, *, make_default: bool = True) -> LoadedModel:
        """Register a loaded model version and give it a batcher."""
        info = model.info
        if info.version in self._models.get(info.name, {}):
            raise ValueError(f"model {info.name!r} version {info.version!r} is already loaded")
        batcher = DynamicBatcher(
            instrumented(model, self.live),
            max_batch_weight=self.max_batch_atoms,
            max_wait_s=self.max_wait_s,
            max_batch_items=None if self.batching else 1,
            name=f"{info.name}-{info.version}",
            prepare=functools.partial(prepare_requests, model) if self.pipelines(model) else None,
        )
        loaded = LoadedModel(model, batcher)
        self._models.setdefault(info.name, {})[info.version] = loaded
        if make_default or info.name not in self._defaults:
            self._defaults[info.name] = info.version
        if not self.default_model:
            self.default_model = info.name
        LOADED.inc()
        return loaded

    def pipelines(self, model: Potential) -> bool:
        """Whether `model`'s batcher prepares the next batch while one runs."""
        choice = self.pipeline if self.pipeline is not None else pipeline_setting()
        return splits_call(model) if choice is None else choice

    def get(self, name: str = "", version: str = "") -> LoadedModel:
        """The loaded model for a name (empty: the default model) and version."""
        name = name or self.default_model
        versions = self._models.get(name)
        if versions is None:
            raise UnknownModel(f"unknown model {cut(name)!r}; loaded: {sorted(self._models)}")
        version = version or self._defaults[name]
        if version not in versions:
            raise UnknownModel(
                f"model {name!r} has no version {cut(version)!r}; loaded: {sorted(versions)}"
            )
        return versions[version]

    def serves(self, name: str) -> bool:
        """True when a model of that name is loaded."""
        return name in self._models

    def default_version(self, name: str) -> str:
        """The version requests naming none get for `name`."""
        self.get(name)
        return self._defaults[name]

    def set_default(
        self, name: str, version: str, persist: Callable[[], None] | None = None
    ) -> None:
        """Route new requests for `name` to `version` (requests in flight keep theirs).

        `persist` (e.g. writing the store's DEFAULT) runs after the checks and before the
        switch: when it raises, nothing has changed.
        """
        self.get(name, version)
        if persist is not None:
            persist()
        self._defaults[name] = version

    def remove(self, name: str, version: str) -> LoadedModel:
        """Take a non-default version out of service; its batcher must then be closed."""
        loaded = self.get(name, version)
        if self._defaults.get(name) == version:
            raise ValueError(f"{name}@{version} is the default version; set another default first")
        del self._models[name][version]
        LOADED.dec()
        return loaded

    def entries(self) -> list[tuple[LoadedModel, bool]]:
        """Every loaded version with whether it is its model's default."""
        return [
            (loaded, self._defaults[name] == version)
            for name, versions in sorted(self._models.items())
            for version, loaded in sorted(versions.items())
        ]

    async def close(self) -> None:
        """Stop every batcher."""
        for loaded, _ in self.entries():
            await loaded.batcher.close()
            LOADED.dec()
