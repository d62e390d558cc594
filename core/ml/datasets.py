"""The learner's own image datasets: decode an upload safely, resize, split, register in the lab home.

Two formats are read, both from bytes in memory (nothing is extracted to disk):

- a zip in torchvision's ``ImageFolder`` layout: ``class_a/img1.png``, ``class_b/x.jpg`` ... (one
  folder per class, optionally all inside one top folder); the classes are the folder names, sorted;
- an ``.npz`` like the bundled digits: ``images`` uint8 (N, H, W) or (N, H, W, C) with C 1, 3 or 4,
  ``labels`` integers 0..K-1 (N,), optionally ``classes`` (K names);
- a ``.csv`` with a header row: a chosen target column (regression or classification) and numeric
  feature columns (``decode_csv``; a non-numeric or incomplete column is refused by name).

Every file is untrusted (a browser upload or a file given to ``python -m core.datasets``): the
archive's declared sizes are checked before anything is inflated (total bytes, compression ratio:
zip bombs), its entry count (``MAX_FILES``), entry names (no absolute paths, ``..``, backslashes or
drive letters: path traversal), no symbolic links or encrypted entries; each image's header is
read first and one over ``MAX_PIXELS`` is refused before decoding (decompression bombs), and only
PIL's image decoders see the bytes; ``np.load`` never unpickles. A refused file raises
``DatasetError`` (a ``LabError``, codes ``datasets.*``).

Decoded images are resized to a chosen square size and channel count, split into train and test
(class-balanced, seeded, ``core.ml.data.stratified_split``; the validation images are held out of
the training split when a run trains, ``val_size``), and written into
``$PYTORCH_LAB_HOME/datasets/<key>/`` atomically (a temp folder renamed into place).
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import stat
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from core.errors import Code, LabError, Message
from core.ml import userdata
from core.ml.checkpoint import declared_zip_records
from core.ml.data import pixel_stats, stratified_split
from core.ml.predict import MAX_PIXELS
from core.ml.spec import ModelSpec
from core.settings import Settings, load_settings

MB = 1024 * 1024
MAX_UPLOAD_BYTES = 50 * MB               # the file itself (the browser's upload cap is lower)
MAX_TOTAL_BYTES = 200 * 1024 * 1024      # the archive's declared contents, inflated
MAX_RATIO = 200                          # inflated / compressed size of one entry (a zip bomb is far above)
MAX_FILES = 20_000                       # entries of an ImageFolder zip
MAX_SAMPLES = 20_000                     # images of one dataset
MAX_CLASSES = 100
MIN_PER_CLASS = 3                        # so every class has train, validation and test images
MAX_STORED_BYTES = 64 * 1024 * 1024      # the resized dataset (N x C x size x size bytes)
SIZES = (8, 12, 16, 20, 24, 28, 32, 48, 64)
CHANNELS = (1, 3)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
_SKIPPED = re.compile(r"(^|/)(__MACOSX|\.[^/]*)(/|$)")  # macOS forks and hidden files (.DS_Store)


class DatasetError(LabError):
    """A dataset file or setting the lab refuses, with a message for the user (``datasets.*`` codes)."""


@dataclass
class Decoded:
    """A decoded dataset before it is split: uint8 images (N, H, W) grey or (N, 3, H, W) colour."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    kind: str                                           # "imagefolder" or "npz"
    notes: list[Message] = field(default_factory=list)  # what was changed on the way (resized sizes)


# --------------------------------------------------------------------------- archives
def _open_zip(data: bytes, what: str, max_files: int = MAX_FILES) -> zipfile.ZipFile:
    declared = declared_zip_records(io.BytesIO(data))  # the end record's count, before zipfile reads the directory
    if declared is not None and declared > max_files:
        raise DatasetError("datasets.too_many_files", n=declared, cap=max_files)
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise DatasetError("datasets.not_archive", kind=Code(what)) from None


