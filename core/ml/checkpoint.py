"""Checkpoints in the tutorials' format, written atomically and loaded safely.

A checkpoint is the tutorials' dict ``{"epoch", "model_state_dict",
"optimizer_state_dict", "loss"}`` plus what the lab needs to resume exactly:
``"config"`` (a plain dict), ``"scheduler_state_dict"``, ``"scaler_state_dict"``,
``"step"``, ``"progress"`` and ``"rng"``; a run that averages its weights adds
``"ema_state_dict"`` (the weights the lab evaluates, predicts and exports with;
``model_state_dict`` stays the trained weights the optimizer state belongs to), and an image
run ``"normalization"`` (the mean and std its splits were normalized with). Everything in it
is a tensor, dict, list, tuple, number, string, bool or None, so it loads with
``torch.load(weights_only=True)``.

Writing goes to a temporary file in the same folder, is flushed and fsynced, then moved
over the target with ``os.replace``: a reader sees the old file or the new one, never a
half-written one, even if the writer is killed (its temp file is removed by the next write).

Loading (``load_checkpoint``) only ever uses ``torch.load(weights_only=True)``, checks the
size first (default cap 200 MB) and turns anything that is not a checkpoint into a
``CheckpointError``: a ``core.errors.LabError`` (code ``checkpoint.*``) that a page shows in its
language.
"""
from __future__ import annotations

import contextlib
import io
import itertools
import os
import pickle
import re
import struct
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch

from core.errors import Code, LabError, Term, first_line, strip_ansi
from core.settings import load_settings

DEFAULT_MAX_BYTES = 200 * 1024 * 1024
REQUIRED_KEYS = ("epoch", "model_state_dict", "optimizer_state_dict", "loss")
LAST, BEST = "last.pt", "best.pt"


class CheckpointError(LabError):
    """A file that is not a valid lab checkpoint (or is too large to load): ``checkpoint.*`` codes."""


def max_bytes_from_env(environ: Mapping[str, str] | None = None) -> int:
    """The size cap: ``PYTORCH_LAB_MAX_CHECKPOINT_MB`` (default 200), at least 1 MB."""
    return load_settings(environ).max_checkpoint_bytes


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


def _pid_dead(pid: int) -> bool:
    """Whether no process has this pid (a reused or unknown pid counts as alive: keep its file)."""
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT there: never guess, keep the file
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError, OverflowError):
        return False
    return False


def _remove_dead_temps(path: Path) -> None:
    """Delete ``path``'s temp files left by writers that died mid-write (e.g. a SIGKILLed worker).

    Temp names carry the writer's pid (``.last.pt.<pid>.<random>.tmp``); only files of this
    target whose writer is gone are removed, so a concurrent live writer is never disturbed.
    Files of other names and other processes' temps are left alone (readers ignore them).
    """
    prefix = f".{path.name}."
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid = name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and _pid_dead(int(pid)):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, replace).

    A writer killed before ``os.replace`` leaves its temp file, never a partial ``path``; the
    next write of ``path`` removes such leftovers first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def save_checkpoint(checkpoint: dict[str, Any], path: str | Path) -> Path:
    """Save a checkpoint dict atomically; it must have the tutorials' four keys."""
    if not isinstance(checkpoint, dict):
        raise CheckpointError("checkpoint.not_a_dict")
    missing = [k for k in REQUIRED_KEYS if k not in checkpoint]
    if missing:
        raise CheckpointError("checkpoint.needs_keys", keys=_keys(REQUIRED_KEYS), missing=_keys(missing))
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
    """How messages name the source: its path (as code), or "the uploaded file" in the page's language."""
    return Code(str(source)) if isinstance(source, (str, Path)) else Term("uploaded_file")


def _keys(names) -> Code:
    return Code(", ".join(names))


def _unpickling_reason(exc: BaseException) -> str:
    """The part of a weights_only refusal that names the cause ("Unsupported global: GLOBAL
    posix.system ..."), without torch's advice to retry with the safe loading switched off or to allow-list
    the global, which is exactly what must not be done with an uploaded file."""
    text = strip_ansi(str(exc))
    found = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    candidates = [found.group(1)] if found else []
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    candidates += [line for line in lines if "GLOBAL" in line]
    candidates += [line for line in lines if not line.startswith(
        ("Weights only load failed", "Please file an issue", "Check the documentation", "(1)", "(2)"))]
    reason = candidates[0].split(". Please use")[0].strip() if candidates else type(exc).__name__
    return reason[:300]


