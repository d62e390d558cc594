"""Profile a model with ``torch.profiler`` and return the results as data.

``profile_model`` runs one inference forward, one training step, or N training steps under a
``schedule(wait, warmup, active)``, with ``record_function`` labels ``data``, ``forward``
(``model_inference`` in inference, as in tutorial P1), ``backward`` and ``optimizer_step``.
It returns the ``key_averages`` table as a DataFrame, the top ops, a per-phase breakdown,
memory by operator, and the Chrome trace JSON as bytes (for Perfetto / chrome://tracing).

The caller's model is never changed: profiling (and training) runs on a deep copy.
"""
from __future__ import annotations

import copy
import json
import math
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function, schedule

from core.ml.export import summarize_error
from core.ml.spec import check_input_shape
from core.settings import scratch_dir

MODES = ("inference", "train_step", "train_steps")
MAX_STEPS = 50
MAX_BATCH = 1024
MAX_ROW_LIMIT = 200
DEFAULT_TRACE_CAP_MB = 50.0
MAX_TRACE_CAP_MB = 500.0

# phase -> record_function label
PHASE_LABELS = {"data": "data", "forward": "forward", "backward": "backward", "optimizer": "optimizer_step"}
INFERENCE_LABEL = "model_inference"  # tutorial P1's label for the forward
LABELS = frozenset(PHASE_LABELS.values()) | {INFERENCE_LABEL}

BASE_COLUMNS = ["name", "kind", "calls", "self_cpu_ms", "cpu_total_ms", "cpu_avg_ms"]
CUDA_COLUMNS = ["self_cuda_ms", "cuda_total_ms"]
MEMORY_COLUMNS = ["cpu_mem_mb", "self_cpu_mem_mb"]
CUDA_MEMORY_COLUMNS = ["cuda_mem_mb", "self_cuda_mem_mb"]
SHAPE_COLUMNS = ["input_shapes"]
BREAKDOWN_COLUMNS = ["phase", "label", "calls", "ms", "ms_per_step", "share_pct"]

_MB = 1024 * 1024
_LOCK = threading.Lock()  # torch.profiler is process-wide: one profile at a time
LOCK_TIMEOUT_S = 120


class ProfilingError(RuntimeError):
    """The model failed while being profiled, or another profile is running; the message says which."""


