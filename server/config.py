"""Server settings: defaults, overridden by MLIPSERVE_* environment variables and CLI flags."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlipserve.server.batch import Limits
from mlipserve.server.models.builtin import DEFAULT_MODELS


class Settings(BaseSettings):
    """Everything `mlipserve serve` can be told (each field is also MLIPSERVE_<NAME>)."""

    model_config = SettingsConfigDict(env_prefix="MLIPSERVE_", extra="ignore")

    host: str = "127.0.0.1"
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
    max_message_mb: int = Field(256, ge=1)
    drain_s: float = Field(30.0, ge=0, description="on SIGTERM, time given to calls in flight")
    device: str = Field("auto", description="'auto' (CUDA when present), 'cpu' or 'cuda:N'")

    @property
    def limits(self) -> Limits:
        """The per-request size limits."""
        return Limits(
            max_atoms_per_system=self.max_atoms_per_system,
            max_atoms_per_request=self.max_atoms_per_request,
            max_systems_per_request=self.max_systems_per_request,
        )