def _check_entries(zf: zipfile.ZipFile, max_files: int) -> list[zipfile.ZipInfo]:
    """The archive's entries after the checks on their names, kinds and declared sizes."""
    infos = zf.infolist()
    if len(infos) > max_files:
        raise DatasetError("datasets.too_many_files", n=len(infos), cap=max_files)
    total = 0
    for info in infos:
        name = info.filename
        parts = name.split("/")
        if ("\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name) or "\x00" in name
                or any(p == ".." for p in parts)):
            raise DatasetError("datasets.unsafe_path", name=Code(name[:200]))
        if stat.S_ISLNK(info.external_attr >> 16):
            raise DatasetError("datasets.symlink", name=Code(name[:200]))
        if info.flag_bits & 0x1:
            raise DatasetError("datasets.encrypted", name=Code(name[:200]))
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise DatasetError("datasets.compression", name=Code(name[:200]))
        total += info.file_size
        if info.file_size > 1024 * 1024 and info.file_size > MAX_RATIO * max(1, info.compress_size):
            raise DatasetError("datasets.bomb", name=Code(name[:200]),
                               ratio=info.file_size // max(1, info.compress_size))
        if total > MAX_TOTAL_BYTES:
            raise DatasetError("datasets.too_big_inflated", mb=MAX_TOTAL_BYTES / MB)
    return infos


def _read(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """One entry's bytes: at most its declared size is inflated (zipfile stops there and checks the CRC)."""
    try:
        with zf.open(info) as fh:
            return fh.read(info.file_size + 1)[:info.file_size]
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError, NotImplementedError):
        raise DatasetError("datasets.damaged_entry", name=Code(info.filename[:200])) from None


# --------------------------------------------------------------------------- images
def _decode_image(data: bytes, name: str, channels: int, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """One image file -> uint8 (size, size) or (3, size, size), and its original (width, height)."""
    try:
        with Image.open(io.BytesIO(data)) as img:  # reads the header only
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise DatasetError("datasets.image_too_large", name=Code(name[:200]), width=width, height=height,
                                   cap=MAX_PIXELS)
            if img.format not in IMAGE_FORMATS:
                raise DatasetError("datasets.not_image", name=Code(name[:200]))
            img.draft("L" if channels == 1 else "RGB", (size, size))
            converted = img.convert("L" if channels == 1 else "RGB")
            resized = converted.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
            array = np.asarray(resized, dtype=np.uint8)
    except DatasetError:
        raise
    except Image.DecompressionBombError:  # PIL's own check, on the header: far over our cap
        raise DatasetError("datasets.image_bomb", name=Code(name[:200]), cap=MAX_PIXELS) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise DatasetError("datasets.not_image", name=Code(name[:200])) from None
    return (array if channels == 1 else array.transpose(2, 0, 1).copy()), (width, height)


def decode_imagefolder(data: bytes, size: int = 28, channels: int = 1, max_files: int = MAX_FILES) -> Decoded:
    """A zip in ``ImageFolder`` layout -> images resized to ``size`` x ``size`` with ``channels`` channels."""
    _check_size(data)
    _check_shape_choice(size, channels)
    zf = _open_zip(data, "zip", max_files)
    with zf:
        infos = _check_entries(zf, max_files)
        files = [i for i in infos if not i.is_dir() and not _SKIPPED.search(i.filename)]
        paths = [i.filename.split("/") for i in files]
        if paths and all(len(p) >= 3 for p in paths) and len({p[0] for p in paths}) == 1:
            paths = [p[1:] for p in paths]  # everything inside one top folder
        for info, parts in zip(files, paths, strict=True):
            if len(parts) != 2 or not parts[0] or not parts[1]:
                raise DatasetError("datasets.layout", name=Code(info.filename[:200]))
            if not parts[1].lower().endswith(IMAGE_SUFFIXES):
                raise DatasetError("datasets.not_image", name=Code(info.filename[:200]))
        if not files:
            raise DatasetError("datasets.no_images")
        if len(files) > MAX_SAMPLES:
            raise DatasetError("datasets.too_many_samples", n=len(files), cap=MAX_SAMPLES)
        classes = sorted({parts[0] for parts in paths})
        _check_classes(len(classes))
        _check_stored(len(files), size, channels)
        index = {c: i for i, c in enumerate(classes)}
        images, labels, sizes = [], [], set()
        for info, parts in sorted(zip(files, paths, strict=True), key=lambda f: f[0].filename):
            array, original = _decode_image(_read(zf, info), info.filename, channels, size)
            images.append(array)
            labels.append(index[parts[0]])
            sizes.add(original)
    labels_arr = np.asarray(labels, dtype=np.int64)
    _check_counts(labels_arr, classes)
    notes = _size_notes(sizes, size)
    return Decoded(np.stack(images), labels_arr, classes, "imagefolder", notes)


def _size_notes(sizes: set[tuple[int, int]], size: int) -> list[Message]:
    if len(sizes) > 1:
        return [Message("datasets.note.mixed_sizes", n=len(sizes), size=size)]
    if sizes and next(iter(sizes)) != (size, size):
        w, h = next(iter(sizes))
        return [Message("datasets.note.resized", width=w, height=h, size=size)]
    return []


# --------------------------------------------------------------------------- npz
def decode_npz(data: bytes, size: int = 28, channels: int = 1) -> Decoded:
    """An ``.npz`` like the bundled digits -> images resized to ``size`` x ``size`` with ``channels``."""
    _check_size(data)
    _check_shape_choice(size, channels)
    with _open_zip(data, "npz", 16) as zf:
        _check_entries(zf, 16)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            names = set(npz.files)
            if not {"images", "labels"} <= names:
                raise DatasetError("datasets.npz_keys", keys=Code(", ".join(sorted(names)) or "-"))
            images, labels = npz["images"], npz["labels"]
            classes_arr = npz["classes"] if "classes" in names else None
    except DatasetError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError):
        raise DatasetError("datasets.not_archive", kind=Code("npz")) from None
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (1, 3, 4)):
        raise DatasetError("datasets.npz_images", shape=Code(str(tuple(images.shape))), dtype=Code(str(images.dtype)))
    if labels.ndim != 1 or len(labels) != len(images) or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError("datasets.npz_labels", shape=Code(str(tuple(labels.shape))), dtype=Code(str(labels.dtype)),
                           n=len(images))
    if len(images) > MAX_SAMPLES:
        raise DatasetError("datasets.too_many_samples", n=len(images), cap=MAX_SAMPLES)
    if len(images) == 0:
        raise DatasetError("datasets.no_images")
    h, w = images.shape[1:3]
    if h * w > MAX_PIXELS:
        raise DatasetError("datasets.image_too_large", name=Code("images"), width=int(w), height=int(h), cap=MAX_PIXELS)
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= MAX_CLASSES:
        raise DatasetError("datasets.labels_range", low=low, high=high, cap=MAX_CLASSES - 1)
    k = high + 1
    if classes_arr is not None:
        if classes_arr.ndim != 1 or len(classes_arr) != k or classes_arr.dtype.kind not in "US":
            raise DatasetError("datasets.npz_classes", n=k)
        classes = [str(c)[:60] for c in classes_arr.tolist()]
    else:
        classes = [str(i) for i in range(k)]
    _check_classes(k)
    labels = labels.astype(np.int64)
    _check_counts(labels, classes)
    _check_stored(len(images), size, channels)
    x = torch.from_numpy(np.ascontiguousarray(images))
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)[:, :3]  # (N, C, H, W), alpha dropped
    out = []
    for chunk in x.split(1024):
        f = chunk.float()
        if channels == 1 and f.shape[1] == 3:
            f = (f * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        elif channels == 3 and f.shape[1] == 1:
            f = f.expand(-1, 3, -1, -1)
        if (h, w) != (size, size):
            f = F.interpolate(f, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out.append(f.round().clamp(0, 255).to(torch.uint8))
    resized = torch.cat(out).numpy()
    return Decoded(resized[:, 0] if channels == 1 else resized, labels, classes, "npz",
                   _size_notes({(int(w), int(h))}, size))


# --------------------------------------------------------------------------- CSV (tabular)
MAX_CSV_BYTES = 20 * 1024 * 1024
MAX_ROWS = 100_000
MAX_COLUMNS = 200
TASKS = ("regression", "classification")


@dataclass
class Tabular:
    """A decoded CSV: float32 features (N, F), the target (float (N,) or class indices), the names."""

    x: np.ndarray
    y: np.ndarray
    features: list[str]
    target: str
    task: str
    classes: list[str]


def _read_csv(data: bytes, nrows: int | None = None):
    import pandas as pd

    if len(data) > MAX_CSV_BYTES:
        raise DatasetError("datasets.file_too_large", mb=len(data) / MB, cap=MAX_CSV_BYTES / MB)
    if not data.strip():
        raise DatasetError("datasets.empty")
    try:
        frame = pd.read_csv(io.BytesIO(data), nrows=MAX_ROWS + 1 if nrows is None else nrows, engine="c",
                            on_bad_lines="error", encoding_errors="strict")
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DatasetError("datasets.csv_unreadable", reason=Code(str(exc).splitlines()[0][:200] if str(exc) else
                                                                   type(exc).__name__)) from None
    if frame.shape[1] > MAX_COLUMNS:
        raise DatasetError("datasets.csv_columns", n=frame.shape[1], cap=MAX_COLUMNS)
    if len(frame) > MAX_ROWS:
        raise DatasetError("datasets.csv_rows", cap=MAX_ROWS)
    return frame


def csv_columns(data: bytes) -> list[str]:
    """The column names of a CSV (its header), for choosing the target."""
    return [str(c) for c in _read_csv(data, nrows=5).columns]


def decode_csv(data: bytes, target: str, task: str = "regression") -> Tabular:
    """A CSV with a header row -> numeric features and the ``target`` column (a number for regression, a
    class for classification). Non-numeric or incomplete feature columns are refused by name."""
    import pandas as pd

    if task not in TASKS:
        raise DatasetError("datasets.csv_task", task=Code(repr(task)))
    frame = _read_csv(data)
    frame.columns = [str(c) for c in frame.columns]
    if target not in frame.columns:
        raise DatasetError("datasets.csv_target", target=Code(str(target)[:100]),
                           columns=Code(", ".join(frame.columns[:20])))
    if len(frame.columns) < 2:
        raise DatasetError("datasets.csv_no_features")
    features = [c for c in frame.columns if c != target]
    text = [c for c in features if not pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])]
    if text:
        raise DatasetError("datasets.csv_not_numeric", columns=Code(", ".join(text[:10])))
    missing = [c for c in frame.columns if frame[c].isna().any()]
    if missing:
        raise DatasetError("datasets.csv_missing", columns=Code(", ".join(missing[:10])))
    x = frame[features].to_numpy(dtype=np.float64)
    if not np.isfinite(x).all():
        raise DatasetError("datasets.csv_missing", columns=Code(", ".join(c for c in features
                                                                            if not np.isfinite(frame[c]).all())))
    if task == "regression":
        if not pd.api.types.is_numeric_dtype(frame[target]):
            raise DatasetError("datasets.csv_not_numeric", columns=Code(target))
        y = frame[target].to_numpy(dtype=np.float32)
        if len(y) < 10:
            raise DatasetError("datasets.csv_rows_few", n=len(y), least=10)
        return Tabular(x.astype(np.float32), y, features, target, task, [])
    values = frame[target].astype(str).str.strip()
    classes = sorted(values.unique().tolist(), key=lambda v: (len(v), v) if v.isdigit() else (10**9, v))
    _check_classes(len(classes))
    index = {c: i for i, c in enumerate(classes)}
    labels = values.map(index).to_numpy(dtype=np.int64)
    _check_counts(labels, classes)
    return Tabular(x.astype(np.float32), labels, features, target, task, [c[:60] for c in classes])


