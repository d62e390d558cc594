"""Hostile files through the pages' real uploaders (AppTest drives st.file_uploader).

The Train page takes checkpoints, the Predict page images. Each hostile file must be
refused with a clear st.error, no exception, and nothing executed: every pickle payload
here would create a marker file when unpickled, and that file never appears. Files that
try to make the server allocate gigabytes (a compressed checkpoint, a legacy checkpoint
declaring a 12 GB storage, an image declaring 100000x100000 pixels) are refused without
the process' peak memory growing.

The byte caps: Streamlit refuses uploads over ``server.maxUploadSize`` (25 MB in
.streamlit/config.toml) before the page sees them; that is checked here on the widgets and
in the browser (tests/e2e/test_hostile_e2e.py). Behind it, the lab's own caps
(PYTORCH_LAB_MAX_CHECKPOINT_MB for checkpoints, 5 MB for images) are checked here.
"""
from __future__ import annotations

import builtins
import io
import os
import pickle
import random
import resource
import struct
import subprocess
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.training.config import TrainConfig
from tests.pages.conftest import shown

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
HOSTILE_TIMEOUT = 10
MAX_RSS_GROWTH = 2 * 1024**3


# --------------------------------------------------------------------------- payloads
class Payload:
    """Unpickling calls ``func(*args)``: what a malicious checkpoint does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def checkpoint(**overrides) -> dict:
    from core.ml.modules import build_model
    from core.ml.zoo import preset_spec

    spec = preset_spec("linear")
    ckpt = {"epoch": 1, "model_state_dict": build_model(spec).state_dict(), "optimizer_state_dict": {},
            "loss": 0.5, "config": TrainConfig(preset="linear", dataset="linear", augment=False).to_dict()}
    ckpt.update(overrides)
    return ckpt


def saved(obj, **kwargs) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, pickle_module=pickle, **kwargs)
    return buf.getvalue()


def deflated(data: bytes) -> bytes:
    """The same zip archive with every record compressed (torch.save never compresses)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    return out.getvalue()


def legacy_with_huge_storage() -> bytes:
    """A legacy-format checkpoint whose pickle declares a 3e9-element (12 GB) storage."""
    data = saved({"w": torch.arange(10, dtype=torch.float32)}, _use_new_zipfile_serialization=False)
    n = (3_000_000_000).to_bytes(5, "little")
    data = data.replace(b"cpuq\x06K\nNt", b"cpuq\x06\x8a\x05" + n + b"Nt", 1)
    patched = data.replace(b"QK\x00K\n\x85", b"QK\x00\x8a\x05" + n + b"\x85", 1)
    assert patched != data, "the legacy pickle layout changed; update the patch"
    return patched


def torchscript() -> bytes:
    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(1, 1)

        def forward(self, x):
            return self.lin(x) + 1

    buf = io.BytesIO()
    torch.jit.save(torch.jit.trace(Tiny(), torch.zeros(1, 1)), buf)
    return buf.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height pixels, with almost no pixel data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


def png_with_iccp_bomb() -> bytes:
    """A small PNG whose ICC profile chunk inflates to 200 MB."""
    buf = io.BytesIO()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(buf, format="PNG")
    data = buf.getvalue()
    body = b"bomb\x00\x00" + zlib.compress(b"\0" * 200_000_000, 9)
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    return data[:33] + chunk + data[33:]  # right after the 8-byte signature and the 25-byte IHDR