@dataclass
class ProfileConfig:
    """What to profile. Invalid values raise ``ValueError`` when the config is made.

    ``mode``: "inference" (one forward under no_grad, labelled ``model_inference``),
    "train_step" (one step: data, forward + loss, backward, optimizer step) or "train_steps"
    (``steps`` steps under ``schedule(wait, warmup, active)``; only the ``active`` ones are
    recorded). ``steps`` is capped at ``MAX_STEPS`` (50), ``batch_size`` at 1..1024.
    ``group_by_input_shape`` needs ``record_shapes``. ``max_trace_mb`` caps the trace returned.
    """

    mode: str = "inference"
    steps: int = 5
    wait: int = 1
    warmup: int = 1
    active: int = 3
    batch_size: int = 32
    record_shapes: bool = False
    profile_memory: bool = False
    with_stack: bool = False
    group_by_input_shape: bool = False
    row_limit: int = 10
    max_trace_mb: float = DEFAULT_TRACE_CAP_MB

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")

        def whole(name: str, lo: int, hi: int) -> int:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be a whole number, got {value!r}")
            if not lo <= value <= hi:
                raise ValueError(f"{name} must be between {lo} and {hi}, got {value}")
            return value

        if isinstance(self.steps, int) and not isinstance(self.steps, bool) and self.steps > MAX_STEPS:
            raise ValueError(f"at most {MAX_STEPS} steps can be profiled, got {self.steps}: every op of every "
                             f"step is recorded, so long runs make huge, slow traces. Profile fewer steps.")
        whole("steps", 1, MAX_STEPS)
        whole("wait", 0, MAX_STEPS)
        whole("warmup", 0, MAX_STEPS)
        whole("active", 1, MAX_STEPS)
        whole("batch_size", 1, MAX_BATCH)
        whole("row_limit", 1, MAX_ROW_LIMIT)
        if self.mode == "train_steps" and self.wait + self.warmup + self.active > self.steps:
            raise ValueError(f"the schedule needs wait + warmup + active <= steps, got {self.wait} + {self.warmup} "
                             f"+ {self.active} = {self.wait + self.warmup + self.active} > {self.steps}")
        for name in ("record_shapes", "profile_memory", "with_stack", "group_by_input_shape"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.group_by_input_shape and not self.record_shapes:
            raise ValueError("group_by_input_shape needs record_shapes=True (the profiler only knows the input "
                             "shapes of ops when it records them)")
        cap = self.max_trace_mb
        if isinstance(cap, bool) or not isinstance(cap, (int, float)) or not math.isfinite(cap) \
                or not 0 < cap <= MAX_TRACE_CAP_MB:
            raise ValueError(f"max_trace_mb must be a number of megabytes in (0, {MAX_TRACE_CAP_MB:g}], got {cap!r}")

    @property
    def profiled_steps(self) -> int:
        return self.active if self.mode == "train_steps" else 1


def _activities(device: str) -> list[ProfilerActivity]:
    acts = [ProfilerActivity.CPU]
    if device == "cuda":
        acts.append(ProfilerActivity.CUDA)
    return acts


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class _Step:
    """One training step with the phase labels, on a private copy of the model."""

    def __init__(self, model: nn.Module, shape: tuple[int, ...], batch: int, device: str, task: str,
                 num_classes: int, gen: torch.Generator):
        self.model, self.shape, self.batch, self.device, self.gen = model, shape, batch, device, gen
        with torch.no_grad():
            was_training = model.training
            model.eval()
            probe = model(torch.zeros(2, *shape, device=device))
            model.train(was_training)
        if not isinstance(probe, torch.Tensor):
            raise ValueError(f"the model returns {type(probe).__name__}; profiling a training step needs one tensor")
        self.out_shape = tuple(probe.shape[1:])
        if task == "classification" and probe.ndim == 2 and probe.shape[1] >= 2 and probe.is_floating_point():
            self.loss_name = "cross_entropy"
            self.classes = max(2, min(int(num_classes or probe.shape[1]), probe.shape[1]))
            self.loss_fn: nn.Module = nn.CrossEntropyLoss()
        else:
            self.loss_name = "mse"
            self.loss_fn = nn.MSELoss()
        self.optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def data(self) -> tuple[torch.Tensor, torch.Tensor]:
        with record_function(PHASE_LABELS["data"]):
            x = torch.randn(self.batch, *self.shape, generator=self.gen)
            if self.loss_name == "cross_entropy":
                y = torch.randint(0, self.classes, (self.batch,), generator=self.gen)
            else:
                y = torch.randn(self.batch, *self.out_shape, generator=self.gen)
            x, y = x.to(self.device), y.to(self.device)
            _sync(self.device)
        return x, y

    def __call__(self) -> float:
        x, y = self.data()
        with record_function(PHASE_LABELS["forward"]):
            loss = self.loss_fn(self.model(x), y)
            _sync(self.device)
        with record_function(PHASE_LABELS["backward"]):
            loss.backward()
            _sync(self.device)
        with record_function(PHASE_LABELS["optimizer"]):
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            _sync(self.device)
        return float(loss.detach())


def _inference(model: nn.Module, shape: tuple[int, ...], batch: int, device: str, gen: torch.Generator) -> None:
    with torch.no_grad():
        with record_function(PHASE_LABELS["data"]):
            x = torch.randn(batch, *shape, generator=gen).to(device)
        with record_function(INFERENCE_LABEL):
            model(x)
            _sync(device)


def _is_label(name: str) -> bool:
    return name in LABELS or name.startswith("ProfilerStep")


def _events_table(events, *, cuda: bool, memory: bool, shapes: bool) -> pd.DataFrame:
    cols = (BASE_COLUMNS + (CUDA_COLUMNS if cuda else []) + (MEMORY_COLUMNS if memory else [])
            + (CUDA_MEMORY_COLUMNS if cuda and memory else []) + (SHAPE_COLUMNS if shapes else []))
    rows = []
    for e in events:
        calls = int(e.count)
        row: dict[str, Any] = {
            "name": e.key, "kind": "label" if (_is_label(e.key) or getattr(e, "is_user_annotation", False)) else "op",
            "calls": calls, "self_cpu_ms": e.self_cpu_time_total / 1000, "cpu_total_ms": e.cpu_time_total / 1000,
            "cpu_avg_ms": e.cpu_time_total / 1000 / max(1, calls)}
        if cuda:
            row["self_cuda_ms"] = getattr(e, "self_device_time_total", 0) / 1000
            row["cuda_total_ms"] = getattr(e, "device_time_total", 0) / 1000
        if memory:
            row["cpu_mem_mb"] = e.cpu_memory_usage / _MB
            row["self_cpu_mem_mb"] = e.self_cpu_memory_usage / _MB
            if cuda:
                row["cuda_mem_mb"] = getattr(e, "device_memory_usage", 0) / _MB
                row["self_cuda_mem_mb"] = getattr(e, "self_device_memory_usage", 0) / _MB
        if shapes:
            row["input_shapes"] = str(e.input_shapes)
        rows.append(row)
    df = pd.DataFrame(rows, columns=cols)
    return df.sort_values(["self_cpu_ms", "name"], ascending=[False, True], kind="stable").reset_index(drop=True)


def _breakdown(events, mode: str, steps: int, cuda: bool) -> pd.DataFrame:
    by_key: dict[str, Any] = {}
    for e in events:  # with CUDA a label can also appear as a device-side range: keep the CPU one
        if e.key in LABELS and (e.key not in by_key or e.cpu_time_total > by_key[e.key].cpu_time_total):
            by_key[e.key] = e
    phases = ["data", "forward"] if mode == "inference" else list(PHASE_LABELS)
    rows = []
    for phase in phases:
        label = INFERENCE_LABEL if (mode == "inference" and phase == "forward") else PHASE_LABELS[phase]
        e = by_key.get(label)
        ms = e.cpu_time_total / 1000 if e is not None else 0.0
        row = {"phase": phase, "label": label, "calls": int(e.count) if e is not None else 0, "ms": ms,
               "ms_per_step": ms / max(1, steps)}
        if cuda:
            row["cuda_ms"] = getattr(e, "device_time_total", 0) / 1000 if e is not None else 0.0
        rows.append(row)
    df = pd.DataFrame(rows, columns=BREAKDOWN_COLUMNS[:-1] + (["cuda_ms"] if cuda else []))
    total = float(df["ms"].sum())
    df.insert(5, "share_pct", df["ms"] / total * 100 if total > 0 else 0.0)
    return df


def _memory_table(table: pd.DataFrame, cuda: bool) -> pd.DataFrame:
    cols = ["name", "calls"] + MEMORY_COLUMNS + (CUDA_MEMORY_COLUMNS if cuda else [])
    ops = table[table["kind"] == "op"]
    if "input_shapes" in table.columns:
        cols.append("input_shapes")
    mem_cols = MEMORY_COLUMNS + (CUDA_MEMORY_COLUMNS if cuda else [])
    nonzero = ops[(ops[mem_cols].abs() > 0).any(axis=1)]
    return nonzero[cols].sort_values(["self_cpu_mem_mb", "cpu_mem_mb"], ascending=False,
                                     kind="stable").reset_index(drop=True)


def _export_trace(prof, cap_mb: float) -> tuple[bytes | None, int, str]:
    with tempfile.TemporaryDirectory(prefix="lab_trace_", dir=scratch_dir()) as tmp:
        path = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(path)
        size = os.path.getsize(path)
        if size > cap_mb * _MB:
            return None, size, (f"The Chrome trace is {size / _MB:.2f} MB, over the {cap_mb:g} MB cap, so it "
                                f"is not offered for download. Profile fewer active steps or a smaller batch, or turn "
                                f"off record shapes, profile memory and with stack, which all add to the trace.")
        with open(path, "rb") as fh:
            return fh.read(), size, ""


def profile_model(model: nn.Module, input_shape: Sequence[int], config: ProfileConfig, *,
                  task: str = "classification", num_classes: int = 10, seed: int = 0,
                  device: str | None = None) -> dict:
    """Profile ``model`` on random batches of ``input_shape`` (one sample's shape, no batch dim).

    Returns a dict:
      ``table``: the key_averages DataFrame (``group_by_input_shape`` as configured) with columns
        name, kind ("op" or "label" for our record_function labels and ProfilerStep), calls,
        self_cpu_ms, cpu_total_ms, cpu_avg_ms, + self_cuda_ms, cuda_total_ms (CUDA only),
        + cpu_mem_mb, self_cpu_mem_mb (profile_memory; + cuda_mem_mb, self_cuda_mem_mb on CUDA),
        + input_shapes (grouped); sorted by self_cpu_ms, descending.
      ``top``: the ``row_limit`` ops (kind "op") with the most self CPU time, for the bar chart.
      ``breakdown``: phase (data / forward / backward / optimizer; inference has data / forward),
        label, calls, ms (CPU total of the label over the profiled steps), ms_per_step, share_pct
        (+ cuda_ms on CUDA).
      ``memory``: memory by operator (profile_memory only, else None).
      ``trace``: the Chrome trace JSON bytes, or None when over ``config.max_trace_mb``;
      ``trace_size`` (bytes), ``trace_error`` ("" or why the trace is withheld).
      ``steps`` (profiled steps), ``device``, ``activities``, ``mode``, ``loss`` ("cross_entropy",
      "mse" or None), ``warmup_steps`` (unprofiled steps run first), ``wall_seconds``, ``config``.

    Training uses SGD(lr=1e-3, momentum=0.9) and CrossEntropy on random labels when ``task`` is
    "classification" and the output is (N, classes), else MSE against a random target of the
    output's shape.
    """
    if not isinstance(config, ProfileConfig):
        raise ValueError("config must be a ProfileConfig")
    if not isinstance(model, nn.Module):
        raise ValueError(f"expected a torch.nn.Module, got {type(model).__name__}")
    shape = check_input_shape(input_shape)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was asked for but no GPU is available")
    start = time.perf_counter()
    steps = config.profiled_steps
    kwargs = dict(activities=_activities(device), record_shapes=config.record_shapes,
                  profile_memory=config.profile_memory, with_stack=config.with_stack)
    if not _LOCK.acquire(timeout=LOCK_TIMEOUT_S):
        raise ProfilingError("another profile is still running in this server; try again when it has finished")
    try:
        prof, loss_name, warmup_steps = _run(model, shape, config, device, task, num_classes, seed, kwargs)
    except ValueError:
        raise
    except Exception as exc:
        raise ProfilingError(f"the model failed while being profiled: {summarize_error(exc)}") from exc
    finally:
        _LOCK.release()
    return _results(prof, config, device, steps, kwargs, loss_name, warmup_steps, start)


def _run(model, shape, config, device, task, num_classes, seed, kwargs):
    loss_name = None
    warmup_steps = 0
    gen = torch.Generator().manual_seed(int(seed))  # the random batches
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))  # dropout etc., without disturbing the caller's RNG
        m = copy.deepcopy(model).to(device)
        if config.mode == "inference":
            m.eval()
            _inference(m, shape, config.batch_size, device, gen)  # warm-up, not profiled
            warmup_steps = 1
            with profile(**kwargs) as prof:
                _inference(m, shape, config.batch_size, device, gen)
        else:
            m.train()
            step = _Step(m, shape, config.batch_size, device, task, num_classes, gen)
            loss_name = step.loss_name
            if config.mode == "train_step":
                step()  # warm-up, not profiled
                warmup_steps = 1
                with profile(**kwargs) as prof:
                    step()
            else:
                sched = schedule(wait=config.wait, warmup=config.warmup, active=config.active, repeat=1)
                with profile(schedule=sched, **kwargs) as prof:
                    for _ in range(config.steps):  # steps after the active window run unrecorded
                        step()
                        prof.step()
                warmup_steps = config.wait + config.warmup
    return prof, loss_name, warmup_steps