def register_tabular(tab: Tabular, key: str, source: str, test_fraction: float = 0.2, seed: int = 0,
                     title: str = "", settings: Settings | None = None) -> Registered:
    """Split a decoded CSV (class-balanced for classification, seeded), standardize the features with
    the training rows' statistics, and write it to the lab home as dataset ``key``."""
    settings = settings or load_settings()
    key = userdata.check_key(key)
    if not 0.05 <= test_fraction <= 0.5:
        raise DatasetError("datasets.fractions", test=test_fraction, val=0.0)
    if tab.task == "classification":
        train_idx, test_idx = stratified_split(tab.y, test_fraction, seed)
    else:
        order = np.random.default_rng(seed).permutation(len(tab.y))
        cut = len(order) - max(1, round(len(order) * test_fraction))
        train_idx, test_idx = order[:cut], order[cut:]
    mean = tab.x[train_idx].mean(axis=0)
    std = tab.x[train_idx].std(axis=0)
    std[std < 1e-12] = 1.0
    x = ((tab.x - mean) / std).astype(np.float32)
    meta = {
        "key": key, "id": uuid.uuid4().hex, "title": (title or key)[:80], "kind": "csv", "task": tab.task,
        "source": Path(source).name[:200], "classes": tab.classes, "outputs": len(tab.classes) or 1,
        "input_shape": [len(tab.features)], "features": tab.features, "target": tab.target,
        "train_size": len(train_idx), "test_size": len(test_idx), "val_size": 0, "test_fraction": test_fraction,
        "seed": seed, "feature_mean": mean.tolist(), "feature_std": std.tolist(), "created": time.time(),
    }
    arrays = {"train_x": x[train_idx], "train_y": tab.y[train_idx], "test_x": x[test_idx], "test_y": tab.y[test_idx]}
    _write(settings, key, meta, arrays)
    return Registered(key, meta, [])


