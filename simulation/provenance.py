"""Where a result came from: the model (name, version, content hash), the server, mlipserve.

Every file a workflow writes carries this record: JSON outputs under "provenance", trajectory
frames in `atoms.info` (keys prefixed `provenance_`), PNGs in their text metadata and a footer.

```python
prov = provenance(provider)        # {"model": "default", "model_version": "v2", ...}
title = system_title(atoms, prov)  # "Cu32 on default@v2"
```
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any

from mlipserve import __version__

KEYS = ("model", "model_version", "model_sha256", "server", "mlipserve_version")
INFO_PREFIX = "provenance_"


def provenance(provider: Any) -> dict[str, Any]:
    """The provenance record of `provider` (any ForceProvider; `provenance()` if it has one)."""
    own = getattr(provider, "provenance", None)
    record: dict[str, Any] = dict(own()) if callable(own) else {}
    record.setdefault("model", "")
    record.setdefault("model_version", "")
    record.setdefault("model_sha256", "")
    record.setdefault("server", f"in-process {type(provider).__name__}")
    record["mlipserve_version"] = __version__
    record["created"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return record


def from_model_info(entry: Mapping[str, Any], server: str) -> dict[str, Any]:
    """A provenance record from a ModelInfo dict (ListModels / `describe`) and the server."""
    return {
        "model": entry.get("name", ""),
        "model_version": entry.get("version", ""),
        "model_sha256": entry.get("sha256", ""),
        "server": server,
    }


def label(record: Mapping[str, Any] | None) -> str:
    """`model@version`, or "" without a record."""
    if not record or not record.get("model"):
        return ""
    return f"{record['model']}@{record['model_version']}"


def system_title(system: Any, record: Mapping[str, Any] | None, what: str = "") -> str:
    """A plot title naming the system (formula or a name) and the model: "Cu32 on default@v2"."""
    name = system if isinstance(system, str) else system.get_chemical_formula()
    head = f"{what}: {name}" if what else name
    model = label(record)
    return f"{head} on {model}" if model else head


def footer(record: Mapping[str, Any]) -> str:
    """One line for the bottom of a figure: model, hash, server, mlipserve version."""
    sha = str(record.get("model_sha256", ""))[:12]
    parts = [label(record) or "model unknown"]
    if sha:
        parts.append(f"sha256 {sha}")
    parts.append(str(record.get("server", "")))
    parts.append(f"mlipserve {record.get('mlipserve_version', __version__)}")
    return " · ".join(p for p in parts if p)


def png_metadata(record: Mapping[str, Any]) -> dict[str, str]:
    """PNG text chunks holding the record (readable with PIL's `Image.open(path).text`)."""
    return {"Software": f"mlipserve {__version__}", "Description": json.dumps(dict(record))}


def info_keys(record: Mapping[str, Any]) -> dict[str, str]:
    """The record as `atoms.info` entries (extxyz / traj keep them with each frame)."""
    return {INFO_PREFIX + k: str(record[k]) for k in (*KEYS, "created") if k in record}


def stamp(atoms: Any, record: Mapping[str, Any] | None) -> Any:
    """`atoms` with the record in its `info` (in place); returned for chaining."""
    if record:
        atoms.info.update(info_keys(record))
    return atoms


def read_info(info: Mapping[str, Any]) -> dict[str, str]:
    """The record stamped into an `atoms.info` (the inverse of `info_keys`)."""
    return {k[len(INFO_PREFIX) :]: str(v) for k, v in info.items() if k.startswith(INFO_PREFIX)}
