"""Server settings: defaults, overridden by MLIPSERVE_* environment variables and CLI flags."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlipserve.server.models.builtin import DEFAULT_MODELS
from mlipserve.server.serving.checks import Limits
from mlipserve.server.serving.tenancy import TenantLimits


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback IP literals only (`127.evil.example` is a name that
    DNS may point anywhere, so it is not loopback)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """Everything `mlipserve serve` can be told (each field is also MLIPSERVE_<NAME>)."""

    model_config = SettingsConfigDict(env_prefix="MLIPSERVE_", extra="ignore")

    host: str = "127.0.0.1"
    replica_name: str = Field(
        "", description="name of this server in every response (default: host:port)"
    )
    port: int = Field(50051, ge=0, le=65535, description="gRPC port (0: any free port)")
    rest: bool = Field(True, description="serve the REST API beside gRPC")
    rest_port: int = Field(8080, ge=0, le=65535, description="REST port (0: any free port)")
    models: list[str] = Field(
        default_factory=lambda: list(DEFAULT_MODELS),
        description="models to load, built-in names like 'lj' or 'lj:float32'",
    )
    default_model: str = Field("", description="model used when a request names none")
    batching: bool = Field(True, description="off: one request per forward pass")
    max_batch_atoms: int = Field(100_000, ge=1)
    max_wait_us: int = Field(0, ge=0, description="extra wait for fuller batches")
    max_atoms_per_system: int = Field(100_000, ge=1)
    max_atoms_per_request: int = Field(1_000_000, ge=1)
    max_systems_per_request: int = Field(10_000, ge=1)
    max_message_mb: int | None = Field(
        None, ge=1, description="gRPC message cap; default: derived from the atom and system limits"
    )
    close_contact_fraction: float = Field(
        0.8,
        ge=0,
        description="warn when atoms are closer than this × the model's shortest "
        "training distance (0: off)",
    )
    tenant_max_queued_atoms: int = Field(0, ge=0, description="per tenant (0: unlimited)")
    tenant_requests_per_s: float = Field(0.0, ge=0, description="per tenant (0: unlimited)")
    tenant_burst: int = Field(50, ge=1, description="requests a tenant may send at once")
    tenant_max_streams: int = Field(0, ge=0, description="open streams per tenant (0: unlimited)")
    log_json: bool = Field(False, description="structured JSON log lines")
    log_level: str = Field("INFO", description="DEBUG logs one line per request")
    drain_s: float = Field(30.0, ge=0, description="on SIGTERM, time given to calls in flight")
    data_dir: Path = Field(Path.home() / ".mlipserve", description="keys database, model store")
    store_dir: str = Field("", description="model store directory (default: DATA_DIR/models)")
    auth: bool = Field(False, description="require API keys on gRPC and REST")
    auth_db: str = Field(
        "",
        description="SQLAlchemy URL of the key database "
        "(default: sqlite:///DATA_DIR/mlipserve.db; postgresql+psycopg://... works)",
    )
    insecure_public: bool = Field(False, description="allow a non-loopback bind with auth off")
    tls_cert: str = Field("", description="PEM certificate for gRPC and REST")
    tls_key: str = Field("", description="PEM private key for gRPC and REST")
    max_upload_mb: int = Field(
        512,
        ge=1,
        description="largest model upload over REST, MiB "
        "(a bigger body is refused with 413 before it is read)",
    )
    rest_max_body_bytes: int | None = Field(
        None,
        ge=1024,
        description="REST cap on every other request body (413 above it); "
        "default: derived from the atom and system limits",
    )
    device: str = Field("auto", description="'auto' (CUDA when present), 'cpu' or 'cuda:N'")
    redis_url: str = Field(
        "",
        description="job queue on Redis (redis://host:6379/0); empty: a SQLite file under data_dir",
    )
    queue_url: str = Field(
        "", description="job queue URL (overrides redis_url): sqlite:///PATH or redis://..."
    )
    workers: int = Field(1, ge=0, description="in-process queue workers of `serve` (0: none)")
    dataset_db: str = Field(
        "",
        description="datasets in PostgreSQL: a URL template with "
        "{tenant} and {name}, e.g. postgresql://host/ds_{tenant}_{name} "
        "(empty: SQLite files in DATA_DIR/datasets/<tenant>/)",
    )
    lease_ttl_s: float = Field(
        15.0, gt=0, description="a job whose worker is silent this long is re-enqueued"
    )
    heartbeat_s: float = Field(3.0, gt=0, description="how often a worker renews its lease")
    reap_every_s: float = Field(5.0, gt=0, description="how often workers look for lost jobs")
    watch_store_s: float = Field(
        2.0,
        ge=0,
        description="how often to follow default-version changes in the model store (0: off)",
    )

    @property
    def key_db_url(self) -> str:
        """The key database URL (SQLite file under data_dir unless auth_db is set)."""
        return self.auth_db or f"sqlite:///{self.data_dir / 'mlipserve.db'}"

    @property
    def job_queue_url(self) -> str:
        """Where jobs are queued: queue_url, else redis_url, else SQLite under data_dir."""
        return self.queue_url or self.redis_url or f"sqlite:///{self.data_dir / 'queue.db'}"

    def worker_config(self):
        """What queue workers need to know (see `mlipserve.server.queue.worker`)."""
        from mlipserve.server.queue.lease import LeasePolicy
        from mlipserve.server.queue.worker import WorkerConfig

        return WorkerConfig(
            queue_url=self.job_queue_url,
            data_dir=str(self.data_dir),
            store_dir=str(self.model_store_dir),
            dataset_db=self.dataset_db,
            policy=LeasePolicy(self.lease_ttl_s, self.heartbeat_s, self.reap_every_s),
        )

    @property
    def announce_url(self) -> str:
        """The Redis that carries promotion announcements: redis_url, or a redis:// queue."""
        if self.redis_url:
            return self.redis_url
        return self.queue_url if self.queue_url.startswith(("redis://", "rediss://")) else ""

    @property
    def model_store_dir(self) -> Path:
        """The model store directory."""
        return Path(self.store_dir) if self.store_dir else self.data_dir / "models"

    def check_exposure(self) -> None:
        """Refuse a non-loopback address with auth off unless told it is on purpose."""
        loopback = is_loopback(self.host)
        if not loopback and not self.auth and not self.insecure_public:
            raise ValueError(
                f"refusing to serve on {self.host} with auth off: anyone who reaches it could use "
                "and change the models. Turn auth on (--auth, then `mlipserve keys create`) or "
                "pass --insecure-public if the network is trusted."
            )
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("TLS needs both --tls-cert and --tls-key")

    @property
    def tenant_limits(self) -> TenantLimits:
        """Per-tenant admission limits."""
        return TenantLimits(
            self.tenant_max_queued_atoms,
            self.tenant_requests_per_s,
            self.tenant_burst,
            self.tenant_max_streams,
        )

    @property
    def rest_body_bytes(self) -> int:
        """The REST body cap of every route but uploads: set, or derived from the limits."""
        return self.rest_max_body_bytes or rest_body_cap(self.limits)

    @property
    def max_message_bytes(self) -> int:
        """The gRPC message size cap: set, or the largest request the limits admit."""
        if self.max_message_mb is not None:
            return self.max_message_mb * 1024 * 1024
        return self.limits.message_bytes()

    @property
    def limits(self) -> Limits:
        """The per-request size limits."""
        return Limits(
            max_atoms_per_system=self.max_atoms_per_system,
            max_atoms_per_request=self.max_atoms_per_request,
            max_systems_per_request=self.max_systems_per_request,
            close_contact_fraction=self.close_contact_fraction,
        )


def rest_body_cap(limits: Limits) -> int:
    """Largest JSON or msgpack REST body the limits can need: 80 B per atom (JSON positions at
    full precision take ~65), 2 KiB per system (cell, pbc, keys) and 1 MiB for the rest."""
    return 80 * limits.max_atoms_per_request + 2_048 * limits.max_systems_per_request + (1 << 20)