def _results(prof, config, device, steps, kwargs, loss_name, warmup_steps, start) -> dict:
    cuda = device == "cuda"
    events = prof.key_averages(group_by_input_shape=config.group_by_input_shape)
    table = _events_table(events, cuda=cuda, memory=config.profile_memory, shapes=config.group_by_input_shape)
    top = table[table["kind"] == "op"].head(config.row_limit).reset_index(drop=True)
    plain = prof.key_averages() if config.group_by_input_shape else events
    breakdown = _breakdown(plain, config.mode, steps, cuda)
    memory = _memory_table(table, cuda) if config.profile_memory else None
    trace, size, trace_error = _export_trace(prof, config.max_trace_mb)
    return {"table": table, "top": top, "breakdown": breakdown, "memory": memory, "trace": trace,
            "trace_size": size, "trace_error": trace_error, "steps": steps, "device": device,
            "activities": [a.name for a in kwargs["activities"]], "mode": config.mode, "loss": loss_name,
            "warmup_steps": warmup_steps, "wall_seconds": time.perf_counter() - start, "config": asdict(config)}


def trace_is_valid(trace: bytes) -> bool:
    """True when ``trace`` is Chrome trace JSON (an object with a ``traceEvents`` list)."""
    try:
        data = json.loads(trace)
    except (ValueError, TypeError):
        return False
    return isinstance(data, dict) and isinstance(data.get("traceEvents"), list)


