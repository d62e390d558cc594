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
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import torch
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, model_validator
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function, schedule

from core.errors import Code, LabError
from core.ml.failures import failure
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


class ProfilingError(LabError, RuntimeError):
    """The model failed while being profiled, or another profile is running; the code says which."""


def _whole(lo: int, hi: int) -> Any:
    return Field(strict=True, ge=lo, le=hi)


class ProfileConfig(BaseModel):
    """What to profile, validated once when made: invalid values raise ``LabError`` (a ``ValueError``).

    ``mode``: "inference" (one forward under no_grad, labelled ``model_inference``),
    "train_step" (one step: data, forward + loss, backward, optimizer step) or "train_steps"
    (``steps`` steps under ``schedule(wait, warmup, active)``; only the ``active`` ones are
    recorded). ``steps`` is capped at ``MAX_STEPS`` (50), ``batch_size`` at 1..1024.
    ``group_by_input_shape`` needs ``record_shapes``. ``max_trace_mb`` caps the trace returned.
    Numbers must be ints (``max_trace_mb`` a finite number) and switches bools: nothing is coerced.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["inference", "train_step", "train_steps"] = "inference"
    steps: Annotated[int, _whole(1, MAX_STEPS)] = 5
    wait: Annotated[int, _whole(0, MAX_STEPS)] = 1
    warmup: Annotated[int, _whole(0, MAX_STEPS)] = 1
    active: Annotated[int, _whole(1, MAX_STEPS)] = 3
    batch_size: Annotated[int, _whole(1, MAX_BATCH)] = 32
    record_shapes: StrictBool = False
    profile_memory: StrictBool = False
    with_stack: StrictBool = False
    group_by_input_shape: StrictBool = False
    row_limit: Annotated[int, _whole(1, MAX_ROW_LIMIT)] = 10
    max_trace_mb: Annotated[float, Field(strict=True, gt=0, le=MAX_TRACE_CAP_MB, allow_inf_nan=False)] = \
        DEFAULT_TRACE_CAP_MB

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise _config_error(exc) from None

    @model_validator(mode="after")
    def _fits_together(self) -> ProfileConfig:
        total = self.wait + self.warmup + self.active
        if self.mode == "train_steps" and total > self.steps:
            raise LabError("profile.schedule", wait=self.wait, warmup=self.warmup, active=self.active, total=total,
                           steps=self.steps)
        if self.group_by_input_shape and not self.record_shapes:
            raise LabError("profile.group_needs_shapes")
        return self

    @property
    def profiled_steps(self) -> int:
        return self.active if self.mode == "train_steps" else 1

    @property
    def forward_passes(self) -> int:
        """Forward-pass equivalents of the work a profile runs (a training step is about 3: forward,
        backward, update; inference and one training step run once unrecorded first), for the
        per-request compute cap."""
        if self.mode == "inference":
            return 2
        return 3 * (self.steps if self.mode == "train_steps" else 2)


def _config_error(exc: ValidationError) -> LabError:
    """The first problem pydantic found, in the lab's words (``profile.*`` codes)."""
    error = exc.errors()[0]
    kind, value = error["type"], error.get("input")
    name = str(error["loc"][0]) if error["loc"] else ""
    if kind == "value_error" and isinstance(error.get("ctx", {}).get("error"), LabError):
        return error["ctx"]["error"]  # raised by _fits_together
    if name == "mode":
        return LabError("profile.mode", choices=Code(", ".join(MODES)), value=Code(repr(value)))
    if name == "steps" and kind == "less_than_equal":
        return LabError("profile.too_many_steps", max=MAX_STEPS, steps=value)
    if name == "max_trace_mb":
        return LabError("profile.trace_cap", max=MAX_TRACE_CAP_MB, value=Code(repr(value)))
    if kind == "bool_type":
        return LabError("profile.not_bool", name=Code(name), value=Code(repr(value)))
    if kind in ("greater_than_equal", "less_than_equal"):
        lo, hi = _RANGES[name]
        return LabError("profile.range", name=Code(name), lo=lo, hi=hi, value=value)
    if kind == "int_type":
        return LabError("profile.whole_number", name=Code(name), value=Code(repr(value)))
    if kind == "extra_forbidden":
        return LabError("profile.unknown_option", name=Code(name), choices=Code(", ".join(ProfileConfig.model_fields)))
    return LabError("profile.bad_value", name=Code(name), reason=Code(error["msg"]))


_RANGES = {"steps": (1, MAX_STEPS), "wait": (0, MAX_STEPS), "warmup": (0, MAX_STEPS), "active": (1, MAX_STEPS),
           "batch_size": (1, MAX_BATCH), "row_limit": (1, MAX_ROW_LIMIT)}


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
            raise LabError("profile.output_not_tensor", kind=Code(type(probe).__name__))
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


