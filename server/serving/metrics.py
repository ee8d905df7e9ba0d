"""Prometheus metrics of the server (one set per process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "mlipserve_requests_total",
    "Evaluation requests by model, method and status",
    ["model", "method", "status"],
)
BATCH_REQUESTS = Histogram(
    "mlipserve_batch_requests",
    "Requests per batch",
    ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
BATCH_ATOMS = Histogram(
    "mlipserve_batch_atoms",
    "Atoms per batch",
    ["model"],
    buckets=(10, 100, 1_000, 10_000, 100_000, 1_000_000),
)
QUEUE_WAIT = Histogram(
    "mlipserve_queue_wait_seconds",
    "Time a request waited for its batch",
    ["model"],
    buckets=(1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1, 10),
)
COMPUTE = Histogram(
    "mlipserve_compute_seconds",
    "Forward (and backward) time of a batch",
    ["model"],
    buckets=(1e-4, 1e-3, 1e-2, 0.1, 1, 10, 100),
)
LOADED = Gauge("mlipserve_loaded_models", "Model versions loaded")
OOM_SPLITS = Counter("mlipserve_oom_splits_total", "Batches split after running out of memory")
GPU_MEMORY = Gauge("mlipserve_gpu_memory_bytes", "CUDA memory allocated by torch", ["device"])


def record_request(model: str, method: str, status: str, queue_wait_s: float | None = None) -> None:
    """Count one request (and its wait) once it has finished."""
    REQUESTS.labels(model, method, status).inc()
    if queue_wait_s is not None:
        QUEUE_WAIT.labels(model).observe(queue_wait_s)


def record_batch(model: str, requests: int, atoms: int, compute_s: float) -> None:
    """Observe one batch."""
    BATCH_REQUESTS.labels(model).observe(requests)
    BATCH_ATOMS.labels(model).observe(atoms)
    COMPUTE.labels(model).observe(compute_s)


def refresh_gpu_memory() -> None:
    """Read torch's CUDA allocator (no-op without CUDA)."""
    import torch

    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            GPU_MEMORY.labels(f"cuda:{i}").set(torch.cuda.memory_allocated(i))
