"""Helpers shared by the benchmark sections: machine facts, medians, A/B interleaving,
markdown tables and writing ``BENCHMARKS.md``.

The API is small on purpose (other section modules import it):

- ``machine_facts() -> list[str]``: CPU model, cores, ISA capability, torch, threads.
- ``median(values) -> float``
- ``interleave(cases, repeats, warmup=1) -> dict[name, list[float]]``: A/B(/C...) repeats
  in one process, alternating the order each round, so drift of a noisy machine hits all
  sides alike.
- ``md_table(headers, rows) -> str``
- ``Contention()``: a context manager measuring how busy the machine was around a block;
  ``.note()`` is one sentence for a section (a warning when other work competed for cores).
- ``machine_load()``, ``load_text(load)``, ``wait_for_quiet(max_wait_s)``: the load now, as a table
  cell, and waiting for a quiet window before a timing (other work on a shared machine).
- ``update_benchmarks(section, path=BENCHMARKS, heading=None)``: replace one "## " section.
- ``write_benchmarks(sections, path=BENCHMARKS)``: the whole file (header + sections).
"""
from __future__ import annotations

import os
import platform
import re
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from core.ml.checkpoint import atomic_write_bytes
from core.ml.env import cpu_flags, env_facts

ROOT = Path(__file__).resolve().parent.parent

BENCHMARKS = ROOT / "BENCHMARKS.md"
TITLE = "# Benchmarks"


# The vector/matrix extensions that decide conv/GEMM speed, in the order they are listed.
_ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16",
              "amx_int8", "asimd", "sve", "sve2")


