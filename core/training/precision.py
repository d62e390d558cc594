"""Devices and precision: the one place that decides autocast dtype and GradScaler."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from core.training.config import DEVICES, PRECISIONS


# --------------------------------------------------------------------------- devices & precision
@dataclass(frozen=True)
class Precision:
    name: str                      # fp32, bf16, fp16
    dtype: torch.dtype | None      # autocast dtype; None = no autocast (plain fp32)
    use_scaler: bool               # GradScaler (fp16 on CUDA)
    autocast_device: str           # device type for torch.autocast
    note: str                      # one sentence for the page / log


def resolve_device(requested: str, local_rank: int = 0) -> torch.device:
    """The torch device for ``auto``/``cpu``/``cuda``/``mps``; ValueError if it is not here."""
    if requested not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {requested!r}")
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if requested == "auto":
        requested = "cuda" if cuda else "mps" if mps else "cpu"
    if requested == "cuda":
        if not cuda:
            raise ValueError("device cuda was asked for but this machine has no usable CUDA GPU; use cpu or auto")
        return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    if requested == "mps":
        if not mps:
            raise ValueError("device mps was asked for but Apple's MPS backend is not available here; use cpu or auto")
        return torch.device("mps")
    return torch.device("cpu")


def auto_precision(device: torch.device | str, facts: Any = None) -> Precision:
    """``precision="auto"``: bf16 autocast where the hardware runs bf16 natively (a CPU with
    AVX512-BF16 or AMX, a CUDA GPU with bf16), else fp32, the honest fallback (emulated bf16 is slower)."""
    dev = torch.device(device).type
    if dev == "cuda" and torch.cuda.is_bf16_supported():
        return Precision("bf16", torch.bfloat16, False, "cuda", "auto -> bf16: CUDA autocast (bf16 supported)")
    if dev == "cpu":
        if facts is None:
            from core.ml.env import env_facts

            facts = env_facts()
        reason = str(getattr(facts, "fast_bf16_reason", ""))
        if getattr(facts, "fast_bf16", False):
            return Precision("bf16", torch.bfloat16, False, "cpu", f"auto -> bf16: CPU autocast ({reason})")
        return Precision("fp32", None, False, dev, f"auto -> fp32: this CPU has no native bf16 ({reason})")
    return Precision("fp32", None, False, dev, f"auto -> fp32 on {dev}")


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def available_devices() -> tuple[str, ...]:
    """The device choices this machine has: auto and cpu always, cuda with a usable CUDA GPU, mps on Apple GPUs."""
    return ("auto", "cpu") + (("cuda",) if torch.cuda.is_available() else ()) + (("mps",) if _mps_available() else ())


def missing_devices() -> tuple[str, ...]:
    """The device choices of the config that this machine does not have (the page says why)."""
    return tuple(d for d in DEVICES if d not in available_devices())


def device_type(requested: str) -> str:
    """cuda, mps or cpu: where ``requested`` (auto, cpu, cuda, mps) trains on this machine (cpu if it is missing)."""
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
    return requested if requested in available_devices() else "cpu"


def available_precisions(requested_device: str, facts: Any = None) -> tuple[str, ...]:
    """The precisions ``select_precision`` accepts on the device ``requested_device`` resolves to here."""
    dev = device_type(requested_device)
    out = []
    for name in PRECISIONS:
        try:
            select_precision(name, dev, facts)
        except ValueError:
            continue
        out.append(name)
    return tuple(out)


def max_processes(requested_device: str) -> int:
    """The most DDP processes worth starting here: one per GPU on CUDA (nccl), one per CPU core on the
    CPU (gloo); MPS has no DDP backend, so 1."""
    import os

    dev = device_type(requested_device)
    if dev == "cuda":
        return max(1, torch.cuda.device_count())
    if dev == "mps":
        return 1
    return max(1, os.cpu_count() or 1)


def select_precision(requested: str, device: torch.device | str, facts: Any = None, force: bool = False) -> Precision:
    """The one place that decides autocast dtype and GradScaler for a precision on a device
    (``auto``: ``auto_precision``).

    ``facts`` is ``core.ml.env.EnvFacts`` (or anything with ``fast_bf16`` and
    ``fast_bf16_reason``); ``force`` allows emulated bf16 on a CPU (slow; for benchmarks).
    """
    dev = torch.device(device).type
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    if requested == "auto":
        return auto_precision(dev, facts)
    if requested == "fp32":
        return Precision("fp32", None, False, dev, "fp32: full precision, no autocast")
    if dev == "cuda":
        if requested == "fp16":
            return Precision("fp16", torch.float16, True, "cuda",
                             "fp16: CUDA autocast with GradScaler (loss scaling against fp16 underflow)")
        if not torch.cuda.is_bf16_supported():
            raise ValueError("bf16 was asked for but this GPU has no bf16 support (pre-Ampere); use fp16 or fp32")
        return Precision("bf16", torch.bfloat16, False, "cuda", "bf16: CUDA autocast; bf16 has fp32's range, no scaler")
    if dev == "mps":
        raise ValueError(f"{requested} on Apple MPS is not supported by the lab yet; use fp32")
    # CPU
    if requested == "fp16":
        raise ValueError("fp16 on the CPU is refused: CPU autocast has no fast fp16 path and GradScaler is a CUDA "
                         "tool. Use fp32, or bf16 on a CPU with native bf16 (AVX512-BF16 or AMX)")
    if facts is None:
        from core.ml.env import env_facts

        facts = env_facts()
    fast = bool(getattr(facts, "fast_bf16", False))
    reason = str(getattr(facts, "fast_bf16_reason", ""))
    if fast:
        return Precision("bf16", torch.bfloat16, False, "cpu", f"bf16: CPU autocast ({reason})")
    if force:
        return Precision("bf16", torch.bfloat16, False, "cpu",
                         f"bf16 forced on a CPU without native bf16 ({reason}): expect it to be 4-6x slower than fp32")
    raise ValueError("bf16 on this CPU is refused: it has no native bf16 (AVX512-BF16 or AMX), so bf16 is emulated "
                     f"and runs 4-6x slower than fp32 ({reason}). Use fp32")
