"""Signed-out console sessions, shared by every instance and worker and kept across restarts.

Console session cookies are stateless (signed, see ``admin.session``): a logout is only
remembered here, as the SHA-256 of the session's nonce, until the session would have expired.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from dispatcher.db import load_queries
from dispatcher.store import Executor

Q = load_queries(Path(__file__).with_suffix(".sql"))


def _hash(nonce: str) -> bytes:
    # Only a hash is stored: the table never holds part of a usable cookie.
    return hashlib.sha256(nonce.encode()).digest()


async def revoke(conn: Executor, nonce: str, expires: int) -> None:
    """Refuse the session ``nonce`` (valid until the Unix time ``expires``) from now on."""
    await conn.execute(Q["revoke_session"], _hash(nonce), datetime.fromtimestamp(expires, UTC))


async def is_revoked(conn: Executor, nonce: str) -> bool:
    """Whether the session ``nonce`` was signed out."""
    return bool(await conn.fetchval(Q["session_revoked"], _hash(nonce)))
