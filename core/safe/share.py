"""Compact, URL-safe encoding of lab state that is not a widget (a model spec, selected runs,
an expression): versioned, compressed JSON in base64url, with caps so a tampered or hostile
link cannot blow up memory. Decoding never evaluates anything: it is JSON only."""
from __future__ import annotations

import base64
import binascii
import json
import zlib
from urllib.parse import urlencode

from core.errors import Code, LabError
from core.safe.jsontext import loads_user_json

VERSION = "1"
PARAM = "s"  # the URL parameter that carries the token
MAX_ENCODED = 3000  # characters in the URL parameter
MAX_JSON = 64 * 1024  # bytes after decompression (zip-bomb guard)
MAX_URL = 2000  # a share link's budget: short enough for chat tools, mail clients and old proxies
OPTIONAL = ("tensors",)  # parts left out, in this order, when a link would pass MAX_URL


class ShareError(LabError):
    """A share parameter that cannot be used; the lab ignores it and says so (code ``share.*``)."""


def encode_state(state: dict) -> str:
    raw = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
    packed = base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")
    token = f"{VERSION}.{packed}"
    if len(token) > MAX_ENCODED:
        raise ShareError("share.state_too_large", n=len(token))
    return token


def decode_state(token: str) -> dict:
    if not isinstance(token, str) or len(token) > MAX_ENCODED:
        raise ShareError("share.too_long")
    version, _, packed = token.partition(".")
    if version != VERSION:
        raise ShareError("share.version", version=Code(repr(version[:8])))
    try:
        compressed = base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4))
        inflater = zlib.decompressobj()
        raw = inflater.decompress(compressed, MAX_JSON)
        if inflater.unconsumed_tail:
            raise ShareError("share.too_large")
        data = loads_user_json(raw, MAX_JSON, "json.share")
    except ShareError:
        raise
    except (binascii.Error, zlib.error, ValueError):  # a LabError from the JSON reader is a ValueError too
        raise ShareError("share.damaged") from None
    if not isinstance(data, dict):
        raise ShareError("share.damaged")
    return data


def share_url(base: str, params: dict[str, str | list[str]], state: dict,
              optional: tuple[str, ...] = OPTIONAL) -> tuple[str, list[str]]:
    """The share link: ``base`` + the page's URL ``params`` + ``state`` as the token ``s``.

    A parameter given as a list repeats (``?ex_formats=ONNX&ex_formats=state_dict``), the
    way Streamlit binds a multiselect to the URL.

    When the link would pass ``MAX_URL`` characters, the ``optional`` parts of ``state``
    (convenience data such as the Tensors page's x and y) are left out one by one; the
    names left out are returned so the page can say so. What defines the view (model,
    training config, selected runs) is always kept; a state too large even then raises
    ShareError (the caller shares the page's parameters alone).
    """
    params = {k: v for k, v in params.items() if k != PARAM}
    state = {k: v for k, v in state.items() if v not in (None, [], "", {})}
    dropped: list[str] = []

    def link() -> str:
        query = {**params, PARAM: encode_state(state)} if state else params
        return base + ("?" + urlencode(query, doseq=True) if query else "")

    url, error = None, None
    for name in (None, *optional):
        if name is not None:
            if name not in state:
                continue
            del state[name]
            dropped.append(name)
        try:
            url = link()
        except ShareError as exc:  # over MAX_ENCODED: try without the next optional part
            url, error = None, exc
            continue
        if len(url) <= MAX_URL:
            break
    if url is None:
        assert error is not None  # the first attempt always ends in a URL or a ShareError
        raise error
    return url, dropped
