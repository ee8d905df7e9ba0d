"""API keys (argon2 hashes in SQLite or PostgreSQL), roles and tenants.

A key reads `mls_<id>_<secret>`; only the argon2 hash of the whole key is stored. A verified
key is remembered in memory by its SHA-256 for `cache_s` seconds so the per-call cost is
a dictionary lookup, not an argon2 verification (tens of ms by design).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError

ROLES = ("user", "admin")
_metadata = sa.MetaData()
KEYS = sa.Table(
    "api_keys", _metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("hash", sa.String(200), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("revoked", sa.Boolean, nullable=False, default=False),
)


@dataclass(frozen=True)
class Principal:
    """Who is calling."""

    key_id: str
    tenant: str
    role: str

    @property
    def is_admin(self) -> bool:
        """Admins also manage models, keys and jobs."""
        return self.role == "admin"


class AuthError(Exception):
    """Missing or wrong credentials (`status` 401) or a role too low (403)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class KeyStore:
    """API keys in a database given by an SQLAlchemy URL (sqlite:///file.db, postgresql+psycopg://)."""

    def __init__(self, url: str, cache_s: float = 60.0) -> None:
        self.engine = sa.create_engine(url)
        _metadata.create_all(self.engine)
        self.hasher = PasswordHasher()
        self.cache_s = cache_s
        self._cache: dict[str, tuple[Principal, float]] = {}

    def create(self, role: str, tenant: str) -> tuple[str, str]:
        """A new key for `tenant` with `role`; returns (key id, the key shown once)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        if not tenant or len(tenant) > 64:
            raise ValueError("tenant must be 1 to 64 characters")
        key_id = secrets.token_hex(8)
        key = f"mls_{key_id}_{secrets.token_urlsafe(24)}"
        with self.engine.begin() as conn:
            conn.execute(KEYS.insert().values(id=key_id, hash=self.hasher.hash(key), role=role,
                                              tenant=tenant, created=time.time(), revoked=False))
        return key_id, key

    def revoke(self, key_id: str) -> bool:
        """Revoke a key; True when it existed."""
        with self.engine.begin() as conn:
            done = conn.execute(KEYS.update().where(KEYS.c.id == key_id).values(revoked=True))
        self._cache = {k: v for k, v in self._cache.items() if v[0].key_id != key_id}
        return done.rowcount > 0

    def list(self) -> list[dict]:
        """Every key's id, role, tenant, created and revoked flag (never the hash)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(KEYS.c.id, KEYS.c.role, KEYS.c.tenant, KEYS.c.created,
                                          KEYS.c.revoked)).all()
        return [dict(r._mapping) for r in rows]

    def cached(self, key: str) -> Principal | None:
        """The principal of a recently verified key (no database, no argon2), else None."""
        hit = self._cache.get(hashlib.sha256(key.encode()).hexdigest())
        return hit[0] if hit is not None and hit[1] > time.monotonic() else None

    def verify(self, key: str) -> Principal:
        """The principal of a key, or AuthError(401)."""
        digest = hashlib.sha256(key.encode()).hexdigest()
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        parts = key.split("_")
        if len(parts) < 3 or parts[0] != "mls":
            raise AuthError(401, "malformed API key")
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(KEYS).where(KEYS.c.id == parts[1])).first()
        if row is None or row.revoked:
            raise AuthError(401, "unknown or revoked API key")
        try:
            self.hasher.verify(row.hash, key)
        except VerificationError:
            raise AuthError(401, "wrong API key") from None
        principal = Principal(row.id, row.tenant, row.role)
        self._cache[digest] = (principal, time.monotonic() + self.cache_s)
        return principal


def bearer(value: str | None) -> str:
    """The key of an `authorization: Bearer <key>` header, or AuthError(401)."""
    if not value:
        raise AuthError(401, "missing authorization header (Bearer <API key>)")
    scheme, _, key = value.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise AuthError(401, "authorization must be 'Bearer <API key>'")
    return key.strip()


ANONYMOUS = Principal("anonymous", "default", "admin")  # every caller when auth is off
