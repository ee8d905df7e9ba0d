"""Dataset names, their tenant and who may use them; where a dataset lives.

A job names a dataset as ``name`` (its own tenant's) or ``owner:name`` (another tenant's).
``name`` is a short slug, ``^[a-z0-9][a-z0-9_.-]{0,63}$`` without ``..``: never a path, a
URL or a file name. A tenant reads and labels into its own datasets and those an admin
shared with it; an admin key may use any tenant's. Datasets live at
``DATA_DIR/datasets/<tenant>/<name>.db`` (the path is resolved and checked to be inside
``DATA_DIR/datasets``), or in the PostgreSQL database the operator's ``dataset_db``
template names (``postgresql://host/ds_{tenant}_{name}``). Shares are kept by the model
store that servers and workers share, in ``STORE/_dataset_shares.json``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
TENANT_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
SHARES_FILE = "_dataset_shares.json"
MAX_SHARES = 100


class DatasetError(ValueError):
    """A dataset reference that is malformed (`status` 422) or not the caller's (403)."""

    status = 422


class DatasetForbidden(DatasetError):
    """A dataset of another tenant that was not shared with the caller."""

    status = 403


@dataclass(frozen=True)
class DatasetRef:
    """A dataset: the tenant that owns it and its name."""

    owner: str
    name: str

    def __str__(self) -> str:
        return f"{self.owner}:{self.name}"


def check_name(name: object, param: str = "params.dataset") -> str:
    """`name` when it is a dataset slug, else DatasetError naming `param`."""
    if not isinstance(name, str) or not NAME.match(name) or ".." in name:
        raise DatasetError(
            f"{param} {name!r} is not a dataset name: use 1-64 characters "
            f"a-z 0-9 _ . - starting with a letter or digit, no '..' (a name, "
            f"never a path or URL; another tenant's shared dataset is "
            f"'tenant:name')"
        )
    return name


def check_tenant(tenant: object, param: str = "tenant") -> str:
    """`tenant` when it is 1-64 printable characters (what `keys create` accepts)."""
    if not isinstance(tenant, str) or not 1 <= len(tenant) <= 64 or not tenant.isprintable():
        raise DatasetError(f"{param} {tenant!r} is not a tenant name (1-64 printable characters)")
    return tenant


def tenant_dir(tenant: str) -> str:
    """A file-system-safe folder name for `tenant`: itself when it is a slug, else a hash
    (``_`` + 16 hex digits; no slug starts with ``_``, so the two never collide)."""
    if TENANT_SLUG.match(tenant):
        return tenant
    return "_" + hashlib.sha256(tenant.encode()).hexdigest()[:16]


def parse_ref(ref: object, tenant: str, param: str = "params.dataset") -> DatasetRef:
    """``name`` (the caller's tenant's) or ``owner:name`` → DatasetRef, checked."""
    if not isinstance(ref, str) or not ref:
        raise DatasetError(f"{param} (a dataset name) is required")
    owner, sep, name = ref.rpartition(":")
    if not sep:
        return DatasetRef(tenant, check_name(name, param))
    return DatasetRef(check_tenant(owner, f"{param} owner"), check_name(name, param))


class ShareBook:
    """Which tenants each dataset is shared with (a JSON file in the model store)."""

    def __init__(self, store_dir: str | Path | None) -> None:
        self.path = Path(store_dir) / SHARES_FILE if store_dir is not None else None

    def _read(self) -> dict[str, dict[str, list[str]]]:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            raise DatasetError(f"cannot read the dataset shares {self.path}: {err}") from err
        return data if isinstance(data, dict) else {}

    @contextmanager
    def _locked(self) -> Iterator[None]:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def tenants(self, ref: DatasetRef) -> list[str]:
        """The tenants `ref` is shared with."""
        return list(self._read().get(ref.owner, {}).get(ref.name, []))

    def set(self, ref: DatasetRef, tenants: list[str]) -> list[str]:
        """Share `ref` with exactly `tenants` (an empty list unshares); returns them sorted."""
        if self.path is None:
            raise DatasetError("this server has no model store, where dataset shares are kept")
        if len(tenants) > MAX_SHARES:
            raise DatasetError(f"tenants: at most {MAX_SHARES} per dataset")
        chosen = sorted({check_tenant(t, "tenants[]") for t in tenants} - {ref.owner})
        with self._locked():
            data = self._read()
            owned = data.setdefault(ref.owner, {})
            if chosen:
                owned[ref.name] = chosen
            else:
                owned.pop(ref.name, None)
                if not owned:
                    data.pop(ref.owner)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
            os.replace(tmp, self.path)
        return chosen

    def visible(self, tenant: str | None) -> list[dict]:
        """Shares the tenant owns or receives (every share when `tenant` is None)."""
        out = []
        for owner, names in sorted(self._read().items()):
            for name, tenants in sorted(names.items()):
                if tenant is None or tenant == owner or tenant in tenants:
                    out.append(
                        {
                            "dataset": f"{owner}:{name}",
                            "owner": owner,
                            "name": name,
                            "shared_with": tenants,
                        }
                    )
        return out


def authorize(
    ref: object, tenant: str, role: str, shares: ShareBook, param: str = "params.dataset"
) -> DatasetRef:
    """The dataset `ref` names, if the caller (`tenant`, `role`) may read and label into it."""
    target = parse_ref(ref, tenant, param)
    if target.owner == tenant or role == "admin" or tenant in shares.tenants(target):
        return target
    raise DatasetForbidden(
        f"{param}: dataset {target.name!r} of tenant {target.owner!r} is "
        f"not shared with tenant {tenant!r} (an admin shares datasets)"
    )


def dataset_location(data_dir: str | Path, ref: DatasetRef, db_template: str = "") -> str:
    """Where `ref` is stored: a PostgreSQL URL from the operator's template, else a SQLite
    file inside DATA_DIR/datasets/<tenant>/ (verified after resolving links and dots)."""
    check_name(ref.name)
    folder_name = tenant_dir(check_tenant(ref.owner))
    if db_template:
        return db_template.format(tenant=folder_name, name=ref.name)
    root = (Path(data_dir) / "datasets").resolve()
    folder = root / folder_name
    folder.mkdir(parents=True, exist_ok=True)
    path = (folder / f"{ref.name}.db").resolve()
    if path.parent != folder.resolve() or not path.is_relative_to(root):
        raise DatasetError(f"dataset {ref} resolves outside {root}")
    return str(path)
