"""The learner's own datasets on disk: where they live in the lab home and how they are read back.

A dataset registered by the Data page or ``python -m core.datasets add`` is a folder
``$PYTORCH_LAB_HOME/datasets/<key>/`` with ``data.npz`` (uint8 ``train_images`` / ``test_images``:
(N, H, W) grey or (N, 3, H, W) colour; int64 ``train_labels`` / ``test_labels``; ``classes``; or, for a
CSV, standardized float32 ``train_x`` / ``test_x`` and ``train_y`` / ``test_y``)
and ``meta.json`` (title, shapes, sizes, the split's settings). Both are written by
``core.ml.datasets`` only (decoded, checked, resized and split there); this module only finds
and reads them. Keys are short lowercase names (``KEY_PATTERN``), so a key can never name a path
outside the folder. Errors are ``LabError`` codes ``datasets.*``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import Code, LabError
from core.settings import Settings, load_settings

KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")
DATA_FILE, META_FILE = "data.npz", "meta.json"
BUILTIN_NAMES = ("digits8k", "mnist", "fashion_mnist", "linear", "synthetic")  # core.ml.data.DATASETS' keys


def datasets_dir(settings: Settings | None = None) -> Path:
    """The folder of the learner's datasets inside the lab home."""
    return (settings or load_settings()).home / "datasets"


def check_key(key: Any) -> str:
    """A dataset key, or ``LabError`` (a key is a folder name: lowercase letters, digits, ``-`` and ``_``)."""
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise LabError("datasets.bad_name", name=Code(repr(key)[:80]))
    if key in BUILTIN_NAMES:
        raise LabError("datasets.builtin_name", name=Code(key))
    return key


def dataset_folder(key: str, settings: Settings | None = None) -> Path:
    return datasets_dir(settings) / check_key(key)


def is_user_key(key: Any) -> bool:
    """Whether ``key`` names a registered dataset of the lab home (a folder with its meta file)."""
    try:
        folder = dataset_folder(key)
    except LabError:
        return False
    return (folder / META_FILE).is_file() and not folder.is_symlink()


_meta_cache: dict[str, tuple[int, dict[str, Any]]] = {}


def read_meta(key: str, settings: Settings | None = None) -> dict[str, Any]:
    """A registered dataset's meta data (cached while its file is unchanged), or ``LabError``."""
    path = dataset_folder(key, settings) / META_FILE
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        raise LabError("datasets.unknown", name=Code(key)) from None
    cached = _meta_cache.get(str(path))
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise LabError("datasets.damaged", name=Code(key)) from None
    if not isinstance(meta, dict) or meta.get("key") != key:
        raise LabError("datasets.damaged", name=Code(key))
    _meta_cache[str(path)] = (stamp, meta)
    return meta


def list_keys(settings: Settings | None = None) -> list[str]:
    """Every registered dataset's key, sorted."""
    folder = datasets_dir(settings)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir()
                  if KEY_PATTERN.match(p.name) and not p.is_symlink() and (p / META_FILE).is_file())


def read_arrays(key: str, settings: Settings | None = None) -> dict[str, np.ndarray]:
    """The dataset's arrays (no pickles: ``allow_pickle=False``)."""
    path = dataset_folder(key, settings) / DATA_FILE
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (OSError, ValueError, KeyError):
        raise LabError("datasets.damaged", name=Code(key)) from None
