"""The model store: versions of named models on disk, safetensors + JSON metadata.

Layout: `<root>/<name>/<version>/model.safetensors` and `metadata.json`, and
`<root>/<name>/DEFAULT` naming the default version. Nothing is ever unpickled: native
models are safetensors whose architecture is rebuilt from the metadata's config.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from mlipserve.server.models.autograd import TorchPotential
from mlipserve.server.models.base import ModelInfo
from mlipserve.server.models.painn import PaiNN, PaiNNConfig

ARTIFACT = "model.safetensors"
METADATA = "metadata.json"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
FAMILIES = {"painn": (PaiNN, PaiNNConfig)}


class StoreError(ValueError):
    """A store operation that cannot be done; the message says why."""


def sha256(path: Path) -> str:
    """Hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_safetensors(data: bytes) -> None:
    """Refuse anything but a safetensors file (pickles and torch.save zips above all)."""
    if data[:1] == b"\x80" or data[:2] == b"PK":
        raise StoreError("pickle / torch.save files are refused: upload safetensors "
                         "(safetensors.torch.save_file)")
    if len(data) < 10:
        raise StoreError("not a safetensors file (too short)")
    header = int.from_bytes(data[:8], "little")
    if header > len(data) - 8 or data[8:9] != b"{":
        raise StoreError("not a safetensors file (bad header)")


def build_module(metadata: dict) -> torch.nn.Module:
    """An untrained module of the metadata's family and config."""
    family = metadata.get("family")
    if family not in FAMILIES:
        raise StoreError(f"unknown model family {family!r}; known: {sorted(FAMILIES)}")
    cls, config_cls = FAMILIES[family]
    return cls(config_cls(**metadata["config"]))


class ModelStore:
    """Named, versioned models in a directory (shareable between servers)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _dir(self, name: str, version: str | None = None) -> Path:
        if not NAME.match(name) or (version is not None and not NAME.match(version)):
            raise StoreError(f"invalid model name or version {name!r}/{version!r}")
        return self.root / name if version is None else self.root / name / version

    def names(self) -> list[str]:
        """Model names in the store."""
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "DEFAULT").exists())

    def versions(self, name: str) -> list[str]:
        """Versions of a model, oldest first."""
        folder = self._dir(name)
        if not folder.exists():
            raise StoreError(f"no model {name!r} in the store")
        found = [p for p in folder.iterdir() if (p / METADATA).exists()]
        return [p.name for p in sorted(found, key=lambda p: json.loads(
            (p / METADATA).read_text()).get("created", 0))]

    def default_version(self, name: str) -> str:
        """The version served when none is asked for."""
        path = self._dir(name) / "DEFAULT"
        if not path.exists():
            raise StoreError(f"no model {name!r} in the store")
        return path.read_text().strip()

    def set_default(self, name: str, version: str) -> None:
        """Make `version` the default of `name`."""
        if not (self._dir(name, version) / METADATA).exists():
            raise StoreError(f"model {name!r} has no version {version!r}")
        (self._dir(name) / "DEFAULT").write_text(version)

    def record_promotion(self, name: str, record: dict) -> None:
        """Append a promotion decision (who, when, data version, metrics) to the model's log."""
        with open(self._dir(name) / "promotions.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def promotions(self, name: str) -> list[dict]:
        """Every recorded promotion decision of `name`, oldest first."""
        path = self._dir(name) / "promotions.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def metadata(self, name: str, version: str | None = None) -> dict:
        """The JSON metadata of a version (default version when None)."""
        version = version or self.default_version(name)
        path = self._dir(name, version) / METADATA
        if not path.exists():
            raise StoreError(f"model {name!r} has no version {version!r}")
        return json.loads(path.read_text())

    def save(self, name: str, module: torch.nn.Module, metadata: dict,
             version: str | None = None, make_default: bool = True) -> str:
        """Store a native module's weights and metadata as a new version; return it."""
        if metadata.get("family") not in FAMILIES:
            raise StoreError(f"unknown model family {metadata.get('family')!r}")
        existing = self.versions(name) if self._dir(name).exists() else []
        version = version or f"v{len(existing) + 1}"
        while version in existing:
            version = f"v{int(version.lstrip('v') or 0) + 1}" if version.startswith("v") else version + "-1"
        folder = self._dir(name, version)
        folder.mkdir(parents=True, exist_ok=False)
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
        save_file(tensors, folder / ARTIFACT)
        meta = {**metadata, "name": name, "version": version,
                "created": metadata.get("created", time.time()),
                "sha256": sha256(folder / ARTIFACT),
                "size_bytes": (folder / ARTIFACT).stat().st_size}
        (folder / METADATA).write_text(json.dumps(meta, indent=2))
        if make_default or not (self._dir(name) / "DEFAULT").exists():
            self.set_default(name, version)
        return version

    def add_artifact(self, name: str, data: bytes, metadata: dict, max_bytes: int,
                     make_default: bool = False) -> str:
        """Store an uploaded safetensors artifact as a new version after checking it loads."""
        if len(data) > max_bytes:
            raise StoreError(f"artifact of {len(data)} bytes exceeds the limit of {max_bytes}")
        check_safetensors(data)
        module = build_module(metadata)
        folder = self.root / ".upload"
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{name}-{time.time_ns()}.safetensors"
        tmp.write_bytes(data)
        try:
            module.load_state_dict(load_file(tmp))
        except Exception as err:
            raise StoreError(f"artifact does not fit family {metadata['family']!r}: {err}") from None
        finally:
            tmp.unlink(missing_ok=True)
        return self.save(name, module, metadata, make_default=make_default)

    def artifact_path(self, name: str, version: str) -> Path:
        """Where a version's artifact lies (for downloads)."""
        path = self._dir(name, version) / ARTIFACT
        if not path.exists():
            raise StoreError(f"model {name!r} has no version {version!r}")
        return path

    def load_module(self, name: str, version: str | None = None) -> tuple[torch.nn.Module, dict]:
        """Rebuild a native module from its metadata and load its checked weights."""
        meta = self.metadata(name, version)
        folder = self._dir(name, meta["version"])
        if sha256(folder / ARTIFACT) != meta["sha256"]:
            raise StoreError(f"{name}@{meta['version']}: artifact does not match its checksum")
        module = build_module(meta)
        module.load_state_dict(load_file(folder / ARTIFACT))
        return module, meta

    def load(self, name: str, version: str | None = None, *, dtype: str | None = None,
             device: str = "auto") -> TorchPotential:
        """A servable evaluator of a stored version."""
        module, meta = self.load_module(name, version)
        info = ModelInfo(
            name=name, version=meta["version"], kind=meta["family"], cutoff=meta["cutoff"],
            elements=frozenset(meta.get("elements", ())), ensemble_size=meta.get("ensemble_size", 0),
            dtype=dtype or meta.get("dtype", "float32"), device=device,
            min_distance=float(meta.get("min_distance", 0.0)),
            extra={"metrics": meta.get("metrics", {}),
                   **{k: meta[k] for k in ("trust_lo", "trust_hi") if k in meta}},
        )
        return TorchPotential(module, info)

    def delete(self, name: str, version: str) -> None:
        """Remove a version that is not the default."""
        if self.default_version(name) == version:
            raise StoreError(f"{name}@{version} is the default version; set another default first")
        shutil.rmtree(self._dir(name, version))
