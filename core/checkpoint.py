"""Checkpoints in the tutorials' format, written atomically and loaded safely.

A checkpoint is the tutorials' dict ``{"epoch", "model_state_dict",
"optimizer_state_dict", "loss"}`` plus what the lab needs to resume exactly:
``"config"`` (a plain dict), ``"scheduler_state_dict"``, ``"scaler_state_dict"``,
``"step"``, ``"progress"`` and ``"rng"``. Everything in it is a tensor, dict, list,
tuple, number, string, bool or None, so it loads with ``torch.load(weights_only=True)``.

Writing goes to a temporary file in the same folder, is flushed and fsynced, then moved
over the target with ``os.replace``: a reader sees the old file or the new one, never a
half-written one, even if the writer is killed.

Loading (``load_checkpoint``) only ever uses ``torch.load(weights_only=True)``, checks the
size first (default cap 200 MB) and turns anything that is not a checkpoint into a
``CheckpointError`` with a message a page can show as it is.
"""
from __future__ import annotations

import io
import math
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import torch

DEFAULT_MAX_BYTES = 200 * 1024 * 1024
REQUIRED_KEYS = ("epoch", "model_state_dict", "optimizer_state_dict", "loss")
LAST, BEST = "last.pt", "best.pt"


class CheckpointError(ValueError):
    """A file that is not a valid lab checkpoint (or is too large to load)."""


def max_bytes_from_env(environ: dict[str, str] | None = None) -> int:
    """The size cap: ``PYTORCH_LAB_MAX_CHECKPOINT_MB`` (default 200), at least 1 MB."""
    env = os.environ if environ is None else environ
    try:
        mb = float(env.get("PYTORCH_LAB_MAX_CHECKPOINT_MB", "") or DEFAULT_MAX_BYTES / 1024 / 1024)
    except ValueError:
        mb = DEFAULT_MAX_BYTES / 1024 / 1024
    if not math.isfinite(mb):
        mb = DEFAULT_MAX_BYTES / 1024 / 1024
    return int(max(1.0, mb) * 1024 * 1024)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # e.g. Windows: directories cannot be opened; os.replace is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def save_checkpoint(checkpoint: dict[str, Any], path: str | Path) -> Path:
    """Save a checkpoint dict atomically; it must have the tutorials' four keys."""
    if not isinstance(checkpoint, dict):
        raise CheckpointError("a checkpoint must be a dict")
    missing = [k for k in REQUIRED_KEYS if k not in checkpoint]
    if missing:
        raise CheckpointError(f"a checkpoint needs the keys {', '.join(REQUIRED_KEYS)}; missing {', '.join(missing)}")
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def _size_of(source: str | Path | bytes | bytearray | BinaryIO) -> int:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return len(source)
    if isinstance(source, (str, Path)):
        return os.stat(source).st_size
    pos = source.tell()
    source.seek(0, os.SEEK_END)
    size = source.tell() - pos
    source.seek(pos)
    return size


def _describe(source) -> str:
    return str(source) if isinstance(source, (str, Path)) else "the uploaded file"


def load_checkpoint(source: str | Path | bytes | BinaryIO, max_bytes: int | None = None,
                    map_location: str | torch.device = "cpu", require_keys: bool = True) -> dict[str, Any]:
    """Load a checkpoint with ``torch.load(weights_only=True)`` after a size check.

    ``source`` is a path, the file's bytes (an upload) or a binary file object. Raises
    ``CheckpointError`` for a missing, oversized, corrupt or non-checkpoint file, or one
    holding objects other than tensors and plain containers (which ``weights_only``
    refuses: such a file could run code when unpickled).
    """
    cap = max_bytes_from_env() if max_bytes is None else int(max_bytes)
    where = _describe(source)
    try:
        size = _size_of(source)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {where}") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {where}: {exc.strerror or exc}") from None
    if size > cap:
        raise CheckpointError(f"{where} is {size / 1e6:.1f} MB, over the checkpoint size cap of {cap / 1e6:.1f} MB")
    if size == 0:
        raise CheckpointError(f"{where} is empty, not a PyTorch checkpoint")
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    try:
        obj = torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise CheckpointError(
                f"{where} holds Python objects other than tensors and plain containers; it was refused "
                f"(only weights_only=True loading is allowed). PyTorch says: {first}") from None
        raise CheckpointError(f"{where} is not a valid PyTorch checkpoint: {first}") from None
    except (RuntimeError, zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError, AttributeError,
            TypeError, IndexError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{where} is not a valid PyTorch checkpoint: {first}") from None
    if require_keys:
        check_checkpoint(obj, where)
    return obj


def check_checkpoint(obj: Any, where: str = "the file") -> None:
    """Raise ``CheckpointError`` unless ``obj`` looks like a tutorials'-format checkpoint."""
    if not isinstance(obj, dict):
        kind = "a state_dict (model weights only)" if _is_state_dict(obj) else f"a {type(obj).__name__}"
        raise CheckpointError(f"{where} holds {kind}, not a checkpoint dict with {', '.join(REQUIRED_KEYS)}")
    missing = [k for k in REQUIRED_KEYS if k not in obj]
    if missing:
        hint = " (it looks like a bare model state_dict)" if _is_state_dict(obj) else ""
        raise CheckpointError(f"{where} is missing the checkpoint keys {', '.join(missing)}{hint}")
    if not _is_state_dict(obj["model_state_dict"]):
        raise CheckpointError(f"{where}: model_state_dict must map parameter names to tensors")
    if not isinstance(obj["optimizer_state_dict"], dict):
        raise CheckpointError(f"{where}: optimizer_state_dict must be a dict")
    epoch = obj["epoch"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise CheckpointError(f"{where}: epoch must be a non-negative integer, got {epoch!r}")
    loss = obj["loss"]
    if loss is not None and not isinstance(loss, (int, float)) and not (
            isinstance(loss, torch.Tensor) and loss.numel() == 1):
        raise CheckpointError(f"{where}: loss must be a number, got {type(loss).__name__}")
    if "config" in obj and obj["config"] is not None and not isinstance(obj["config"], dict):
        raise CheckpointError(f"{where}: config must be a dict")


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