def _export_trace(prof, cap_mb: float) -> tuple[bytes | None, int, LabError | None]:
    """The Chrome trace's bytes and size, or None and why it is withheld (over ``cap_mb``)."""
    with tempfile.TemporaryDirectory(prefix="lab_trace_", dir=scratch_dir()) as tmp:
        path = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(path)
        size = os.path.getsize(path)
        if size > cap_mb * _MB:
            return None, size, LabError("profile.trace_too_large", mb=size / _MB, cap=cap_mb)
        with open(path, "rb") as fh:
            return fh.read(), size, None


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
      ``trace_size`` (bytes), ``trace_failure`` (None, or a ``LabError`` saying why the trace is
      withheld, for a page to show in its language) and ``trace_error`` (its English text, or "").
      ``steps`` (profiled steps), ``device``, ``activities``, ``mode``, ``loss`` ("cross_entropy",
      "mse" or None), ``warmup_steps`` (unprofiled steps run first), ``wall_seconds``, ``config``
      (the config as a dict).

    Invalid arguments raise ``LabError`` (a ``ValueError``); a model that fails while being
    profiled raises ``ProfilingError`` with ``core.ml.failures``' summary of what went wrong.

    Training uses SGD(lr=1e-3, momentum=0.9) and CrossEntropy on random labels when ``task`` is
    "classification" and the output is (N, classes), else MSE against a random target of the
    output's shape.
    """
    if not isinstance(config, ProfileConfig):
        raise LabError("profile.not_a_config")
    if not isinstance(model, nn.Module):
        raise LabError("profile.not_a_module", kind=Code(type(model).__name__))
    shape = check_input_shape(input_shape)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise LabError("profile.bad_device", device=Code(repr(device)))
    if device == "cuda" and not torch.cuda.is_available():
        raise LabError("profile.no_cuda")
    start = time.perf_counter()
    steps = config.profiled_steps
    kwargs = dict(activities=_activities(device), record_shapes=config.record_shapes,
                  profile_memory=config.profile_memory, with_stack=config.with_stack)
    if not _LOCK.acquire(timeout=LOCK_TIMEOUT_S):
        raise ProfilingError("profile.busy")
    try:
        prof, loss_name, warmup_steps = _run(model, shape, config, device, task, num_classes, seed, kwargs)
    except ValueError:
        raise
    except Exception as exc:
        raise ProfilingError("profile.model_failed", reason=failure(exc)) from exc
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
    trace, size, withheld = _export_trace(prof, config.max_trace_mb)
    return {"table": table, "top": top, "breakdown": breakdown, "memory": memory, "trace": trace,
            "trace_size": size, "trace_failure": withheld, "trace_error": "" if withheld is None else str(withheld),
            "steps": steps, "device": device, "activities": [a.name for a in kwargs["activities"]],
            "mode": config.mode, "loss": loss_name, "warmup_steps": warmup_steps,
            "wall_seconds": time.perf_counter() - start, "config": config.model_dump()}


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
    names = df["name"] + ((" " + df["input_shapes"]) if "input_shapes" in df.columns else "")
    labels = [_short_label(n) for n in names]
    fig = px.bar(df, x=metric, y=labels, orientation="h", hover_data=hover,
                 labels={"x": metric, "y": "op", metric: metric})
    fig.update_traces(hovertext=list(names), hovertemplate="%{hovertext}<br>%{x:.3f}<extra></extra>")
    # Room for the op names: the longest label sets the left margin (automargin alone cut them off).
    longest = max((len(label) for label in labels), default=10)
    fig.update_yaxes(automargin=True, tickfont=dict(size=11))
    fig.update_layout(height=max(240, 28 * len(df) + 80), title=title, yaxis_title=None,
                      margin=dict(l=min(360, 12 + 7 * longest), r=10, t=40 if title else 10, b=0))
    return fig


def _short_label(name: str, limit: int = 48) -> str:
    """An op's name for an axis label: at most ``limit`` characters (the hover shows it whole)."""
    return name if len(name) <= limit else name[:limit - 1] + "…"


def breakdown_figure(breakdown_df: pd.DataFrame, title: str | None = None, y_title: str = "ms per step",
                     x_title: str = "phase") -> go.Figure:
    """Bars of milliseconds per step for each phase (data / forward / backward / optimizer); the axis
    titles come from the page, in its language."""
    df = breakdown_df
    fig = px.bar(df, x="phase", y="ms_per_step", color="phase",
                 text=[f"{p:.0f}%" for p in df["share_pct"]], hover_data=["label", "calls", "ms"])
    fig.update_layout(height=320, margin=dict(l=0, r=0, t=30 if title else 10, b=0), title=title,
                      showlegend=False, yaxis_title=y_title, xaxis_title=x_title)
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

# The tutorial sorts by "cuda_time_total": that needs a GPU; without one, sort by CPU time.
sort_by = "cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
print(prof.key_averages().table(sort_by=sort_by, row_limit=10))
'''


def p1_example(model: nn.Module, input_shape: Sequence[int], batch: int = 5, seed: int = 0) -> dict:
    """Tutorial P1 on ``model``: its code, and the key_averages table it prints, as data.

    Returns ``{"code": str, "table": DataFrame, "sort_by": str}``: 10 rows sorted as the tutorial
    sorts them, by ``cuda_time_total`` (column ``cuda_total_ms``) when a GPU is present, else by
    ``self_cpu_time_total`` (``self_cpu_ms``), since without CUDA every CUDA time is 0. Columns as in
    ``profile_model``'s table, with CUDA columns when a GPU is present.
    """
    shape = check_input_shape(input_shape)
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise LabError("profile.batch_range", max=MAX_BATCH, batch=Code(repr(batch)))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    m = copy.deepcopy(model).to(device).eval()
    inputs = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(int(seed))).to(device)
    # as in P1: no no_grad
    with profile(activities=_activities(device), record_shapes=True) as prof, record_function(INFERENCE_LABEL):
        m(inputs)
    table = _events_table(prof.key_averages(), cuda=device == "cuda", memory=False, shapes=False)
    sort_by, column = ("cuda_time_total", "cuda_total_ms") if device == "cuda" else ("self_cpu_time_total",
                                                                                      "self_cpu_ms")
    table = table.sort_values([column, "name"], ascending=[False, True], kind="stable")
    code = P1_CODE.format(batch=batch, shape=", ".join(map(str, shape)))
    return {"code": code, "table": table.head(10).reset_index(drop=True), "sort_by": sort_by}
