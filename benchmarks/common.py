"""Shared benchmark helpers: a server in a child process, machine facts, result files."""

from __future__ import annotations

import os

# Idle OpenMP threads of torch spin for a while after each op; with a server and a client
# process on 2 cores, the idle side then steals the busy side's CPU. Sleep instead.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import json
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine() -> dict:
    """What the numbers were measured on."""
    info = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "host": platform.node(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    try:
        with open("/proc/cpuinfo") as fh:
            info["cpu"] = next(l.split(":", 1)[1].strip() for l in fh if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return info


def wait_ready(address: str, timeout: float = 120.0) -> None:
    """Block until a gRPC server answers at `address`."""
    channel = grpc.insecure_channel(address)
    grpc.channel_ready_future(channel).result(timeout=timeout)
    channel.close()


class ChildServer:
    """`mlipserve serve` in a child process pinned (where possible) to its own cores."""

    def __init__(self, *args: str, cpus: set[int] | None = None):
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlipserve.cli",
                "serve",
                "--port",
                str(self.port),
                "--rest-port",
                "0",
                *args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if cpus and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(self.proc.pid, cpus)
        wait_ready(self.address)

    def stop(self) -> None:
        """SIGTERM (the server drains), then SIGKILL if it is still up after 40 s."""
        self.proc.terminate()
        try:
            self.proc.wait(40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> ChildServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def summarize(seconds: list[float]) -> dict:
    """Median and p90 in microseconds."""
    arr = np.array(seconds) * 1e6
    return {
        "median_us": float(np.median(arr)),
        "p90_us": float(np.percentile(arr, 90)),
        "n": len(arr),
    }


def timed(fn, repeats: int, warmup: int = 2) -> list[float]:
    """Wall times of `fn()` after warm-up calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def interleaved(first, second, repeats: int, warmup: int = 2) -> tuple[list[float], list[float]]:
    """Wall times of two functions called alternately, so slow drifts hit both alike."""
    for _ in range(warmup):
        first()
        second()
    a, b = [], []
    for _ in range(repeats):
        for fn, out in ((first, a), (second, b)):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return a, b


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (a shared machine makes round trips slower)."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else []


def blas_threads() -> str:
    """The OPENBLAS_NUM_THREADS these numbers were measured with."""
    return os.environ.get("OPENBLAS_NUM_THREADS", "")


def write_result(name: str, payload: dict, folder: Path | None = None) -> Path:
    """Write <folder>/<name>.json (default benchmarks/results/) with the machine facts, BLAS
    threads and load."""
    folder = RESULTS if folder is None else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    payload = {
        "benchmark": name,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine(),
        "openblas_num_threads": blas_threads(),
        "load_average_at_end": load_average(),
        **payload,
    }
    path.write_text(json.dumps(payload, indent=2))
    return path
