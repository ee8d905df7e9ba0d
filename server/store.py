"""The model store: versions of named models on disk, safetensors + JSON metadata.

Layout: `<root>/<name>/<version>/model.safetensors` and `metadata.json`, and
`<root>/<name>/DEFAULT` naming the default version. Nothing is ever unpickled: native
models are safetensors whose architecture is rebuilt from the metadata's config; the
TorchScript and metatomic families store `model.pt` (a committee: `model-0.pt`, ...),
TorchScript archives loaded by their own loader, which runs no Python unpickler; the
mace family stores mace-torch `.model` pickles. A loader that would need pickle (mace)
or native code (metatomic extensions) refuses a version unless an admin set its
metadata's `trusted` flag (`set_trusted`, `mlipserve models trust`).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from mlipserve.server.models.base import TRUST_KEYS, ModelInfo
from mlipserve.server.models.families import (
    ARCHIVE_FAMILIES,
    NATIVE_FAMILIES,
    SUFFIX,
    FamilyError,
    archive_trust_reason,
    build_module,
    load_archive,
    serving_fields,
)
from mlipserve.server.models.torch_potential import TorchPotential
from mlipserve.server.store_events import announce

ARTIFACT = "model.safetensors"
METADATA = "metadata.json"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class StoreError(ValueError):
    """A store operation that cannot be done; the message says why."""


def sha256(path: Path) -> str:
    """Hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def _family_errors() -> Iterator[None]:
    """A FamilyError of the family table, raised as the store's StoreError."""
    try:
        yield
    except FamilyError as err:
        raise StoreError(str(err)) from None


def check_safetensors(data: bytes) -> None:
    """Refuse anything but a safetensors file (pickles and torch.save zips above all)."""
    if data[:1] == b"\x80" or data[:2] == b"PK":
        raise StoreError(
            "pickle / torch.save files are refused: upload safetensors "
            "(safetensors.torch.save_file)"
        )
    if len(data) < 10:
        raise StoreError("not a safetensors file (too short)")
    header = int.from_bytes(data[:8], "little")
    if header > len(data) - 8 or data[8:9] != b"{":
        raise StoreError("not a safetensors file (bad header)")