_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # a zip record's local header (30 bytes)
_DATA_DESCRIPTOR = 0x08  # flag bit 3: the sizes follow the data (torch.save writes records so)
# Records a checkpoint may list: torch.save writes one per tensor storage plus a few, so even a
# model at the parameter cap with an optimizer's state stays far below. A forged directory of
# hundreds of thousands of tiny entries would cost zipfile hundreds of MB to read.
MAX_RECORDS = 50_000


def declared_zip_records(fh: BinaryIO) -> int | None:
    """The record count the archive's end-of-directory record declares (zip64 too), or None."""
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    fh.seek(max(0, size - 65_557))  # the end record (22 bytes) plus the longest comment
    tail = fh.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        return None
    count = struct.unpack_from("<H", tail, at + 10)[0]
    at64 = tail.rfind(b"PK\x06\x06", 0, at)
    if at64 >= 0 and at64 + 40 <= len(tail):
        count = max(count, struct.unpack_from("<Q", tail, at64 + 32)[0])
    return count


def _record_span(fh: BinaryIO, info: zipfile.ZipInfo) -> tuple[int, int, bool]:
    """(start, end, agrees): the bytes ``info`` occupies, from its local header to the end of its
    data, read the way torch.load's zip reader reads them (the data starts after the local
    header's own name and extra field), and whether that local header agrees with the central
    directory (same name, stored, same size unless the sizes follow the data)."""
    fh.seek(info.header_offset)
    raw = fh.read(_LOCAL_HEADER.size)
    if len(raw) < _LOCAL_HEADER.size:
        return info.header_offset, info.header_offset + _LOCAL_HEADER.size + info.compress_size, False
    magic, _, flags, method, _, _, _, packed, _, name_len, extra_len = _LOCAL_HEADER.unpack(raw)
    name = fh.read(name_len)
    central = info.filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437", errors="replace")
    sizes_agree = bool(flags & _DATA_DESCRIPTOR) or packed in (info.compress_size, 0xFFFFFFFF)
    agrees = magic == b"PK\x03\x04" and name == central and method == zipfile.ZIP_STORED and sizes_agree
    start = info.header_offset
    return start, start + _LOCAL_HEADER.size + name_len + extra_len + info.compress_size, agrees


