"""Positions as pages see them: sealed, so that no account learns how long the log is.

A position in the event log is global: shown as a number (an SSE message's id, a fragment's
?after=), it would let any account watch every other account's activity grow. A page gets a
token instead: the position encrypted with AES-GCM under a key derived from the app's secret
key, with a random nonce, so two tokens of the same position differ, tokens have no order, and
one that was altered or made up does not open (None, never an error). Only this app reads them.
"""

import base64
import binascii
import os
import re
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from starlette.requests import Request

from crm.settings import Settings
from crm.web.requests import services_of
from crm.web.security import secret_key

_PURPOSE = b"crm position token v1"  # the key's HKDF info and each token's associated data
_NONCE = 12
_POSITION = 8  # bytes: a bigint
# 12 + 8 + 16 (the tag) = 36 bytes: 48 base64url characters, no padding
_TOKEN = re.compile(r"[A-Za-z0-9_-]{48}")


class Tokens:
    def __init__(self, secret: str) -> None:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PURPOSE)
        self._aead = AESGCM(hkdf.derive(secret.encode()))

    def seal(self, position: int) -> str:
        """The token a page is given for `position`."""
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, position.to_bytes(_POSITION, "big"), _PURPOSE)
        return base64.urlsafe_b64encode(nonce + sealed).decode()

    def opened(self, token: str | None) -> int | None:
        """The position a token was sealed from; None when absent, malformed or forged."""
        if token is None or not _TOKEN.fullmatch(token):
            return None
        try:
            raw = base64.urlsafe_b64decode(token)
            plain = self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], _PURPOSE)
        except (InvalidTag, binascii.Error, ValueError):
            return None
        return int.from_bytes(plain, "big")


@lru_cache(maxsize=4)
def tokens_for(settings: Settings) -> Tokens:
    """The tokens of an app run with these settings."""
    return Tokens(secret_key(settings))  # read once, not on every request


def tokens_of(request: Request) -> Tokens:
    """The running app's tokens (keyed by its secret key, as its session cookies are)."""
    return tokens_for(services_of(request).settings)