def require_trusted(meta: dict, reason: str) -> None:
    """Refuse to load a version that needs pickle or native code unless it is trusted."""
    if meta.get("trusted") is not True:
        raise StoreError(
            f"{meta.get('name')}@{meta.get('version')} is not trusted and {reason}: "
            "an admin must set its 'trusted' flag (mlipserve models trust "
            f"{meta.get('name')} {meta.get('version')} --store DIR)"
        )


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
        return [
            p.name
            for p in sorted(
                found, key=lambda p: json.loads((p / METADATA).read_text()).get("created", 0)
            )
        ]

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
        announce(self.root, name, version)

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

    def save(
        self,
        name: str,
        module: torch.nn.Module,
        metadata: dict,
        version: str | None = None,
        make_default: bool = True,
    ) -> str:
        """Store a native module's weights and metadata as a new version; return it."""
        if metadata.get("family") not in NATIVE_FAMILIES:
            raise StoreError(f"unknown model family {metadata.get('family')!r}")
        existing = self.versions(name) if self._dir(name).exists() else []
        version = version or f"v{len(existing) + 1}"
        while version in existing:
            version = (
                f"v{int(version.lstrip('v') or 0) + 1}"
                if version.startswith("v")
                else version + "-1"
            )
        folder = self._dir(name, version)
        folder.mkdir(parents=True, exist_ok=False)
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
        save_file(tensors, folder / ARTIFACT)
        meta = {
            **metadata,
            "name": name,
            "version": version,
            "created": metadata.get("created", time.time()),
            "sha256": sha256(folder / ARTIFACT),
            "size_bytes": (folder / ARTIFACT).stat().st_size,
        }
        (folder / METADATA).write_text(json.dumps(meta, indent=2))
        if make_default or not (self._dir(name) / "DEFAULT").exists():
            self.set_default(name, version)
        return version

    def add_artifact(
        self,
        name: str,
        data: bytes | list[bytes],
        metadata: dict,
        max_bytes: int,
        make_default: bool = False,
    ) -> str:
        """Store an uploaded artifact (safetensors, or TorchScript files for the archive
        families; several files: a committee) as a new version after checking it loads."""
        if "trusted" in metadata:
            raise StoreError(
                "'trusted' cannot be uploaded: an admin sets it on a stored version "
                "(mlipserve models trust NAME VERSION --store DIR)"
            )
        if metadata.get("family") in ARCHIVE_FAMILIES:
            return self._add_archives(
                name, data if isinstance(data, list) else [data], metadata, max_bytes, make_default
            )
        if isinstance(data, list):
            if len(data) != 1:
                raise StoreError(f"family {metadata.get('family')!r} takes one artifact")
            data = data[0]
        if len(data) > max_bytes:
            raise StoreError(f"artifact of {len(data)} bytes exceeds the limit of {max_bytes}")
        check_safetensors(data)
        with _family_errors():
            module = build_module(metadata)
        folder = self.root / ".upload"
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{name}-{time.time_ns()}.safetensors"
        tmp.write_bytes(data)
        try:
            module.load_state_dict(load_file(tmp))
        except Exception as err:
            raise StoreError(
                f"artifact does not fit family {metadata['family']!r}: {err}"
            ) from None
        finally:
            tmp.unlink(missing_ok=True)
        return self.save(name, module, metadata, make_default=make_default)

    def _add_archives(
        self, name: str, files: list[bytes], metadata: dict, max_bytes: int, make_default: bool
    ) -> str:
        """A TorchScript / metatomic / MACE version: check the files, load them once (unless
        they need the trusted flag: then they are stored but not loaded), then store."""
        from mlipserve.server.models.torchscript import check_torchscript_archive

        family = metadata["family"]
        if not files:
            raise StoreError("no artifact file was given")
        if sum(len(f) for f in files) > max_bytes:
            raise StoreError(
                f"artifacts of {sum(len(f) for f in files)} bytes exceed the limit of {max_bytes}"
            )
        if family == "torchscript" and len(files) != 1:
            raise StoreError(
                "a TorchScript model is one file (its committee axis is in its output)"
            )
        try:
            for data in files if family != "mace" else ():
                check_torchscript_archive(data)
            reasons = [r for r in map(archive_trust_reason(family), files) if r]
        except ValueError as err:
            raise StoreError(str(err)) from None
        existing = self.versions(name) if self._dir(name).exists() else []
        version = f"v{len(existing) + 1}"
        while version in existing:
            version = f"v{int(version.lstrip('v')) + 1}"
        folder = self._dir(name, version)
        folder.mkdir(parents=True, exist_ok=False)
        suffix = SUFFIX[family]
        names = (
            [f"model{suffix}"]
            if len(files) == 1
            else [f"model-{k}{suffix}" for k in range(len(files))]
        )
        for file, data in zip(names, files):
            (folder / file).write_bytes(data)
        digests = [sha256(folder / f) for f in names]
        meta = {
            **metadata,
            "name": name,
            "version": version,
            "created": metadata.get("created", time.time()),
            "artifacts": names,
            "sha256": digests[0]
            if len(digests) == 1
            else hashlib.sha256("".join(digests).encode()).hexdigest(),
            "artifact_sha256": digests,
            "size_bytes": sum(len(f) for f in files),
        }
        if reasons:
            meta["needs_trust"] = "; ".join(reasons)
        else:
            try:
                info = self._load_archive(meta, folder, None, "cpu").info
            except (RuntimeError, ValueError, TypeError, KeyError, IndexError) as err:
                shutil.rmtree(folder)
                raise StoreError(f"artifact does not load as family {family!r}: {err}") from None
            meta = {
                "cutoff": info.cutoff,
                "elements": sorted(info.elements),
                "ensemble_size": info.ensemble_size,
                "dtype": info.dtype,
                **meta,
            }
        meta.setdefault("cutoff", None)
        (folder / METADATA).write_text(json.dumps(meta, indent=2))
        if make_default or not (self._dir(name) / "DEFAULT").exists():
            self.set_default(name, version)
        return version

    def _load_archive(self, meta: dict, folder: Path, dtype: str | None, device: str):
        """Load a TorchScript / metatomic version after checking checksums and trust."""
        for file, digest in zip(meta["artifacts"], meta["artifact_sha256"]):
            if sha256(folder / file) != digest:
                raise StoreError(
                    f"{meta['name']}@{meta['version']}: {file} does not match its checksum"
                )
        if meta.get("needs_trust"):
            require_trusted(meta, meta["needs_trust"])
        paths = [folder / f for f in meta["artifacts"]]
        with _family_errors():
            evaluator = load_archive(paths, meta, dtype, device)
        evaluator.info = ModelInfo(**{**evaluator.info.__dict__, "sha256": meta.get("sha256", "")})
        return evaluator

    def set_trusted(self, name: str, version: str, trusted: bool = True) -> None:
        """Admin action: flag a version as trusted (may use pickle / native code) or not."""
        self.update_metadata(name, version, trusted=bool(trusted))

    def update_metadata(self, name: str, version: str, **changes: object) -> dict:
        """Admin action: set keys of a stored version's metadata (trust, `harvest`)."""
        meta = {**self.metadata(name, version), **changes}
        (self._dir(name, version) / METADATA).write_text(json.dumps(meta, indent=2))
        return meta

    def artifact_path(self, name: str, version: str) -> Path:
        """Where a version's artifact lies (for downloads; a committee's first file)."""
        meta = self.metadata(name, version)
        path = self._dir(name, version) / meta.get("artifacts", [ARTIFACT])[0]
        if not path.exists():
            raise StoreError(f"model {name!r} has no version {version!r}")
        return path

    def load_module(self, name: str, version: str | None = None) -> tuple[torch.nn.Module, dict]:
        """Rebuild a native module from its metadata and load its checked weights."""
        meta = self.metadata(name, version)
        folder = self._dir(name, meta["version"])
        if sha256(folder / ARTIFACT) != meta["sha256"]:
            raise StoreError(f"{name}@{meta['version']}: artifact does not match its checksum")
        with _family_errors():
            module = build_module(meta)
        module.load_state_dict(load_file(folder / ARTIFACT))
        return module, meta

    def load(
        self,
        name: str,
        version: str | None = None,
        *,
        dtype: str | None = None,
        device: str = "auto",
    ) -> TorchPotential:
        """A servable evaluator of a stored version."""
        meta = self.metadata(name, version)
        if meta.get("family") in ARCHIVE_FAMILIES:
            try:
                return self._load_archive(meta, self._dir(name, meta["version"]), dtype, device)
            except ValueError as err:
                if isinstance(err, StoreError):
                    raise
                raise StoreError(f"{name}@{meta['version']}: {err}") from None
        module, meta = self.load_module(name, version)
        fields = serving_fields(module)
        info = ModelInfo(
            name=name,
            version=meta["version"],
            kind=meta["family"],
            cutoff=meta["cutoff"],
            elements=frozenset(meta.get("elements", ())),
            ensemble_size=meta.get("ensemble_size", 0),
            dtype=dtype or meta.get("dtype", "float32"),
            device=device,
            min_distance=float(meta.get("min_distance", 0.0)),
            sha256=meta.get("sha256", ""),
            condition_shapes=fields.get("condition_shapes", {}),
            extra={
                "metrics": meta.get("metrics", {}),
                **{k: meta[k] for k in TRUST_KEYS if k in meta},
                **fields.get("extra", {}),
            },
        )
        return TorchPotential(module, info)

    def delete(self, name: str, version: str) -> None:
        """Remove a version that is not the default."""
        if self.default_version(name) == version:
            raise StoreError(f"{name}@{version} is the default version; set another default first")
        shutil.rmtree(self._dir(name, version))
