"""Random tokens handed to a browser or a mailbox (a session's, a sign-up link's), of which the
database keeps only the SHA-256: a copy of the table opens nothing."""

import hashlib
import secrets


def mint() -> tuple[str, bytes]:
    """A new token, and the digest to store for it."""
    token = secrets.token_urlsafe(32)
    return token, digest(token)


def digest(token: str) -> bytes:
    # surrogatepass: any text a client sends has a digest (one that matches nothing)
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