def _check_archive(fh: BinaryIO, where: str, cap: int | None = None) -> None:
    """Refuse, before torch.load, zip archives that torch.save never writes.

    torch.save stores its records uncompressed; a compressed record is refused because
    torch.load would inflate it in memory (a 25 MB upload can declare gigabytes: a
    decompression bomb). For the same reason the records must not share bytes: a zip's
    central directory can list any number of records that all point at one stored record,
    and torch.load reads each of them separately (100 aliases of a 20 MB record fill 2 GB).
    So the records' declared sizes must fit in the file (and the size cap), each record's
    local header must agree with the central directory, and no two records may overlap.
    TorchScript archives are named as such: they are never loaded. Anything else that is
    not a readable zip is left to torch.load (legacy format, damage).
    """
    pos = fh.tell()
    records = declared_zip_records(fh)
    fh.seek(pos)
    if records is not None and records > MAX_RECORDS:
        raise CheckpointError("checkpoint.too_many_records", where=where, n=records, max=MAX_RECORDS)
    try:
        with zipfile.ZipFile(fh) as archive:
            infos = archive.infolist()
    except Exception:  # noqa: BLE001 - not a zip Python reads (BadZipFile, NotImplementedError for
        fh.seek(pos)   # a forged "zip version 6.4", ...): torch.load refuses it with its own message
        return
    try:
        names = [info.filename for info in infos]
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            raise CheckpointError("checkpoint.torchscript", where=where)
        if any(info.compress_type != zipfile.ZIP_STORED for info in infos):
            raise CheckpointError("checkpoint.compressed", where=where)
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        outside = next((info for info in infos if not 0 <= info.header_offset < size), None)
        if outside is not None:  # a directory entry pointing before or past the file
            raise CheckpointError("checkpoint.inconsistent", where=where, name=Code(outside.filename))
        spans = sorted((*_record_span(fh, info), info.filename) for info in infos)
        for (_, end, _, first), (start, _, _, second) in itertools.pairwise(spans):
            if start < end:
                raise CheckpointError("checkpoint.overlapping", where=where, first=Code(first), second=Code(second))
        odd_name = next((name for _, _, agrees, name in spans if not agrees), None)
        if odd_name is not None:
            raise CheckpointError("checkpoint.inconsistent", where=where, name=Code(odd_name))
        declared = sum(max(info.file_size, info.compress_size) for info in infos)
        if declared > size or (cap is not None and declared > cap) or (spans and spans[-1][1] > size):
            raise CheckpointError("checkpoint.declares_too_much", where=where, mb=declared / 1e6, size=size / 1e6,
                                  cap=(cap if cap is not None else size) / 1e6)
        odd = next((info for info in infos if info.file_size != info.compress_size), None)
        if odd is not None:  # a stored record holds exactly its bytes
            raise CheckpointError("checkpoint.inconsistent", where=where, name=Code(odd.filename))
    finally:
        fh.seek(pos)


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
        raise CheckpointError("checkpoint.no_file", where=where) from None
    except OSError as exc:
        raise CheckpointError("checkpoint.unreadable", where=where, reason=Code(exc.strerror or str(exc))) from None
    if size > cap:
        raise CheckpointError("checkpoint.too_large", where=where, mb=size / 1e6, cap=cap / 1e6)
    if size == 0:
        raise CheckpointError("checkpoint.empty", where=where)
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    if isinstance(source, (str, Path)):
        try:
            with open(source, "rb") as fh:
                _check_archive(fh, where, cap)
        except OSError as exc:
            raise CheckpointError("checkpoint.unreadable", where=where, reason=Code(exc.strerror or str(exc))) from None
    else:
        _check_archive(source, where, cap)
    try:
        obj = torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = _unpickling_reason(exc)
        if "global" in reason.lower():
            raise CheckpointError("checkpoint.unsafe", where=where, reason=Code(reason)) from None
        raise CheckpointError("checkpoint.not_a_checkpoint", where=where, reason=Code(reason)) from None
    except Exception as exc:  # noqa: BLE001 - damaged bytes make torch.load raise almost anything
        # (RuntimeError, zipfile.BadZipFile, EOFError, KeyError, struct.error from a 1-byte file, ...)
        raise CheckpointError("checkpoint.not_a_checkpoint", where=where, reason=Code(first_line(exc))) from None
    if require_keys:
        check_checkpoint(obj, where)
    return obj


def check_checkpoint(obj: Any, where: str = Term("file")) -> None:
    """Raise ``CheckpointError`` unless ``obj`` looks like a tutorials'-format checkpoint.

    ``where`` names the file in messages: a ``Code`` path, a ``Term`` or plain text.
    """
    if not isinstance(obj, dict):
        if _is_state_dict(obj):
            raise CheckpointError("checkpoint.holds_state_dict", where=where, keys=_keys(REQUIRED_KEYS))
        raise CheckpointError("checkpoint.holds_other", where=where, kind=Code(type(obj).__name__),
                              keys=_keys(REQUIRED_KEYS))
    missing = [k for k in REQUIRED_KEYS if k not in obj]
    if missing:
        code = "checkpoint.missing_keys_state_dict" if _is_state_dict(obj) else "checkpoint.missing_keys"
        raise CheckpointError(code, where=where, missing=_keys(missing))
    if not _is_state_dict(obj["model_state_dict"]):
        raise CheckpointError("checkpoint.bad_model_state", where=where)
    if not isinstance(obj["optimizer_state_dict"], dict):
        raise CheckpointError("checkpoint.bad_optimizer_state", where=where)
    epoch = obj["epoch"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise CheckpointError("checkpoint.bad_epoch", where=where, epoch=Code(repr(epoch)))
    loss = obj["loss"]
    if loss is not None and not isinstance(loss, (int, float)) and not (
            isinstance(loss, torch.Tensor) and loss.numel() == 1):
        raise CheckpointError("checkpoint.bad_loss", where=where, kind=Code(type(loss).__name__))
    if "config" in obj and obj["config"] is not None and not isinstance(obj["config"], dict):
        raise CheckpointError("checkpoint.bad_config", where=where)


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
