"""API keys (argon2 hashes in SQLite or PostgreSQL), roles and tenants.

A key reads `mls_<id>_<secret>`; only the argon2 hash of the whole key is stored. A verified
key is remembered in memory by its SHA-256 for `cache_s` seconds so the per-call cost is
a dictionary lookup, not an argon2 verification (tens of ms by design). The cache is only
trusted while the list of revoked keys is fresh (`revocation_check_s`), so a key revoked by
another process (the CLI) stops working within that time. Failed checks of one key id are
rate-limited (`max_failures` per `failure_window_s`, then 429 without argon2), and at most
`max_parallel_checks` argon2 verifications run at once, so guessing cannot eat the CPU.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError

ROLES = ("user", "admin")
_metadata = sa.MetaData()
KEYS = sa.Table(
    "api_keys",
    _metadata,
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

    def __init__(
        self,
        url: str,
        cache_s: float = 60.0,
        revocation_check_s: float = 0.25,
        max_failures: int = 5,
        failure_window_s: float = 60.0,
        max_parallel_checks: int = 2,
    ) -> None:
        self.engine = sa.create_engine(url)
        _metadata.create_all(self.engine)
        self.hasher = PasswordHasher()
        self.cache_s = cache_s
        self.revocation_check_s = revocation_check_s
        self.max_failures = max_failures
        self.failure_window_s = failure_window_s
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._revoked_checked = -float("inf")
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._checks = threading.BoundedSemaphore(max_parallel_checks)

    def create(self, role: str, tenant: str) -> tuple[str, str]:
        """A new key for `tenant` with `role`; returns (key id, the key shown once)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        if not tenant or len(tenant) > 64:
            raise ValueError("tenant must be 1 to 64 characters")
        if tenant.startswith("_"):  # the service's own tenants (e.g. `_harvest`'s datasets)
            raise ValueError(f"tenant names starting with '_' are reserved, not {tenant!r}")
        key_id = secrets.token_hex(8)
        key = f"mls_{key_id}_{secrets.token_urlsafe(24)}"
        with self.engine.begin() as conn:
            conn.execute(
                KEYS.insert().values(
                    id=key_id,
                    hash=self.hasher.hash(key),
                    role=role,
                    tenant=tenant,
                    created=time.time(),
                    revoked=False,
                )
            )
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
            rows = conn.execute(
                sa.select(KEYS.c.id, KEYS.c.role, KEYS.c.tenant, KEYS.c.created, KEYS.c.revoked)
            ).all()
        return [dict(r._mapping) for r in rows]

    def cached(self, key: str) -> Principal | None:
        """The principal of a recently verified key (no database, no argon2), else None; None
        too when the revocation list is stale (then `verify` refreshes it)."""
        now = time.monotonic()
        if now - self._revoked_checked > self.revocation_check_s:
            return None
        hit = self._cache.get(hashlib.sha256(key.encode()).hexdigest())
        return hit[0] if hit is not None and hit[1] > now else None

    def _refresh_revoked(self) -> None:
        """Drop cached keys revoked since the last look (one query for all of them)."""
        with self.engine.connect() as conn:
            revoked = {r.id for r in conn.execute(sa.select(KEYS.c.id).where(KEYS.c.revoked))}
        with self._lock:
            if revoked:
                self._cache = {k: v for k, v in self._cache.items() if v[0].key_id not in revoked}
            self._revoked_checked = time.monotonic()

    def _throttle(self, key_id: str) -> None:
        """AuthError(429) when `key_id` failed `max_failures` times within the window."""
        now = time.monotonic()
        with self._lock:
            failures = self._failures.get(key_id)
            while failures and failures[0] < now - self.failure_window_s:
                failures.popleft()
            if failures is not None and len(failures) >= self.max_failures:
                wait = failures[0] + self.failure_window_s - now
                raise AuthError(
                    429, f"too many failed checks of key id {key_id[:16]!r}; retry in {wait:.0f} s"
                )

    def _failed(self, key_id: str) -> None:
        with self._lock:
            if len(self._failures) > 10_000:  # bounded: forget the oldest key ids
                for stale in list(self._failures)[:1_000]:
                    del self._failures[stale]
            self._failures.setdefault(key_id, deque()).append(time.monotonic())

    def verify(self, key: str) -> Principal:
        """The principal of a key, or AuthError(401), or AuthError(429) after repeated failures."""
        if time.monotonic() - self._revoked_checked > self.revocation_check_s:
            self._refresh_revoked()
        digest = hashlib.sha256(key.encode()).hexdigest()
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        parts = key.split("_")
        if len(parts) < 3 or parts[0] != "mls" or len(key) > 200:
            raise AuthError(401, "malformed API key")
        key_id = parts[1]
        self._throttle(key_id)
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(KEYS).where(KEYS.c.id == key_id)).first()
        if row is None or row.revoked:
            raise AuthError(401, "unknown or revoked API key")
        with self._checks:
            try:
                self.hasher.verify(row.hash, key)
            except VerificationError:
                self._failed(key_id)
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
