"""Lab-wide settings read from environment variables (documented in README.md).

Every setting has a default that works offline on a fresh clone.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
BUNDLED_DIGITS = ASSETS / "mnist_digits_8k.npz"


@dataclass(frozen=True)
class Settings:
    # Where runs, checkpoints and the SQLite run store live.
    home: Path
    # Where torchvision's MNIST / FashionMNIST files are looked for (and downloaded to).
    data_root: Path
    # Try torchvision downloads when the files are not on disk (off: offline machines).
    allow_download: bool
    # Seconds a download attempt may take before the lab gives up and says so.
    download_timeout: float


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    home = Path(env.get("PYTORCH_LAB_HOME") or Path.home() / ".pytorch_lab").expanduser()
    data_root = Path(env.get("PYTORCH_LAB_DATA_ROOT") or home / "data").expanduser()
    try:
        timeout = float(env.get("PYTORCH_LAB_DOWNLOAD_TIMEOUT", "8"))
    except ValueError:
        timeout = 8.0
    timeout = min(max(timeout, 1.0), 120.0)
    return Settings(
        home=home,
        data_root=data_root,
        allow_download=_flag(env.get("PYTORCH_LAB_DOWNLOAD"), True),
        download_timeout=timeout,
    )


def scratch_dir(environ: dict[str, str] | None = None) -> Path:
    """A folder for short-lived work files (export round trips, profiler traces) inside the
    lab home, so the lab writes nowhere else on the machine."""
    folder = load_settings(environ).home / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
