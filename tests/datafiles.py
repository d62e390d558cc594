"""Small dataset and model files made in the tests (nothing is downloaded): an ImageFolder zip of
generated shapes, an .npz like the bundled digits, a CSV, and the hostile files of issue 21."""
from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")


def shape_image(kind: str, rng: np.random.Generator, size: int = 16, mode: str = "L") -> Image.Image:
    """One white shape on black, at a random place and size."""
    img = Image.new(mode, (size, size), 0)
    draw = ImageDraw.Draw(img)
    r = int(rng.integers(size // 4, size // 2 - 1))
    cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
    fill = 255 if mode == "L" else (255, int(rng.integers(100, 255)), 80)
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif kind == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    return img


def png_bytes(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def shapes_zip(per_class: int = 20, size: int = 16, classes: tuple[str, ...] = SHAPES, top: str = "shapes",
               seed: int = 0, sizes: tuple[int, ...] | None = None, mode: str = "L") -> bytes:
    """An ImageFolder zip: ``top/<class>/<i>.png``, ``per_class`` generated shapes per class."""
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for kind in classes:
            for i in range(per_class):
                s = sizes[i % len(sizes)] if sizes else size
                zf.writestr(f"{top}/{kind}/{i}.png" if top else f"{kind}/{i}.png",
                            png_bytes(shape_image(kind if kind in SHAPES else SHAPES[0], rng, s, mode)))
    return buffer.getvalue()


def shapes_npz(per_class: int = 20, size: int = 16, labels: np.ndarray | None = None, **arrays) -> bytes:
    rng = np.random.default_rng(1)
    images = np.stack([np.asarray(shape_image(k, rng, size)) for k in SHAPES for _ in range(per_class)])
    found = np.repeat(np.arange(len(SHAPES)), per_class) if labels is None else labels
    buffer = io.BytesIO()
    np.savez(buffer, **{"images": images, "labels": found, **arrays})
    return buffer.getvalue()


def zip_of(entries: dict[str, bytes], symlinks: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if name in symlinks:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, data)
    return buffer.getvalue()


def zip_bomb(mb: int = 300) -> bytes:
    """One entry that inflates to ``mb`` MB of zeros from a few hundred kB."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("a/bomb.png")
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as fh:
            block = bytes(1024 * 1024)
            for _ in range(mb):
                fh.write(block)
    return buffer.getvalue()


def many_files_zip(n: int = 100_000) -> bytes:
    """``n`` empty entries (a stored zip: about 100 bytes each)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for i in range(n):
            zf.writestr(f"c{i % 2}/{i}.png", b"")
    return buffer.getvalue()


def huge_png_header(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` pixels (the data is a few bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + \
        chunk(b"IEND", b"")


def regression_csv(rows: int = 80, seed: int = 0, extra: dict | None = None) -> bytes:
    """y = 3a - 2b + 1 (+ a little noise) with a third, useless feature; ``extra`` adds columns."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    a, b, c = rng.normal(size=(3, rows))
    frame = pd.DataFrame({"a": a, "b": b, "c": c, "y": 3 * a - 2 * b + 1 + 0.05 * rng.normal(size=rows)})
    for name, values in (extra or {}).items():
        frame[name] = values
    return frame.to_csv(index=False).encode()


def classes_csv(rows_per_class: int = 20, seed: int = 0) -> bytes:
    """Three classes of points around three centres, with the class as text."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    centres = {"red": (0, 0), "green": (4, 0), "blue": (0, 4)}
    rows = [{"x1": cx + rng.normal(), "x2": cy + rng.normal(), "colour": name}
            for name, (cx, cy) in centres.items() for _ in range(rows_per_class)]
    return pd.DataFrame(rows).to_csv(index=False).encode()
