"""Predicting a drawn or uploaded digit: MNIST-style preprocessing, probabilities and feature maps
(attribution maps are core.ml.explain's). Images from users are untrusted: size and pixel caps are
checked on the header before any decoding (decompression bombs), and only PIL's image decoders ever
see the bytes. A refused image raises ``ImageError`` (a ``core.errors.LabError``, codes ``image.*``)."""
from __future__ import annotations

import io
import time
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import nn

from core.errors import Code, LabError
from core.ml.data import MNIST_MEAN, MNIST_STD

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_PIXELS = 4096 * 4096


class ImageError(LabError):
    """An image the lab refuses, with a message for the user (``image.*`` codes)."""


def load_image(data: bytes, max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode an uploaded image to a grey uint8 array, refusing oversized or broken files."""
    if len(data) > max_bytes:
        raise ImageError("image.file_too_large", size=len(data), limit=max_bytes)
    if not data:
        raise ImageError("image.empty")
    try:
        with Image.open(io.BytesIO(data)) as img:  # reads the header only
            width, height = img.size
            if width * height > max_pixels:
                raise ImageError("image.too_large", width=width, height=height, limit=max_pixels)
            if img.format not in ("PNG", "JPEG", "GIF", "BMP", "WEBP"):
                if img.format:
                    raise ImageError("image.format_refused", format=img.format)
                raise ImageError("image.format_unknown")
            img.draft("L", (max(28, width // 8), max(28, height // 8)))  # cheap JPEG downscale when possible
            grey = img.convert("L")
            return np.asarray(grey, dtype=np.uint8).copy()
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError("image.bomb", reason=Code(str(exc))) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError("image.unreadable", kind=Code(type(exc).__name__)) from None


def from_canvas(rgba: np.ndarray) -> np.ndarray:
    """The drawable canvas gives RGBA (H, W, 4) with a transparent background: use the alpha-weighted ink."""
    if rgba is None or rgba.ndim != 3 or rgba.shape[2] < 3:
        raise ImageError("image.no_canvas")
    rgb = rgba[..., :3].astype(np.float32).mean(axis=2)
    alpha = rgba[..., 3].astype(np.float32) / 255.0 if rgba.shape[2] == 4 else np.ones(rgb.shape, np.float32)
    # Light strokes on a transparent (black) background are the ink.
    return np.clip(rgb * alpha, 0, 255).astype(np.uint8)


@dataclass
class Prepared:
    tensor: torch.Tensor  # (1, 1, 28, 28), normalized as MNIST
    image: np.ndarray  # (28, 28) float in [0, 1], what the model sees (before normalization)
    inverted: bool
    empty: bool


def preprocess(grey: np.ndarray) -> Prepared:
    """The MNIST recipe: white digit on black, crop to the ink, scale the longer side to 20 px,
    and centre by centre of mass in a 28×28 frame."""
    if grey.ndim != 2:
        raise ImageError("image.not_grey")
    img = grey.astype(np.float32)
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    inverted = bool(border.mean() > 127)  # dark digit on light paper: flip it
    if inverted:
        img = 255.0 - img
    img[img < 0.1 * max(img.max(), 1.0)] = 0.0  # drop paper texture and faint noise
    ys, xs = np.nonzero(img)
    if len(ys) == 0:
        blank = np.zeros((28, 28), np.float32)
        return Prepared(torch.from_numpy((blank - MNIST_MEAN) / MNIST_STD).view(1, 1, 28, 28), blank, inverted, True)
    crop = img[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    h, w = crop.shape
    scale = 20.0 / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    small = np.asarray(Image.fromarray(crop.astype(np.uint8)).resize((new_w, new_h), Image.Resampling.LANCZOS),
                       dtype=np.float32)
    frame = np.zeros((28, 28), np.float32)
    top, left = (28 - new_h) // 2, (28 - new_w) // 2
    frame[top:top + new_h, left:left + new_w] = small
    total = frame.sum()
    if total > 0:  # shift so the centre of mass sits at the centre, as MNIST did
        rows, cols = np.indices(frame.shape)
        cy, cx = (rows * frame).sum() / total, (cols * frame).sum() / total
        dy, dx = round(13.5 - cy), round(13.5 - cx)
        frame = np.roll(np.roll(frame, dy, axis=0), dx, axis=1)
    frame = np.clip(frame / 255.0, 0.0, 1.0)
    tensor = torch.from_numpy((frame - MNIST_MEAN) / MNIST_STD).view(1, 1, 28, 28).float()
    return Prepared(tensor, frame, inverted, False)


def predict(model: nn.Module, x: torch.Tensor) -> dict:
    """Class probabilities and the latency of one forward pass (ms, median of 5)."""
    model.eval()
    times = []
    with torch.inference_mode():
        for _ in range(5):
            start = time.perf_counter()
            logits = model(x)
            times.append((time.perf_counter() - start) * 1000)
    probs = torch.softmax(logits.float().reshape(1, -1), dim=1)[0]
    return {"probs": probs.tolist(), "label": int(probs.argmax()), "confidence": float(probs.max()),
            "latency_ms": float(np.median(times))}


def feature_maps(model: nn.Module, x: torch.Tensor, max_channels: int = 16) -> list[tuple[str, np.ndarray]]:
    """Outputs of each Conv2d layer (first ``max_channels`` channels) for one input, via forward hooks."""
    maps: list[tuple[str, np.ndarray]] = []
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            hooks.append(module.register_forward_hook(
                lambda mod, inp, out, name=name: maps.append((name, out[0, :max_channels].detach().numpy()))))
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for hook in hooks:
            hook.remove()
    return maps