# --------------------------------------------------------------------------- figures
def top_ops_figure(top_df: pd.DataFrame, metric: str = "self_cpu_ms", title: str | None = None) -> go.Figure:
    """Horizontal bars of ``metric`` per op, the largest on top."""
    df = top_df.iloc[::-1]
    hover = [c for c in ("calls", "cpu_total_ms", "self_cuda_ms", "input_shapes") if c in df.columns]
    fig = px.bar(df, x=metric, y=df["name"] + ((" " + df["input_shapes"]) if "input_shapes" in df.columns else ""),
                 orientation="h", hover_data=hover, labels={"x": metric, "y": "op", metric: metric})
    fig.update_layout(height=max(240, 28 * len(df) + 80), margin=dict(l=0, r=0, t=30 if title else 10, b=0),
                      title=title, yaxis_title=None)
    return fig


def breakdown_figure(breakdown_df: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Bars of milliseconds per step for each phase (data / forward / backward / optimizer)."""
    df = breakdown_df
    fig = px.bar(df, x="phase", y="ms_per_step", color="phase",
                 text=[f"{p:.0f}%" for p in df["share_pct"]], hover_data=["label", "calls", "ms"])
    fig.update_layout(height=320, margin=dict(l=0, r=0, t=30 if title else 10, b=0), title=title,
                      showlegend=False, yaxis_title="ms per step")
    return fig


# --------------------------------------------------------------------------- tutorial P1
P1_CODE = '''import torch
from torch.profiler import profile, record_function, ProfilerActivity

model.eval()
inputs = torch.randn({batch}, {shape})

activities = [ProfilerActivity.CPU]
if torch.cuda.is_available():
    activities.append(ProfilerActivity.CUDA)

with profile(activities=activities, record_shapes=True) as prof:
    with record_function("model_inference"):
        model(inputs)

print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))
'''


def p1_example(model: nn.Module, input_shape: Sequence[int], batch: int = 5, seed: int = 0) -> dict:
    """Tutorial P1 on ``model``: its code, and the key_averages table it prints, as data.

    Returns ``{"code": str, "table": DataFrame}``: 10 rows sorted by self CPU time (columns as
    in ``profile_model``'s table, with CUDA columns when a GPU is present).
    """
    shape = check_input_shape(input_shape)
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise ValueError(f"batch must be between 1 and {MAX_BATCH}, got {batch!r}")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    m = copy.deepcopy(model).to(device).eval()
    inputs = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(int(seed))).to(device)
    with profile(activities=_activities(device), record_shapes=True) as prof:  # as in P1: no no_grad
        with record_function(INFERENCE_LABEL):
            m(inputs)
    table = _events_table(prof.key_averages(), cuda=device == "cuda", memory=False, shapes=False)
    code = P1_CODE.format(batch=batch, shape=", ".join(map(str, shape)))
    return {"code": code, "table": table.head(10).reset_index(drop=True)}