def decode_file(data: bytes, filename: str, size: int = 28, channels: int = 1) -> Decoded:
    """An uploaded file by its name: ``.zip`` (ImageFolder) or ``.npz``."""
    lower = filename.lower()
    if lower.endswith(".npz"):
        return decode_npz(data, size, channels)
    if lower.endswith(".zip"):
        return decode_imagefolder(data, size, channels)
    raise DatasetError("datasets.format", name=Code(Path(filename).name[:200]))


# --------------------------------------------------------------------------- checks
def _check_size(data: bytes) -> None:
    if len(data) > MAX_UPLOAD_BYTES:
        raise DatasetError("datasets.file_too_large", mb=len(data) / MB, cap=MAX_UPLOAD_BYTES / MB)
    if not data:
        raise DatasetError("datasets.empty")


def _check_shape_choice(size: int, channels: int) -> None:
    if size not in SIZES or channels not in CHANNELS:
        raise DatasetError("datasets.shape_choice", size=size, channels=channels,
                           sizes=Code(", ".join(map(str, SIZES))))


def _check_classes(k: int) -> None:
    if k < 2:
        raise DatasetError("datasets.one_class", n=k)
    if k > MAX_CLASSES:
        raise DatasetError("datasets.too_many_classes", n=k, cap=MAX_CLASSES)


