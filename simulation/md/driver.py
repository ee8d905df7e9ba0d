"""Batched molecular dynamics: R replicas, one ForceProvider call per step for all of them.

```python
from ase import units
from mlipserve.simulation import RemoteProvider
from mlipserve.simulation.md import MolecularDynamics
from mlipserve.simulation.md.state import MDState
from mlipserve.simulation.md.integrators import langevin_baoab

state = MDState.from_atoms(replicas, temperature_K=300, seeds=range(len(replicas)))
md = MolecularDynamics(RemoteProvider(address, "lj"), state,
                       langevin_baoab(2 * units.fs, temperature_K=300, friction=0.01 / units.fs))
md.write_trajectory("run_{replica}.extxyz", interval=10)
md.attach(lambda: print(md.state.temperature), interval=100)
md.run(1000, progress=True)
```
"""

from __future__ import annotations

from mlipserve.simulation.md.barostats import StochasticCellRescaling
from mlipserve.simulation.md.integrators import BerendsenBarostat, Integrator
from mlipserve.simulation.md.loop import Driver
from mlipserve.simulation.md.observers import EnergyLog
from mlipserve.simulation.md.stability import StabilityReport, check_timestep
from mlipserve.simulation.md.state import MDState
from mlipserve.simulation.provider import ForceProvider


class MolecularDynamics(Driver[MDState]):
    """Drives an `Integrator` (and optional barostat) over a batched `MDState`.

    Each step makes exactly one `provider.evaluate` call holding every replica; stress is
    requested only when a barostat needs it. The run loop, observers (`attach(fn, interval,
    *args)` calls `fn(*args)` before the first step and every `interval` steps) and
    trajectory files are `loop.Driver`'s. For NPT use `StochasticCellRescaling` (samples
    the ensemble, volume fluctuations included); `BerendsenBarostat` only relaxes the
    density (fast equilibration, not sampling).
    With `check_stability`, the first `run` computes the linear-stability bound
    (`stability.check_timestep`, 6N extra systems per replica in one call) and warns when dt
    exceeds it.
    """

    def __init__(
        self,
        provider: ForceProvider,
        state: MDState,
        integrator: Integrator,
        barostat: StochasticCellRescaling | BerendsenBarostat | None = None,
        check_stability: bool = False,
        extra_properties: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        integrator.check(state)
        if barostat is not None:
            barostat.check(state)
        self.provider = provider
        self.integrator = integrator
        self.barostat = barostat
        self.properties: tuple[str, ...] = (
            ("energy", "forces")
            + (("stress",) if barostat is not None else ())
            + tuple(extra_properties)
        )
        self.last_results: list[dict] = []  # the last force call's results, one per replica
        self.check_stability = check_stability
        self.stability: StabilityReport | None = None
        self.calls = 0
        if state.forces is None or (barostat is not None and state.stress is None):
            state = self._evaluate(state)
        self.state = state

    @property
    def dt(self) -> float:
        """The time step, ASE time units."""
        return self.integrator.dt

    @property
    def time(self) -> float:
        """Simulated time since step 0, ASE time units."""
        return self.state.step * self.integrator.dt

    def _evaluate(self, state: MDState) -> MDState:
        results = self.provider.evaluate(state.systems(), self.properties)
        self.last_results = results
        self.calls += 1
        return state.with_results(results)

    def _compute(self, state: MDState) -> MDState:
        if self.barostat is None:
            return self._evaluate(state)
        evaluated = self._evaluate(self.barostat.scale(state, self.integrator.dt))
        settle = getattr(self.barostat, "settle", None)
        return evaluated if settle is None else settle(state, evaluated)

    def log_energies(self, interval: int = 1) -> EnergyLog:
        """Record per-replica energies, temperature (and pressure) every interval steps."""
        log = EnergyLog(lambda: self.state, lambda: self.time)
        self.attach(log, interval)
        return log

    def check_timestep(self, warn: bool = True, delta: float = 1e-3) -> StabilityReport:
        """Linear-stability bound at the current configuration (see `stability`)."""
        self.stability = check_timestep(self.provider, self.state, self.integrator, delta, warn)
        return self.stability

    def step(self) -> MDState:
        """Advance every replica by one time step (one force call)."""
        self.state = self.integrator.step(self.state, self._compute)
        return self.state

    def _start_run(self) -> None:
        if self.check_stability and self.stability is None:
            self.check_timestep(warn=True)

    def _progress_label(self) -> str:
        return "MD"

    def _progress_info(self) -> str:
        temps = self.state.temperature
        return f"T {temps.mean():.1f} K ({self.state.n_replicas} replicas)"
