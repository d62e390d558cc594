import io

import numpy as np
import pytest
import torch
from PIL import Image

from core.ml import predict as P
from core.ml.data import load_bundled
from core.ml.modules import build_model
from core.ml.zoo import preset_spec


def png(array: np.ndarray, mode="L") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def test_preprocess_recovers_an_mnist_digit():
    digit = load_bundled().test_images[0].numpy()
    # Draw it big, dark on white paper, off-centre, as a photo of a digit would be.
    big = np.asarray(Image.fromarray(digit).resize((200, 200)))
    paper = np.full((300, 400), 255, np.uint8)
    paper[20:220, 150:350] = 255 - big
    prepared = P.preprocess(P.load_image(png(paper)))
    assert prepared.inverted and not prepared.empty
    assert prepared.tensor.shape == (1, 1, 28, 28)
    rows, cols = np.indices((28, 28))
    mass = prepared.image.sum()
    assert abs((rows * prepared.image).sum() / mass - 13.5) < 1.0
    assert abs((cols * prepared.image).sum() / mass - 13.5) < 1.0
    ys, xs = np.nonzero(prepared.image > 0.05)
    assert max(ys.max() - ys.min(), xs.max() - xs.min()) <= 21
    # Similar to the original digit after the same recipe
    original = P.preprocess(digit).image
    assert np.corrcoef(original.flatten(), prepared.image.flatten())[0, 1] > 0.8


def test_blank_canvas_is_empty():
    prepared = P.preprocess(np.zeros((100, 100), np.uint8))
    assert prepared.empty and prepared.image.max() == 0


def test_canvas_rgba():
    rgba = np.zeros((50, 50, 4), np.uint8)
    rgba[10:40, 20:25] = [255, 255, 255, 255]
    grey = P.from_canvas(rgba)
    assert grey.max() == 255 and grey[0, 0] == 0
    with pytest.raises(P.ImageError):
        P.from_canvas(np.zeros((5, 5), np.uint8))


@pytest.mark.parametrize("data,message", [
    (b"", "empty"),
    (b"\x00" * 100, "not a readable image"),
    (b"GIF89a" + b"\x00" * 10, "not a readable image"),
    (b"x" * (P.MAX_UPLOAD_BYTES + 1), "limit"),
])
def test_bad_files_are_refused(data, message):
    with pytest.raises(P.ImageError, match=message):
        P.load_image(data)


def test_decompression_bomb_is_refused_from_the_header():
    # A PNG header declaring 100000 x 100000 pixels: refused before decoding.
    small = png(np.zeros((2, 2), np.uint8))
    import struct
    import zlib
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    bomb = small[:8] + chunk + small[33:]
    with pytest.raises(P.ImageError, match=r"100,000×100,000|too large to decode"):
        P.load_image(bomb)
    # Under PIL's own bomb limit, our pixel cap still refuses it before decoding.
    ihdr = struct.pack(">IIBBBBB", 10000, 10000, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    with pytest.raises(P.ImageError, match="10,000×10,000"):
        P.load_image(small[:8] + chunk + small[33:])


def test_predict_feature_maps():
    model = build_model(preset_spec("simple_cnn"))
    x = P.preprocess(load_bundled().test_images[1].numpy()).tensor
    result = P.predict(model, x)
    assert len(result["probs"]) == 10 and abs(sum(result["probs"]) - 1) < 1e-5
    assert result["latency_ms"] > 0
    maps = P.feature_maps(model, x, max_channels=8)
    assert [name for name, _ in maps] == ["conv1", "conv2"]
    assert maps[0][1].shape == (8, 28, 28) and maps[1][1].shape == (8, 14, 14)
    assert not any(m._forward_hooks for m in model.modules())
    assert torch.is_grad_enabled()