def _check_counts(labels: np.ndarray, classes: list[str]) -> None:
    counts = np.bincount(labels, minlength=len(classes))
    few = [c for c, n in zip(classes, counts, strict=True) if n < MIN_PER_CLASS]
    if few:
        raise DatasetError("datasets.few_images", classes=Code(", ".join(few[:10])), n=MIN_PER_CLASS)


def _check_stored(n: int, size: int, channels: int) -> None:
    if n * size * size * channels > MAX_STORED_BYTES:
        raise DatasetError("datasets.too_big_resized", n=n, size=size, channels=channels,
                           mb=MAX_STORED_BYTES / MB)


# --------------------------------------------------------------------------- the registry
@dataclass
class Registered:
    key: str
    meta: dict[str, Any]
    notes: list[Message]


def register(decoded: Decoded, key: str, source: str, test_fraction: float = 0.2, val_fraction: float = 0.1,
             seed: int = 0, title: str = "", settings: Settings | None = None) -> Registered:
    """Split ``decoded`` (seeded, class-balanced) and write it to the lab home as dataset ``key``."""
    settings = settings or load_settings()
    key = userdata.check_key(key)
    if not (0.05 <= test_fraction <= 0.5 and 0.0 <= val_fraction <= 0.5):
        raise DatasetError("datasets.fractions", test=test_fraction, val=val_fraction)
    if (userdata.datasets_dir(settings) / key).exists():
        raise DatasetError("datasets.exists", name=Code(key))
    train_idx, test_idx = stratified_split(decoded.labels, test_fraction, seed)
    train_images = decoded.images[train_idx]
    val_size = round(len(train_idx) * val_fraction) if val_fraction else 0
    if val_size:
        val_size = max(val_size, len(decoded.classes))  # at least one per class
    mean, std = pixel_stats(torch.from_numpy(train_images))
    shape = (1, *decoded.images.shape[1:]) if decoded.images.ndim == 3 else tuple(decoded.images.shape[1:])
    meta = {
        "key": key, "id": uuid.uuid4().hex, "title": (title or key)[:80], "kind": decoded.kind,
        "source": Path(source).name[:200], "classes": decoded.classes, "input_shape": [int(d) for d in shape],
        "train_size": len(train_idx), "test_size": len(test_idx), "val_size": val_size,
        "test_fraction": test_fraction, "val_fraction": val_fraction, "seed": seed, "mean": mean, "std": std,
        "created": time.time(),
    }
    _write(settings, key, meta, {"train_images": train_images, "train_labels": decoded.labels[train_idx],
                                 "test_images": decoded.images[test_idx], "test_labels": decoded.labels[test_idx],
                                 "classes": np.asarray(decoded.classes, dtype=str)})
    return Registered(key, meta, decoded.notes)