def machine_facts() -> list[str]:
    """One line each: the CPU (model, cores, ISA, bf16) and the software (torch, threads)."""
    f = env_facts()
    flags = cpu_flags()
    isa = ", ".join(x for x in _ISA_FLAGS if x in flags) or "not reported"
    return [
        f"CPU: {f.cpu_model} ({f.cpu_count} logical cores, torch CPU capability {f.cpu_capability}, "
        f"fast bf16: {'yes' if f.fast_bf16 else 'no'})",
        f"ISA extensions: {isa}",
        f"torch {f.torch_version} using {torch.get_num_threads()} threads; CUDA: "
        f"{f.cuda_device_name if f.cuda_available else 'none'}; Python {f.python_version}; {platform.system()} "
        f"{platform.machine()}",
    ]


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def interleave(cases: dict[str, Callable[[], float]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Call every case ``warmup + repeats`` times, interleaved; the last ``repeats`` values per case.

    Each callable returns its own measurement (seconds, samples/s, ...). Rounds alternate
    the order (A B, then B A, ...), so a slow phase of a shared machine lands on every side.
    """
    names = list(cases)
    out: dict[str, list[float]] = {n: [] for n in names}
    for i in range(warmup + repeats):
        order = names if i % 2 == 0 else names[::-1]
        for name in order:
            value = cases[name]()
            if i >= warmup:
                out[name].append(float(value))
    return out


def _psi_cpu_some_us() -> int | None:
    """Linux PSI: total µs during which some runnable task waited for a CPU (None where missing)."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return int(line.rsplit("total=", 1)[1])
    except (OSError, IndexError, ValueError):
        return None


class Contention:
    """How busy the machine was around a block of measurements.

    ``pressure`` is the share of the block's wall time during which some runnable task waited
    for a core (Linux pressure-stall information, /proc/pressure/cpu); where that is missing,
    ``load`` is the 1-minute load average per core at the end. Timings taken while other work
    competes for the cores (threads of a parallel op descheduled mid-region) are not the
    machine's speed: ``note()`` says so in the section.
    """

    BUSY_PRESSURE = 0.10  # above this share of waiting time the numbers are marked unreliable

    def __init__(self) -> None:
        self.pressure: float | None = None
        self.load: float | None = None
        self.seconds = 0.0

    def __enter__(self) -> Contention:
        self._t0, self._psi0 = time.perf_counter(), _psi_cpu_some_us()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._t0
        psi1 = _psi_cpu_some_us()
        if self._psi0 is not None and psi1 is not None and self.seconds > 0:
            self.pressure = (psi1 - self._psi0) / 1e6 / self.seconds
        try:
            self.load = os.getloadavg()[0] / (os.cpu_count() or 1)
        except OSError:
            self.load = None

    @property
    def busy(self) -> bool:
        if self.pressure is not None:
            return self.pressure > self.BUSY_PRESSURE
        return self.load is not None and self.load > 1.5

    def note(self) -> str:
        if self.pressure is not None:
            text = (f"Machine during these measurements: some task waited for a core {self.pressure * 100:.0f}% of "
                    "the time (Linux CPU pressure)")
        elif self.load is not None:
            text = f"Machine during these measurements: 1-minute load {self.load:.1f} per core"
        else:
            return ""
        if self.busy:
            return (f"**{text}: other work competed for the cores, so these numbers understate this machine; "
                    "rerun on a quiet machine.**")
        return text + "."


def machine_load() -> dict[str, float | None]:
    """Now: the share of the last 10 s some task waited for a core (Linux PSI ``some avg10``, 0-1)
    and the 1-minute load average per core."""
    psi = None
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        psi = float(first.split("avg10=", 1)[1].split()[0]) / 100
    except (OSError, IndexError, ValueError):
        pass
    try:
        load = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        load = None
    return {"psi10": psi, "load": load}


def load_text(load: dict[str, float | None]) -> str:
    """``machine_load()`` as a table cell: "PSI 3%, load 0.4/core"."""
    parts = []
    if load.get("psi10") is not None:
        parts.append(f"PSI {load['psi10'] * 100:.0f}%")
    if load.get("load") is not None:
        parts.append(f"load {load['load']:.1f}/core")
    return ", ".join(parts) or "n/a"


def is_quiet(load: dict[str, float | None], psi_max: float = 0.10, load_max: float = 0.75) -> bool:
    """Quiet enough to time: little CPU pressure (or, without PSI, a low load average)."""
    if load.get("psi10") is not None:
        return load["psi10"] <= psi_max and (load.get("load") is None or load["load"] <= 1.5)
    return load.get("load") is not None and load["load"] <= load_max


def wait_for_quiet(max_wait_s: float, poll_s: float = 10.0, log: Callable[[str], None] | None = None,
                   sleep: Callable[[float], None] = time.sleep) -> tuple[bool, dict[str, float | None], float]:
    """Wait (up to ``max_wait_s``) for a quiet machine (``is_quiet``): other work on the cores makes a
    timing measure the contention, not the lab. Returns (quiet, the load when it stopped waiting,
    seconds waited)."""
    waited = 0.0
    while True:
        load = machine_load()
        if is_quiet(load) or waited >= max_wait_s:
            return is_quiet(load), load, waited
        if log is not None and waited % 60 < poll_s:
            log(f"machine busy ({load_text(load)}); waiting for a quiet window ({waited:.0f}/{max_wait_s:.0f} s)")
        sleep(poll_s)
        waited += poll_s


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub markdown table; cells are str()-ed, pipes escaped."""
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def heading_of(section: str) -> str:
    first = section.lstrip().splitlines()[0] if section.strip() else ""
    if not first.startswith("## "):
        raise ValueError(f"a section must start with a '## ' heading, got {first[:60]!r}")
    return first


def _section_pattern(heading: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)


def update_benchmarks(section: str, path: Path = BENCHMARKS, heading: str | None = None,
                      after: str | None = None) -> None:
    """Replace the section under ``heading`` (default: the section's own first line) up to the
    next ``## `` heading; a new one goes right after the section headed ``after`` when there is
    one, else at the end. The rest of the file is kept."""
    heading = heading or heading_of(section)
    text = path.read_text() if path.exists() else TITLE + "\n"
    pattern = _section_pattern(heading)
    previous = _section_pattern(after).search(text) if after else None
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip("\n") + "\n\n", text, count=1)
    elif previous is not None:
        text = text[:previous.end()].rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n\n" + \
            text[previous.end():].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    atomic_write_bytes(path, text.rstrip("\n").encode() + b"\n")


def header(command: str = "python -m bench") -> str:
    """The file's header: title, how it was measured, the machine facts once."""
    return "\n".join([TITLE, "", f"Measured by `{command}` on {time.strftime('%Y-%m-%d')}. Every comparison runs both "
                      "sides in one process, interleaved and repeated; the tables give medians.", "",
                      *[f"- {fact}" for fact in machine_facts()], ""])


def write_benchmarks(sections: Sequence[str], path: Path = BENCHMARKS, command: str = "python -m bench") -> None:
    """Write the whole file: the header with the machine facts, then every section in order."""
    body = header(command) + "\n" + "\n\n".join(s.strip("\n") for s in sections)
    atomic_write_bytes(path, body.rstrip("\n").encode() + b"\n")
