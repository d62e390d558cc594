import base64
import zlib

import pytest

from core.models import preset_spec
from core.share import MAX_ENCODED, ShareError, decode_state, encode_state


def test_round_trip_and_size_of_the_largest_preset():
    state = {"model": preset_spec("lab_cnn"), "runs": ["r20261122-0001abcd"] * 5, "expr": "x @ y + sin(x)"}
    token = encode_state(state)
    assert token.startswith("1.") and decode_state(token) == state
    assert len(token) < 1500  # the longest realistic link stays well under ~2,000 characters
    assert all(c.isalnum() or c in "-_." for c in token)


@pytest.mark.parametrize("token", ["", "2.abc", "1.!!!", "1." + "A" * 50, "1.eJzLSM3JyQcABiwCFQ",
                                   "x" * (MAX_ENCODED + 1), "1"])
def test_tampered_tokens_are_refused(token):
    with pytest.raises(ShareError):
        decode_state(token)


def test_zip_bomb_is_refused():
    bomb = base64.urlsafe_b64encode(zlib.compress(b"[" + b"0," * 200_000 + b"0]", 9)).decode().rstrip("=")
    assert len(bomb) < MAX_ENCODED
    with pytest.raises(ShareError, match="too large"):
        decode_state("1." + bomb)


def test_non_object_json_is_refused():
    token = "1." + base64.urlsafe_b64encode(zlib.compress(b"[1, 2]")).decode().rstrip("=")
    with pytest.raises(ShareError):
        decode_state(token)