def _write(settings: Settings, key: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """The dataset's folder, written whole into a temp folder and renamed into place (atomic)."""
    root = userdata.datasets_dir(settings)
    final = root / key
    if final.exists() or final.is_symlink():
        raise DatasetError("datasets.exists", name=Code(key))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub types savez's keywords as bool
    used, cap = _home_bytes(settings.home), settings.max_home_gb * 1e9
    if used + buffer.tell() > cap:
        raise DatasetError("datasets.home_full", used=used / 1e9, need=buffer.tell() / 1e9, cap=cap / 1e9,
                           setting=Code("PYTORCH_LAB_MAX_HOME_GB"))
    root.mkdir(parents=True, exist_ok=True)
    temp = root / f".tmp-{uuid.uuid4().hex}"
    temp.mkdir()
    try:
        (temp / userdata.DATA_FILE).write_bytes(buffer.getvalue())
        (temp / userdata.META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        try:
            os.rename(temp, final)  # atomic; fails when another upload took the name meanwhile
        except OSError:
            raise DatasetError("datasets.exists", name=Code(key)) from None
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)


def _home_bytes(home: Path) -> int:
    """Bytes of the files under the lab home (links not followed), for its ``PYTORCH_LAB_MAX_HOME_GB`` cap."""
    total = 0
    for folder, _dirs, files in os.walk(home):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue
    return total


def add_file(data: bytes, filename: str, key: str, size: int = 28, channels: int = 1, test_fraction: float = 0.2,
             val_fraction: float = 0.1, seed: int = 0, title: str = "", settings: Settings | None = None,
             target: str | None = None, task: str = "regression") -> Registered:
    """Decode, check, (resize,) split and register one uploaded file in one call: a ``.zip`` or ``.npz`` of
    images, or a ``.csv`` with its ``target`` column and ``task``."""
    userdata.check_key(key)
    if userdata.is_user_key(key):
        raise DatasetError("datasets.exists", name=Code(key))
    if filename.lower().endswith(".csv"):
        if not target:
            raise DatasetError("datasets.csv_target", target=Code("-"), columns=Code(", ".join(csv_columns(data)[:20])))
        return register_tabular(decode_csv(data, target, task), key, filename, test_fraction, seed, title, settings)
    decoded = decode_file(data, filename, size, channels)
    return register(decoded, key, filename, test_fraction, val_fraction, seed, title, settings)


def remove(key: str, settings: Settings | None = None) -> None:
    """Delete a registered dataset (its folder in the lab home); runs trained on it stay in the run store."""
    folder = userdata.dataset_folder(key, settings)
    if folder.is_symlink() or not (folder / userdata.META_FILE).is_file():
        raise DatasetError("datasets.unknown", name=Code(key))
    shutil.rmtree(folder)


def summaries(keys: list[str] | None = None, settings: Settings | None = None) -> list[dict[str, Any]]:
    """One row per registered dataset (all, or ``keys``): name, title, input shape, classes and sizes."""
    rows = []
    for key in userdata.list_keys(settings) if keys is None else keys:
        try:
            meta = userdata.read_meta(key, settings)
        except LabError:
            continue
        rows.append({"name": key, "title": meta.get("title", key), "source": meta.get("source", ""),
                     "task": meta.get("task", "classification"),
                     "input_shape": tuple(meta.get("input_shape", ())), "classes": len(meta.get("classes", ())),
                     "train": meta.get("train_size"), "val": meta.get("val_size"), "test": meta.get("test_size")})
    return rows


def page_key(name: str) -> str:
    """A dataset key for a page upload: the learner's name (made a valid key) and a random suffix, so a
    dataset is found by another session only through a link that names it."""
    base = re.sub(r"[^a-z0-9_-]+", "-", name.strip().lower()).strip("-_")[:30] or "data"
    if not base[0].isalnum():
        base = "d" + base
    return f"{base}-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------- a model that fits
def dataset_model(input_shape: tuple[int, ...], classes: int) -> ModelSpec:
    """A small CNN for a learner's image dataset: two conv blocks, global average pooling, one Linear;
    for a table of features (``input_shape`` (F,)), a small MLP: Linear, ReLU, Linear."""
    if len(input_shape) == 1:
        mlp = [{"type": "Linear", "args": {"in_features": int(input_shape[0]), "out_features": 32}},
               {"type": "ReLU", "args": {}},
               {"type": "Linear", "args": {"in_features": 32, "out_features": int(classes)}}]
        return ModelSpec.parse({"name": "DatasetMLP", "input_shape": list(input_shape), "layers": mlp})
    c = int(input_shape[0])
    layers = [
        {"type": "Conv2d", "args": {"in_channels": c, "out_channels": 16, "kernel_size": 3, "padding": 1}},
        {"type": "BatchNorm2d", "args": {"num_features": 16}}, {"type": "ReLU", "args": {}},
        {"type": "MaxPool2d", "args": {"kernel_size": 2}},
        {"type": "Conv2d", "args": {"in_channels": 16, "out_channels": 32, "kernel_size": 3, "padding": 1}},
        {"type": "BatchNorm2d", "args": {"num_features": 32}}, {"type": "ReLU", "args": {}},
        {"type": "AdaptiveAvgPool2d", "args": {"output_size": [1, 1]}}, {"type": "Flatten", "args": {}},
        {"type": "Linear", "args": {"in_features": 32, "out_features": int(classes)}},
    ]
    return ModelSpec.parse({"name": "DatasetCNN", "input_shape": list(input_shape), "layers": layers})

