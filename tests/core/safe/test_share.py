import base64
import zlib
from urllib.parse import parse_qs, urlparse

import pytest
import torch

from core.ml.modules import checked_spec
from core.ml.spec import ModelSpec
from core.ml.zoo import L, preset_spec
from core.safe.share import MAX_ENCODED, MAX_URL, ShareError, decode_state, encode_state, share_url


def test_round_trip_and_size_of_the_largest_preset():
    state = {"model": preset_spec("lab_cnn").to_dict(), "runs": ["r20261122-0001abcd"] * 5, "expr": "x @ y + sin(x)"}
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


# The longest realistic link: a 12-layer stack from the Builder (every argument spelled out,
# layers named), 8 runs selected (the Runs page's maximum), every field of the Train form
# changed, the Tensors page's x and y as 4x4 random floats, and the page's own parameters
# at their longest plausible values on a LAN address.
BASE = "http://192.168.100.200:8501/"
GLOBAL = {"lang": "简体中文", "seed": "2147483647"}
PAGE_PARAMS = {
    "tensors": {"ten_view": "expr", "ten_expr": "(x @ y.T).softmax(dim=1) * 2 + sin(x).abs().sum(0)",
                "ten_ba": "3, 1, 5", "ten_bb": "1, 4, 5"},
    "runs": {"rn_filter": "lr=0.02 bf16", "rn_view": "open", "rn_metric": "train_loss", "rn_x": "wall",
             "rn_smooth": "0.85", "rn_log": "true", "rn_target": "0.985", "rn_diff": "false"},
    "profiler": {"pf_model": "r20261129-222027-7d02f3", "pf_mode": "train_steps", "pf_batch": "1024",
                 "pf_steps": "50", "pf_wait": "10", "pf_warmup": "10", "pf_active": "30", "pf_shapes": "true",
                 "pf_memory": "true", "pf_stack": "true", "pf_group": "true"},
    "export": {"ex_model": "r20261129-222027-7d02f3", "ex_formats": ["TorchScript (trace)", "TorchScript (script)",
               "ONNX", "torch.export"], "ex_opset": "20", "ex_names": "pixels, class_logits",
               "ex_dynamic": "false", "ex_example": "E3"},
    "predict": {"pr_run": "r20261129-222027-7d02f3", "pr_input": "upload"},
}


def deep_stack() -> dict:
    def conv(i, o, k):
        return L("Conv2d", f"conv{o}", in_channels=i, out_channels=o, kernel_size=k, stride=1,
                                 padding=k // 2, bias=False)
    layers = [conv(1, 32, 5), L("BatchNorm2d", "bn32", num_features=32), L("ReLU", "relu1"),
              L("MaxPool2d", "pool1", kernel_size=2),
              conv(32, 64, 3), L("BatchNorm2d", "bn64", num_features=64), L("ReLU", "relu2"),
              L("MaxPool2d", "pool2", kernel_size=2),
              L("Flatten", "flatten"), L("Linear", "fc1", in_features=64 * 7 * 7, out_features=256),
              L("Dropout", "drop", p=0.35), L("Linear", "fc2", in_features=256, out_features=10)]
    return checked_spec(ModelSpec.parse({"name": "MyDeepMnistNet", "input_shape": [1, 28, 28],
                                         "layers": layers})).to_dict()


def worst_state(tensor_shape=(4, 4)) -> dict:
    from pages.ui.share import TRAIN_FIELDS

    g = torch.Generator().manual_seed(0)
    train = dict(dataset="fashion_mnist", optimizer="rmsprop", lr=0.0031622776601683794, scheduler="cosine",
                 loss="cross_entropy", batch_size=4096, epochs=200, augment=False, device="cpu", precision="bf16",
                 momentum=0.95, weight_decay=0.00125, label_smoothing=0.15, val_size=12345, ema=0.9995, tta=False,
                 drop_last=False, accum_steps=16, processes=2, source="current", preset="resblock_net")
    assert set(train) == set(TRAIN_FIELDS)  # every field the link carries
    tensors = {n: {"values": torch.randn(tensor_shape, generator=g).tolist(), "dtype": "float32"} for n in "xy"}
    runs = [f"r20261129-2220{i:02d}-{i * 1234567 % 16**6:06x}" for i in range(8)]
    return {"model": deep_stack(), "runs": runs, "train": train, "tensors": tensors}


@pytest.mark.parametrize("page", list(PAGE_PARAMS))
def test_longest_realistic_link_stays_under_2000_characters(page):
    state = worst_state()
    assert len(state["model"]["layers"]) == 12
    url, dropped = share_url(BASE + page, {**GLOBAL, **PAGE_PARAMS[page]}, state)
    assert dropped == [] and len(url) < MAX_URL == 2000, len(url)
    query = parse_qs(urlparse(url).query)
    assert decode_state(query["s"][0]) == state  # all of it, intact
    assert query["lang"] == ["简体中文"] and query.get("ex_formats") == PAGE_PARAMS[page].get("ex_formats")


def test_large_tensors_are_left_out_so_the_link_keeps_the_rest():
    state = worst_state(tensor_shape=(16, 16))  # the most the Tensors page puts in a link (256 values)
    url, dropped = share_url(BASE + "tensors", {**GLOBAL, **PAGE_PARAMS["tensors"]}, state)
    assert dropped == ["tensors"] and len(url) < MAX_URL
    shared = decode_state(parse_qs(urlparse(url).query)["s"][0])
    assert shared == {k: v for k, v in state.items() if k != "tensors"}
    assert "tensors" in state  # the caller's state is not changed


def test_state_too_large_even_without_optional_parts_is_refused():
    huge = {"model": {"name": "x", "input_shape": [1], "layers": [{"type": "Linear", "args": {"n": i}} for i in
                                                                   range(3000)]}}
    with pytest.raises(ShareError, match="too large"):
        share_url(BASE, {}, huge)


def test_link_without_state_or_params():
    assert share_url(BASE + "home", {}, {"runs": [], "tensors": {}}) == (BASE + "home", [])
    assert share_url(BASE, {"s": "1.old", "lang": "English"}, {}) == (BASE + "?lang=English", [])
