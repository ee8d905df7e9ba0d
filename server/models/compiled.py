"""Opt-in torch.compile of a served module, with a fallback to eager when it fails.

On CPU, inductor fuses PaiNN's many memory-bound edge operations (forward and the force
backward) into a few C++ loops: about half the time per step on small systems, for a
compile of ~30 s to minutes on the first call (then cached on disk by torch). That first
call is why it is opt-in: `MLIPSERVE_COMPILE=1`. Shapes are compiled dynamic, so a new atom
or edge count does not compile again. Any failure (no C++ compiler, an unsupported
operation) logs a warning and the evaluator stays eager, with the same results.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)


def compile_setting() -> bool:
    """MLIPSERVE_COMPILE: "1"/"true"/"yes" to compile, "0"/"false"/"no"/"" (default) not."""
    raw = os.environ.get("MLIPSERVE_COMPILE", "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise ValueError(f"MLIPSERVE_COMPILE must be 1 or 0 (true/false, yes/no), not {raw!r}")


def compiled_module(module: torch.nn.Module) -> Callable | None:
    """`torch.compile(module, dynamic=True)`, or None where torch.compile is unavailable."""
    compile_fn = getattr(torch, "compile", None)
    if compile_fn is None:
        log.warning("torch.compile is unavailable in this torch; serving eager")
        return None
    try:
        return compile_fn(module, dynamic=True)
    except Exception as err:  # torch.compile itself is lazy; this is rare
        log.warning("torch.compile failed (%s); serving eager", err)
        return None
