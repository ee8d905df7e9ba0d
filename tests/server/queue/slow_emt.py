"""A real EMT calculator that takes its time: makes a label job long enough to kill mid-way."""

from __future__ import annotations

import time

from ase.calculators.emt import EMT


class SlowEMT(EMT):
    """EMT that sleeps `delay` seconds per calculation."""

    def __init__(self, delay: float = 2.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.delay = delay

    def calculate(self, *args, **kwargs) -> None:
        time.sleep(self.delay)
        super().calculate(*args, **kwargs)
