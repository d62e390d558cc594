"""Facts about the machine the lab runs on (H1): torch, CUDA, CPU threads, fast bf16.

Why bf16 is (not) fast here is a ``core.errors.LabError`` (``fast_bf16_note``, codes ``env.bf16_*``)
so a page shows it in its language; ``fast_bf16_reason`` is the same in English (logs, the CLI).
"""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import torch

from core.errors import Code, LabError


@dataclass(frozen=True)
class EnvFacts:
    torch_version: str
    cuda_available: bool
    cuda_device_count: int
    cuda_device_name: str | None
    cpu_threads: int
    cpu_count: int
    cpu_model: str
    cpu_capability: str
    fast_bf16: bool
    fast_bf16_reason: str
    python_version: str
    fast_bf16_note: LabError  # fast_bf16_reason, for a page to show in its language


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """CPU feature flags from /proc/cpuinfo (empty when unavailable, e.g. macOS)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags") or line.startswith("Features"):
            return set(line.split(":", 1)[1].split())
    return set()


def bf16_note(flags: set[str]) -> tuple[bool, LabError]:
    """Whether bf16 autocast on this CPU is fast (native bf16 units) and why (not), as a coded text."""
    native = sorted(flags & {"avx512_bf16", "amx_bf16"})
    if native:
        return True, LabError("env.bf16_native", flags=Code(", ".join(native)))
    if "avx2" in flags or "avx512f" in flags:
        return False, LabError("env.bf16_emulated")
    return False, LabError("env.bf16_none")


def bf16_support(flags: set[str]) -> tuple[bool, str]:
    """Whether bf16 autocast on this CPU is fast (native bf16 units) and why (not), in English."""
    fast, note = bf16_note(flags)
    return fast, str(note)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def env_facts() -> EnvFacts:
    """The machine's facts; the thread count is read live (the server changes it when it starts jobs)."""
    return replace(_fixed_facts(), cpu_threads=torch.get_num_threads())


@lru_cache(maxsize=1)
def _fixed_facts() -> EnvFacts:
    cuda = torch.cuda.is_available()
    count = torch.cuda.device_count() if cuda else 0
    fast, note = bf16_note(cpu_flags())
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:  # noqa: BLE001 - older builds lack it; it is only informative
        capability = "unknown"
    return EnvFacts(
        torch_version=torch.__version__,
        cuda_available=cuda,
        cuda_device_count=count,
        cuda_device_name=torch.cuda.get_device_name(0) if count else None,
        cpu_threads=torch.get_num_threads(),
        cpu_count=os.cpu_count() or 1,
        cpu_model=_cpu_model(),
        cpu_capability=capability,
        fast_bf16=fast,
        fast_bf16_reason=str(note),
        python_version=platform.python_version(),
        fast_bf16_note=note,
    )
