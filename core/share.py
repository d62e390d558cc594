"""Compact, URL-safe encoding of lab state that is not a widget (a model spec, selected runs,
an expression): versioned, compressed JSON in base64url, with caps so a tampered or hostile
link cannot blow up memory. Decoding never evaluates anything: it is JSON only."""
from __future__ import annotations

import base64
import binascii
import json
import zlib

VERSION = "1"
MAX_ENCODED = 3000  # characters in the URL parameter
MAX_JSON = 64 * 1024  # bytes after decompression (zip-bomb guard)


class ShareError(ValueError):
    """A share parameter that cannot be used; the lab ignores it and says so."""


def encode_state(state: dict) -> str:
    raw = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
    packed = base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")
    token = f"{VERSION}.{packed}"
    if len(token) > MAX_ENCODED:
        raise ShareError(f"the lab state is too large for a link ({len(token):,} characters)")
    return token


def decode_state(token: str) -> dict:
    if not isinstance(token, str) or len(token) > MAX_ENCODED:
        raise ShareError("the shared state is too long")
    version, _, packed = token.partition(".")
    if version != VERSION:
        raise ShareError(f"the link was made by another version of the lab ({version[:8]!r})")
    try:
        compressed = base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4))
        inflater = zlib.decompressobj()
        raw = inflater.decompress(compressed, MAX_JSON)
        if inflater.unconsumed_tail:
            raise ShareError("the shared state is too large")
        data = json.loads(raw)
    except ShareError:
        raise
    except (binascii.Error, zlib.error, ValueError, UnicodeDecodeError):
        raise ShareError("the shared state is damaged") from None
    if not isinstance(data, dict):
        raise ShareError("the shared state is damaged")
    return data
