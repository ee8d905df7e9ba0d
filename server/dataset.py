"""A versioned, de-duplicated dataset of labelled structures on top of ase.db.

One database per project / model lineage: a SQLite file (default) or a PostgreSQL URL
(``postgresql://user@host:5432/dbname``, needs the ``ase-db-backends`` package). Structures
live in ase.db's own tables (energy, forces, stress in the row; provenance in key-value pairs
and ``data``); which rows each version holds lives in one extra table, ``mlipserve_versions``,
so that a training run can record exactly the rows it used. Rows are never changed or deleted
by this class, so a version's content is fixed once taken.

Writers in several processes are serialised with an OS file lock (SQLite) or a PostgreSQL
advisory lock, so de-duplication and version numbering hold across label workers.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
from ase import Atoms

from mlipserve.server.labellers.base import Label, json_safe

HASH_DECIMALS = 6  # positions and cell are rounded to 1e-6 Å before hashing
_ADVISORY_KEY = 0x6D6C6970  # "mlip": PostgreSQL advisory locks are scoped to one database
_VERSIONS_SQL = (
    "CREATE TABLE IF NOT EXISTS mlipserve_versions ("
    "version INTEGER PRIMARY KEY, tag TEXT UNIQUE NOT NULL, created DOUBLE PRECISION NOT NULL, "
    "n_rows INTEGER NOT NULL, row_ids TEXT NOT NULL)"
)


def structure_hash(atoms: Atoms, decimals: int = HASH_DECIMALS) -> str:
    """sha256 of atomic numbers, positions and cell rounded to `decimals` Å, and pbc.

    Two structures with the same hash are the same data point; the labeller and its settings
    are not part of the hash (one dataset holds one lineage's reference method).
    """
    positions = np.round(np.asarray(atoms.positions, dtype=np.float64), decimals) + 0.0
    cell = np.round(np.asarray(atoms.cell.array, dtype=np.float64), decimals) + 0.0
    digest = hashlib.sha256(b"mlipserve-structure-v1")
    for array in (
        np.asarray(atoms.numbers, dtype=np.int64),
        positions,
        cell,
        np.asarray(atoms.pbc, dtype=np.uint8),
    ):
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class DatasetVersion:
    """One immutable snapshot: its number, tag, creation time (Unix s) and row count."""

    version: int
    tag: str
    created: float
    n_rows: int


def _is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def _create_sqlite(path: Path) -> None:
    """Make a new SQLite dataset aside and move it in place in one step: a process killed
    while ase.db builds its tables must not leave a half-made file that no one can open."""
    import os

    import ase.db

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    db = ase.db.connect(str(tmp), type="db", append=True)
    db.count()
    with sqlite3.connect(str(tmp)) as con:
        con.execute(_VERSIONS_SQL)
    con.close()
    try:
        os.link(tmp, path)  # fails when another process created it first: keep theirs
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


class Dataset:
    """Labelled structures in an ase.db (SQLite file or PostgreSQL URL), with versions.

    Args:
        url: a SQLite file path (created if missing; ``sqlite:///`` prefix allowed) or a
            ``postgresql://`` URL of an existing database.
    """

    def __init__(self, url: str | Path) -> None:
        import ase.db

        url = str(url)
        if not url:
            raise ValueError("dataset url is empty: give a SQLite file path or postgresql:// URL")
        self.postgres = _is_postgres(url)
        if self.postgres:
            try:
                import ase_db_backends.postgresql  # noqa: F401 - ase.db's backend for postgresql://
                import psycopg2
            except ImportError as exc:
                raise ValueError(
                    "a PostgreSQL dataset needs ase-db-backends and psycopg2 "
                    "(pip install 'mlipserve[server]')"
                ) from exc
            self.url = url
            self._con = psycopg2.connect(url)
            self._con.autocommit = True
            self.db = ase.db.connect(url, type="postgresql")
        else:
            path = Path(url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url)
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                _create_sqlite(path)
            self.url = str(path)
            self.db = ase.db.connect(str(path), type="db", append=True)
            self._con = sqlite3.connect(
                str(path), timeout=60, isolation_level=None, check_same_thread=False
            )
        self._local = threading.Lock()  # writers in this process
        self._con_lock = threading.Lock()  # one statement at a time on self._con
        with self._write_lock():  # two workers opening a new database must not race on DDL
            self.db.count()  # makes ase.db create its tables now
            self._sql(_VERSIONS_SQL)

    # -- plumbing ---------------------------------------------------------------------------
    def _sql(self, query: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run one statement on the version-table connection and return its rows (if any)."""
        with self._con_lock:
            if self.postgres:
                with self._con.cursor() as cur:
                    cur.execute(query.replace("?", "%s"), tuple(params))
                    return cur.fetchall() if cur.description is not None else []
            return self._con.execute(query, tuple(params)).fetchall()

    @contextmanager
    def _write_lock(self) -> Iterator[None]:
        """Hold the dataset's writer lock: threads here, processes through the OS or PostgreSQL."""
        with self._local:
            if self.postgres:
                self._sql("SELECT pg_advisory_lock(?)", (_ADVISORY_KEY,))
                try:
                    yield
                finally:
                    self._sql("SELECT pg_advisory_unlock(?)", (_ADVISORY_KEY,))
            else:
                with open(self.url + ".writer-lock", "a") as handle:
                    fcntl.flock(handle, fcntl.LOCK_EX)
                    try:
                        yield
                    finally:
                        fcntl.flock(handle, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the database connections."""
        self._con.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- structures -------------------------------------------------------------------------
    structure_hash = staticmethod(structure_hash)

    def _find(self, digest: str) -> int | None:
        for row in self.db.select(structure_hash=digest, limit=1, columns=["id"]):
            return int(row.id)
        return None

    def has(self, digest: str) -> bool:
        """Whether a structure with this `structure_hash` is stored."""
        return self._find(digest) is not None

    def count(self) -> int:
        """Number of stored structures."""
        return int(self.db.count())

    def add(self, labels: Sequence[Label]) -> list[int | None]:
        """Store the ok labels; return row ids (the existing id for a duplicate, None if failed).

        Failed labels (``ok=False``) and labels without energy and forces are never stored.
        A structure already present (same `structure_hash`) is not stored again.
        """
        if isinstance(labels, Label):
            raise ValueError("add() takes a sequence of Labels, not one Label")  # noqa: TRY004
        for i, label in enumerate(labels):
            if not isinstance(label, Label):
                raise ValueError(f"item {i} is {type(label).__name__}, not a Label")  # noqa: TRY004
        ids: list[int | None] = []
        with self._write_lock():
            for label in labels:
                results = label.results
                if not label.ok or "energy" not in results or "forces" not in results:
                    ids.append(None)
                    continue
                digest = structure_hash(label.atoms)
                existing = self._find(digest)
                if existing is None:
                    existing = self._write(label, digest)
                ids.append(existing)
        return ids

    def _write(self, label: Label, digest: str) -> int:
        prov = json_safe(label.provenance)
        pairs = {
            "structure_hash": digest,
            "labeller": prov.get("labeller"),
            "labeller_version": prov.get("version"),
            "host": prov.get("host"),
            "wall_time_s": prov.get("wall_time_s"),
        }
        pairs = {k: v for k, v in pairs.items() if isinstance(v, (str, int, float))}
        return int(self.db.write(label.atoms, key_value_pairs=pairs, data={"provenance": prov}))

    def provenance(self, row_id: int) -> dict:
        """The full provenance recorded with row `row_id`."""
        return dict(self.db.get(id=row_id).data.get("provenance", {}))

    # -- versions ---------------------------------------------------------------------------
    def snapshot(self, tag: str | None = None) -> int:
        """Record every row stored now as a new immutable version and return its number.

        Args:
            tag: a unique name for the version (default ``v<number>``).
        """
        if tag is not None and (not isinstance(tag, str) or not tag.strip()):
            raise ValueError(f"version tag must be a non-empty string, got {tag!r}")
        with self._write_lock():
            row_ids = [int(row.id) for row in self.db.select(columns=["id"])]
            row_ids.sort()
            latest = self._sql("SELECT MAX(version) FROM mlipserve_versions")[0][0]
            version = int(latest or 0) + 1
            tag = tag or f"v{version}"
            if self._sql("SELECT version FROM mlipserve_versions WHERE tag = ?", (tag,)):
                raise ValueError(f"dataset version tag {tag!r} already exists")
            self._sql(
                "INSERT INTO mlipserve_versions VALUES (?, ?, ?, ?, ?)",
                (version, tag, time.time(), len(row_ids), json.dumps(row_ids)),
            )
        return version

    def versions(self) -> list[DatasetVersion]:
        """All versions, oldest first."""
        rows = self._sql(
            "SELECT version, tag, created, n_rows FROM mlipserve_versions ORDER BY version"
        )
        return [DatasetVersion(int(v), str(t), float(c), int(n)) for v, t, c, n in rows]

    def row_ids(self, version: int | str | None = None) -> list[int]:
        """Row ids of a version (by number or tag), or of every stored row when None."""
        if version is None:
            return sorted(int(row.id) for row in self.db.select(columns=["id"]))
        column = "tag" if isinstance(version, str) else "version"
        if not isinstance(version, (str, int)) or isinstance(version, bool):
            message = f"version must be a number, a tag or None, got {version!r}"
            raise ValueError(message)  # noqa: TRY004
        found = self._sql(f"SELECT row_ids FROM mlipserve_versions WHERE {column} = ?", (version,))
        if not found:
            known = [v.tag for v in self.versions()]
            raise ValueError(f"dataset has no version {version!r}; versions: {known}")
        return [int(i) for i in json.loads(found[0][0])]

    def rows(self, version: int | str | None = None) -> list[Atoms]:
        """Structures of a version (or all) with energy/forces/stress attached, by row id.

        Each ``atoms.info`` holds ``row_id``, ``structure_hash`` and ``labeller``.
        """
        wanted = set(self.row_ids(version))
        out = []
        for row in self.db.select(sort="id"):
            if row.id not in wanted:
                continue
            atoms = row.toatoms()
            atoms.info["row_id"] = int(row.id)
            for key in ("structure_hash", "labeller"):
                if key in row.key_value_pairs:
                    atoms.info[key] = row.key_value_pairs[key]
            out.append(atoms)
        return out

    def export_extxyz(self, path: str | Path, version: int | str | None = None) -> Path:
        """Write a version (or all rows) as extended XYZ for `mlipserve.server.training.data`."""
        import ase.io

        path = Path(path)
        frames = self.rows(version)
        if not frames:
            raise ValueError(f"dataset version {version!r} has no rows to export")
        path.parent.mkdir(parents=True, exist_ok=True)
        ase.io.write(path, frames, format="extxyz")
        return path
