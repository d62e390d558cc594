"""JSON from users never raises an uncaught error (issue 22, item 9): an integer of more than
4,300 digits was a plain ValueError next to the JSONDecodeError and RecursionError that were caught."""
from __future__ import annotations

import base64
import json
import zlib

import pytest

from core.errors import LabError
from core.safe.jsontext import loads_user_json
from core.safe.share import VERSION, ShareError, decode_state
from core.training.config import TrainConfig

HUGE = "1" * 5000


@pytest.mark.parametrize(("text", "code"), [
    (f'{{"lr": {HUGE}}}', "json.number"),
    ("[" * 100_000 + "]" * 100_000, "json.too_deep"),
    ('{"lr": 1', "json.invalid"),
    (b'{"lr": "\xff"}', "json.not_text"),
    (" " * 1001, "json.too_long"),
])
def test_every_failure_is_a_coded_error(text, code):
    with pytest.raises(LabError) as info:
        loads_user_json(text, 1000 if code == "json.too_long" else 10**6, "json.config")
    assert info.value.code == code
    assert str(info.value).startswith("the config")
    assert info.value.message("zh").startswith("配置")


def test_a_config_with_a_5000_digit_number_is_a_clear_error():
    with pytest.raises(LabError) as info:
        TrainConfig.from_json(f'{{"lr": {HUGE}}}')
    assert info.value.code == "json.number" and "4300" in str(info.value)
    assert TrainConfig.from_json(TrainConfig().to_json()) == TrainConfig()


def test_the_configs_messages_keep_their_wording():
    with pytest.raises(ValueError, match="the config is not valid JSON: Expecting"):
        TrainConfig.from_json("{lr: 1")
    with pytest.raises(ValueError, match=r"the config JSON is too long \(max 500,000 characters\)"):
        TrainConfig.from_json(" " * 500_001)
    with pytest.raises(ValueError, match="the config JSON is nested too deeply"):
        TrainConfig.from_json("[" * 100_000)


def test_a_share_link_with_a_huge_number_is_damaged_not_a_crash():
    raw = json.dumps({"spec": 1}).replace("1", HUGE).encode()
    token = f"{VERSION}." + base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")
    with pytest.raises(ShareError) as info:
        decode_state(token)
    assert info.value.code == "share.damaged"