def gif_declaring(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00" + b",\x00\x00\x00\x00" + \
        struct.pack("<HH", width, height) + b"\x00\x02\x02\x44\x01\x00;"


def image(fmt: str, size=(28, 28)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full(size[::-1], 200, np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def _config(**changes) -> dict:
    return {**checkpoint()["config"], **changes}


BIG_SPEC = {"name": "Big", "input_shape": [1], "layers": [{"type": "Linear", "args": {
    "in_features": 1, "out_features": 65536}}] + [{"type": "Linear", "args": {
        "in_features": 65536, "out_features": 65536}}] * 4}

# name -> (the file's bytes, given the marker path a payload would create; a piece of the Train page's error)
CHECKPOINTS = {
    "pickle-os.system-in-weights": (lambda m: saved(checkpoint(model_state_dict=Payload(os.system, f"touch {m}"))),
                                    "loading it could run code"),
    "pickle-os.system-in-config": (lambda m: saved(checkpoint(config=Payload(os.system, f"touch {m}"))),
                                   "loading it could run code"),
    "pickle-exec": (lambda m: saved(checkpoint(loss=Payload(builtins.exec, f"open({str(m)!r}, 'w').write('x')"))),
                    "loading it could run code"),
    "pickle-subprocess": (lambda m: saved(Payload(subprocess.Popen, ["touch", str(m)])),
                          "loading it could run code"),
    "raw-pickle-not-torch": (lambda m: pickle.dumps(Payload(os.system, f"touch {m}"), protocol=2),
                             "loading it could run code"),
    "full-model-pickle": (lambda m: saved(torch.nn.Linear(2, 2)), "loading it could run code"),
    "torchscript-archive": (lambda m: torchscript(), "is a TorchScript archive"),
    "truncated": (lambda m: saved(checkpoint())[:2000], "not a valid PyTorch checkpoint"),
    "truncated-to-1-byte": (lambda m: saved(checkpoint())[:1], "not a valid PyTorch checkpoint"),
    "random-bytes": (lambda m: random.Random(0).randbytes(4096), "not a valid PyTorch checkpoint"),
    "empty": (lambda m: b"", "empty"),
    "zip-of-other-files": (lambda m: _zip({"notes.txt": b"hello", "data.pkl": b"not a pickle"}),
                           "not a valid PyTorch checkpoint"),
    "compressed-zip-bomb": (lambda m: deflated(saved(checkpoint(model_state_dict={"w": torch.zeros(50_000_000)}))),
                            "compressed records"),
    "legacy-12GB-storage": (lambda m: legacy_with_huge_storage(), "not a valid PyTorch checkpoint"),
    "state-dict-only": (lambda m: saved(checkpoint()["model_state_dict"]), "it looks like a bare model state_dict"),
    "config-lr-nan": (lambda m: saved(checkpoint(config=_config(lr=float("nan")))), "lr must be a finite number"),
    "config-unknown-key": (lambda m: saved(checkpoint(config=_config(__init__="os.system"))), "unknown config key"),
    "model-over-the-parameter-cap": (lambda m: saved(checkpoint(config=_config(model_spec=BIG_SPEC))), "over the cap"),
}


def _zip(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return out.getvalue()


# name -> (a function making the file's bytes, a piece of the Predict page's error)
IMAGES = {
    "png-declaring-100000x100000": (lambda: png_declaring(100_000, 100_000), "too large to decode safely"),
    "png-declaring-5000x5000": (lambda: png_declaring(5000, 5000), "declares 5,000×5,000 pixels"),
    "gif-declaring-65535x65535": (lambda: gif_declaring(65535, 65535), "too large to decode safely"),
    "png-iccp-bomb": (png_with_iccp_bomb, "not a readable image"),
    "png-truncated": (lambda: image("PNG", (300, 300))[:200], "not a readable image"),
    "random-bytes": (lambda: random.Random(1).randbytes(4096), "not a readable image"),
    "pickle-as-png": (lambda: pickle.dumps(Payload(os.system, "true"), protocol=2), "not a readable image"),
    "tiff": (lambda: image("TIFF"), "TIFF images are not accepted"),
    "over-5MB": (lambda: b"\x89PNG\r\n\x1a\n" + b"\0" * (5 * 1024 * 1024), "the limit is 5,242,880"),
    "empty": (lambda: b"", "empty"),
}


def max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@pytest.fixture
def lab(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "outside").mkdir()
    monkeypatch.setenv("PYTORCH_LAB_HOME", str(home))
    monkeypatch.setenv("PYTORCH_LAB_DOWNLOAD", "0")
    return tmp_path, home, tmp_path / "outside" / "pwned"


def open_page(page: str, **params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in params.items():
        at.query_params[key] = value
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def files_outside(tmp: Path, home: Path) -> set[str]:
    return {str(p) for p in tmp.rglob("*") if home not in p.parents and p != home}


def check_refused(at: AppTest, needle: str, tmp: Path, home: Path, marker: Path, before: set[str], rss: int):
    assert not at.exception, [e.value for e in at.exception]
    errors = [shown(e.value) for e in at.error]
    assert any(needle.lower() in e.lower() for e in errors), (needle, errors)
    assert not marker.exists(), "a payload ran"
    assert files_outside(tmp, home) == before
    assert max_rss() - rss < MAX_RSS_GROWTH, f"max RSS grew by {(max_rss() - rss) / 1e9:.1f} GB"


@pytest.mark.parametrize("name", list(CHECKPOINTS))
def test_train_page_refuses_hostile_checkpoints(lab, name):
    tmp, home, marker = lab
    make, needle = CHECKPOINTS[name]
    data = make(marker)
    at = open_page("pages/train.py")
    before, rss = files_outside(tmp, home), max_rss()
    at.file_uploader(key="tr_upload").upload(f"{name}.pt", data).run(timeout=HOSTILE_TIMEOUT)
    check_refused(at, needle, tmp, home, marker, before, rss)
    for error in at.error:  # never torch's advice to retry unsafely
        assert "weights_only` set to `False" not in error.value and "add_safe_globals" not in error.value
    assert not at.success  # nothing offered to evaluate or resume
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())  # no run was made from it


def test_train_page_applies_the_checkpoint_cap(lab, monkeypatch):
    tmp, home, marker = lab
    monkeypatch.setenv("PYTORCH_LAB_MAX_CHECKPOINT_MB", "1")
    big = saved(checkpoint(model_state_dict={"w": torch.zeros(400_000)}))  # 1.6 MB, otherwise valid
    at = open_page("pages/train.py")
    before, rss = files_outside(tmp, home), max_rss()
    at.file_uploader(key="tr_upload").upload("big.pt", big).run(timeout=HOSTILE_TIMEOUT)
    check_refused(at, "over the checkpoint size cap of 1.0 MB", tmp, home, marker, before, rss)


@pytest.mark.parametrize("name", list(IMAGES))
def test_predict_page_refuses_hostile_images(lab, name):
    tmp, home, marker = lab
    make, needle = IMAGES[name]
    data = make()
    at = open_page("pages/predict.py", pr_input="upload")
    before, rss = files_outside(tmp, home), max_rss()
    at.file_uploader(key="pr_upload").upload(f"{name}.png", data, "image/png").run(timeout=HOSTILE_TIMEOUT)
    check_refused(at, needle, tmp, home, marker, before, rss)
    assert not at.metric  # no prediction from a refused file


def test_a_good_upload_after_hostile_ones_still_works(lab):
    """The refusals leave the page usable: a real checkpoint and a real image then go through."""
    _tmp, _home, marker = lab
    at = open_page("pages/train.py")
    at.file_uploader(key="tr_upload").upload("evil.pt", CHECKPOINTS["pickle-exec"][0](marker)).run()
    assert at.error
    at.file_uploader(key="tr_upload").clear().upload("good.pt", saved(checkpoint())).run(timeout=HOSTILE_TIMEOUT)
    assert not at.exception and not at.error and at.success
    at = open_page("pages/predict.py", pr_input="upload")
    at.file_uploader(key="pr_upload").upload("bomb.png", png_declaring(100_000, 100_000)).run()
    assert at.error
    at.file_uploader(key="pr_upload").clear().upload("digit.png", image("PNG", (40, 40))).run(timeout=HOSTILE_TIMEOUT)
    assert not at.exception and not at.error and at.metric
    assert not marker.exists()


@pytest.mark.parametrize("page,key,params", [("pages/train.py", "tr_upload", {}),
                                             ("pages/predict.py", "pr_upload", {"pr_input": "upload"})])
def test_every_uploader_is_capped_by_the_server_setting(lab, page, key, params):
    """Streamlit refuses larger files in the browser and on its upload endpoint (.streamlit/config.toml)."""
    import tomllib

    cap = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]["maxUploadSize"]
    assert cap <= 25
    at = open_page(page, **params)
    assert at.file_uploader(key=key).proto.max_upload_size_mb == cap
