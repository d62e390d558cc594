"""Export a model to every format the tutorials teach, and verify each file before it is offered.

Formats (``FORMATS``, in this order): ``state_dict`` (.pt), ``checkpoint`` (the tutorials'
dict, .pt), ``torch_export`` (.pt2), ``onnx`` (.onnx), then the deprecated
``torchscript_trace`` and ``torchscript_script`` (.pt).

``export_model`` works on a deep copy of the model in ``.eval()`` mode (the caller's model is
never touched), writes the file into a temporary folder, reads it back as bytes, reloads
those bytes (``torch.load(weights_only=True)``, ``torch.jit.load``, onnxruntime,
``torch.export.load``), runs the reloaded model on fresh random inputs (batch 2, and batch 3
when the batch axis is dynamic) and reports the largest absolute difference from eager
PyTorch. Any failure becomes ``ExportResult(ok=False)`` with ``failure`` (a ``LabError`` a page
renders in its language, see ``core.ml.failures``), its English text ``error`` for the results
table, and the full traceback in ``detail``; the other formats are unaffected. Invalid
arguments raise ``LabError`` (a ``ValueError``).

Safety: the only files this module ever deserializes are the ones it has just written
itself. Nothing here loads a user's upload. Every ``torch.load(..., weights_only=True)`` call
is restricted to tensors and plain containers. ``full_model_pickle`` makes the whole-model
pickle of tutorial E1 (``torch.save(model)``) as bytes but never unpickles them: it inspects
them with ``pickletools`` (which reads opcodes and executes nothing) to show what loading
them would import. The Export page does not offer that file: its E1 tab shows the tutorial's
code and why a state_dict is the way to save.
"""
from __future__ import annotations

import collections
import copy
import io
import math
import os
import pickletools
import re
import statistics
import tempfile
import threading
import time
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn

from core.errors import Code, LabError, Message, first_line
from core.ml.failures import describe, failure, summarize_error, traceback_text
from core.ml.spec import check_input_shape
from core.settings import scratch_dir

# --------------------------------------------------------------------------- formats


@dataclass(frozen=True)
class ExportFormat:
    key: str
    label: str
    ext: str  # with the dot
    suffix: str  # added to the model name in the file name ("" for none)
    description: str
    mime: str = "application/octet-stream"


# torch.export and ONNX first: TorchScript (trace, script) is deprecated since PyTorch 2.11 in favour of
# torch.export, and stays offered for runtimes that still load it (LibTorch).
FORMATS: dict[str, ExportFormat] = {f.key: f for f in [
    ExportFormat("state_dict", "state_dict", ".pt", "_state_dict",
                 "The weights only (torch.save(model.state_dict())): the recommended way to save. "
                 "Load with model.load_state_dict(torch.load(path, weights_only=True)) into a model "
                 "built from the same code, then call model.eval()."),
    ExportFormat("checkpoint", "Checkpoint", ".pt", "_checkpoint",
                 "The tutorials' training checkpoint: a dict with epoch, model_state_dict, "
                 "optimizer_state_dict and loss (plus the lab's config), to resume training."),
    ExportFormat("torch_export", "torch.export", ".pt2", "",
                 "torch.export's ExportedProgram: a whole-graph, Python-free program of ATen ops "
                 "(the basis of AOTInductor and ExecuTorch)."),
    ExportFormat("onnx", "ONNX", ".onnx", "",
                 "An ONNX graph for onnxruntime and other runtimes: the torch.export-based (dynamo) "
                 "exporter, falling back to the legacy TorchScript-based exporter."),
    ExportFormat("torchscript_trace", "TorchScript (trace)", ".pt", "_traced",
                 "torch.jit.trace runs the model once on an example and records the ops it saw; "
                 "runs without the Python class (C++ via LibTorch). Data-dependent branches are frozen."),
    ExportFormat("torchscript_script", "TorchScript (script)", ".pt", "_scripted",
                 "torch.jit.script compiles the forward's Python source, keeping control flow; "
                 "only a subset of Python is supported."),
]}
FORMAT_KEYS = tuple(FORMATS)

ONNX_OPSETS = (17, 18, 19, 20)  # offered choices; None means the exporter's default
EXAMPLE_BATCH = 2  # the example batch the exporters see (2 avoids the 0/1 size specialization)
DYNAMIC_CHECK_BATCH = 3  # a second batch size that proves the batch axis is really dynamic
DEFAULT_TOLERANCE = 1e-3  # max |exported - eager|, relative to max(1, max |eager|)
MAX_INPUT_ELEMENTS = 50_000_000

# torch.export / the ONNX exporters keep process-wide tracing state, and warning capture is
# global too: exports run one at a time.
_EXPORT_LOCK = threading.RLock()
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")


@dataclass
class ExportResult:
    format: str
    ok: bool
    filename: str
    data: bytes | None = None  # the file, only when verified (ok)
    size_bytes: int = 0
    seconds: float = 0.0  # export + serialization (including a failed first ONNX attempt)
    max_abs_diff: float | None = None  # over every verification batch
    error: str = ""  # one paragraph in English, for the results table (failure's text)
    detail: str = ""  # the full traceback(s)
    failure: LabError | None = None  # why it failed, for a page to show in its language
    info: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return FORMATS[self.format].label if self.format in FORMATS else self.format

    def row(self) -> dict:
        """A flat row for a summary table."""
        return {"format": self.label, "ok": self.ok, "file": self.filename if self.ok else "",
                "size_kb": round(self.size_bytes / 1024, 1) if self.ok else None,
                "export_s": round(self.seconds, 3), "max_abs_diff": self.max_abs_diff,
                "exporter": self.info.get("exporter", ""),
                "dynamic_batch": self.info.get("dynamic_batch"), "error": self.error}


def results_table(results: Sequence[ExportResult]) -> pd.DataFrame:
    """One row per export: format, ok, file, size_kb, export_s, max_abs_diff, exporter, dynamic_batch, error."""
    return pd.DataFrame([r.row() for r in results],
                        columns=["format", "ok", "file", "size_kb", "export_s", "max_abs_diff", "exporter",
                                 "dynamic_batch", "error"])


# --------------------------------------------------------------------------- helpers
def safe_name(name: str) -> str:
    """``name`` reduced to ``[A-Za-z0-9_-]`` (at most 60 characters), or ``model``."""
    clean = re.sub(r"[^A-Za-z0-9_-]+", "_", str(name or "")).strip("_-")[:60]
    return clean or "model"


def filename_for(fmt: str, name: str = "model") -> str:
    f = FORMATS[fmt]
    return f"{safe_name(name)}{f.suffix}{f.ext}"


def _check_input_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    shape = check_input_shape(input_shape)
    if 64 * math.prod(shape) > MAX_INPUT_ELEMENTS:
        raise LabError("export.input_too_large", shape=Code(str(shape)), n=64 * math.prod(shape))
    return shape


def _check_names(names: Sequence[str], what: str) -> list[str]:
    if isinstance(names, str):
        names = [names]
    names = list(names)
    if not names or any(not isinstance(n, str) or not _NAME_RE.match(n) for n in names):
        raise LabError("export.bad_names", what=what, names=Code(repr(names)))
    if len(set(names)) != len(names):
        raise LabError("export.names_not_unique", what=what, names=Code(repr(names)))
    return names


def _eval_copy(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).cpu().eval()


def _as_list(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        flat: list[torch.Tensor] = []
        for o in out:
            flat.extend(_as_list(o))
        return flat
    if isinstance(out, dict):
        return _as_list(list(out.values()))
    raise LabError("export.output_not_tensor", kind=Code(type(out).__name__))


def _max_diff(got: list[torch.Tensor], want: list[torch.Tensor]) -> float:
    if len(got) != len(want):
        raise LabError("export.output_count", got=len(got), want=len(want))
    diff = 0.0
    for g, w in zip(got, want, strict=False):
        g = torch.as_tensor(g).detach().cpu()
        if tuple(g.shape) != tuple(w.shape):
            raise LabError("export.output_shape", got=Code(str(tuple(g.shape))), want=Code(str(tuple(w.shape))))
        if w.numel():
            diff = max(diff, float((g.double() - w.double()).abs().max()))
    return diff


class _Warnings:
    """Collects warnings raised inside the block (unique first lines) instead of printing them."""

    def __init__(self, into: list[str]):
        self.into = into
        self._cm = warnings.catch_warnings(record=True)

    def __enter__(self):
        self._log = self._cm.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        for w in self._log:
            line = f"{w.category.__name__}: {first_line(str(w.message))}"
            if line not in self.into and len(self.into) < 8:
                self.into.append(line)
        return self._cm.__exit__(*exc)


def _scramble(model: nn.Module) -> None:
    """Overwrite every floating tensor of the model, so a later load_state_dict is really tested."""
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.normal_()


def _count(items) -> dict[str, int]:
    return dict(sorted(collections.Counter(items).items(), key=lambda kv: (-kv[1], kv[0])))


# --------------------------------------------------------------------------- exporters
@dataclass
class _Ctx:
    model: nn.Module  # a .eval() copy that the exporter may use (and mutate)
    fresh: Callable[[], nn.Module]  # another untouched .eval() copy, on demand
    example: torch.Tensor
    dynamic: bool
    opset: int | None
    input_names: list[str]
    output_names: list[str]
    tmp: str
    extra: dict | None
    info: dict


Runner = Callable[[torch.Tensor], Any]
Loader = Callable[[], Runner]  # reloads the written bytes into a runner


def _torch_runner(module: nn.Module) -> Runner:
    def run(x):
        with torch.no_grad():
            return module(x)
    return run


def _export_state_dict(ctx: _Ctx) -> tuple[bytes, Loader]:
    path = os.path.join(ctx.tmp, "model.pt")
    torch.save(ctx.model.state_dict(), path)
    data = _read(path)
    return data, lambda: _load_state_dict_runner(ctx, data)


def _load_state_dict_runner(ctx: _Ctx, data: bytes) -> Runner:
    buf = io.BytesIO(data)
    state = torch.load(buf, map_location="cpu", weights_only=True)
    fresh = copy.deepcopy(ctx.model)
    _scramble(fresh)
    fresh.load_state_dict(state, strict=True)
    ctx.info["tensors"] = len(state)
    ctx.info["keys"] = list(state)[:12]
    ctx.info["loaded_with"] = "torch.load(weights_only=True) + load_state_dict(strict=True)"
    return _torch_runner(fresh.eval())


def _export_checkpoint(ctx: _Ctx) -> tuple[bytes, Loader]:
    extra = dict(ctx.extra or {})
    optimizer_state = extra.pop("optimizer_state_dict", None)
    if optimizer_state is None:  # the tutorials' optimizer, freshly made (no momentum buffers yet)
        optimizer_state = torch.optim.SGD(ctx.model.parameters(), lr=0.001, momentum=0.9).state_dict()
    checkpoint = {"epoch": extra.pop("epoch", 0), "model_state_dict": ctx.model.state_dict(),
                  "optimizer_state_dict": optimizer_state, "loss": extra.pop("loss", None),
                  "config": extra.pop("config", {})}
    checkpoint.update(extra)
    path = os.path.join(ctx.tmp, "checkpoint.pt")
    torch.save(checkpoint, path)
    data = _read(path)

    def load() -> Runner:
        buf = io.BytesIO(data)
        ckpt = torch.load(buf, map_location="cpu", weights_only=True)
        missing = [k for k in ("epoch", "model_state_dict", "optimizer_state_dict", "loss") if k not in ckpt]
        if missing:
            raise LabError("export.checkpoint_lacks", keys=Code(", ".join(missing)))
        opt = ckpt["optimizer_state_dict"]
        if not (isinstance(opt, dict) and "param_groups" in opt and "state" in opt):
            raise LabError("export.not_optimizer_state")
        fresh = copy.deepcopy(ctx.model)
        _scramble(fresh)
        fresh.load_state_dict(ckpt["model_state_dict"], strict=True)
        ctx.info.update(keys=list(ckpt), epoch=ckpt["epoch"], loss=ckpt["loss"],
                        loaded_with="torch.load(weights_only=True) + load_state_dict(strict=True)")
        return _torch_runner(fresh.eval())
    return data, load


def _jit_ops(module) -> dict[str, int]:
    try:
        return _count(n.kind() for n in module.inlined_graph.nodes()
                      if not n.kind().startswith(("prim::Constant", "prim::GetAttr", "prim::ListConstruct")))
    except Exception:  # noqa: BLE001 - op counts are a nicety
        return {}


def _jit_loader(ctx: _Ctx, data: bytes) -> Loader:
    def load() -> Runner:
        # torch.jit.load runs code from the archive: it is ONLY ever given bytes this module
        # has just produced itself in this call, never a file a user uploaded.
        loaded = torch.jit.load(io.BytesIO(data), map_location="cpu")
        loaded.eval()
        ctx.info["op_counts"] = _jit_ops(loaded)
        return _torch_runner(loaded)
    return load


def _export_trace(ctx: _Ctx) -> tuple[bytes, Loader]:
    with torch.no_grad():
        traced = torch.jit.trace(ctx.model, ctx.example)
    path = os.path.join(ctx.tmp, "model_traced.pt")
    traced.save(path)
    data = _read(path)
    return data, _jit_loader(ctx, data)


def _export_script(ctx: _Ctx) -> tuple[bytes, Loader]:
    scripted = torch.jit.script(ctx.model)
    path = os.path.join(ctx.tmp, "model_scripted.pt")
    scripted.save(path)
    data = _read(path)
    return data, _jit_loader(ctx, data)


def _batch_dim():
    return torch.export.Dim("batch", min=1)


def _export_torch_export(ctx: _Ctx) -> tuple[bytes, Loader]:
    ep = None
    if ctx.dynamic:
        try:
            ep = torch.export.export(ctx.model, (ctx.example,), dynamic_shapes=({0: _batch_dim()},))
        except Exception as exc:  # noqa: BLE001 - a constraint violation: retry with a static batch
            ctx.info["dynamic_error"] = summarize_error(exc)
    if ep is None:
        ep = torch.export.export(ctx.model, (ctx.example,))
    ctx.info["dynamic_batch"] = bool(ctx.dynamic and "dynamic_error" not in ctx.info)
    ctx.info["op_counts"] = _count(str(n.target) for n in ep.graph.nodes if n.op == "call_function")
    path = os.path.join(ctx.tmp, "model.pt2")
    torch.export.save(ep, path)
    data = _read(path)

    def load() -> Runner:
        # Only our own just-written bytes are loaded here, never an upload.
        return _torch_runner(torch.export.load(io.BytesIO(data)).module())
    return data, load


def _onnx_session(data: bytes):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])


def _onnx_runner(session) -> Runner:
    name = session.get_inputs()[0].name

    def run(x):
        return [torch.from_numpy(o) for o in session.run(None, {name: x.detach().cpu().numpy()})]
    return run


def _onnx_once(ctx: _Ctx, dynamo: bool) -> bytes:
    path = os.path.join(ctx.tmp, f"model_{'dynamo' if dynamo else 'legacy'}.onnx")
    kwargs: dict[str, Any] = dict(input_names=ctx.input_names, output_names=ctx.output_names,
                                  opset_version=ctx.opset)
    if dynamo:
        kwargs.update(dynamo=True, verbose=False, external_data=False, artifacts_dir=ctx.tmp)
        if ctx.dynamic:
            kwargs["dynamic_shapes"] = ({0: _batch_dim()},)
    else:
        kwargs.update(dynamo=False)
        if ctx.dynamic:
            kwargs["dynamic_axes"] = {**{n: {0: "batch"} for n in ctx.input_names},
                                      **{n: {0: "batch"} for n in ctx.output_names}}
    with torch.no_grad():
        torch.onnx.export(ctx.model, (ctx.example,), path, **kwargs)
    return _read(path)


def _onnx_inspect(ctx: _Ctx, data: bytes) -> None:
    import onnx
    proto = onnx.load_model_from_string(data)
    onnx.checker.check_model(proto, full_check=True)
    ctx.info["checker"] = "ok"
    ctx.info["opset"] = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    ctx.info["ir_version"] = proto.ir_version

    def ops(graph):
        for node in graph.node:
            yield node.op_type
            for attr in node.attribute:  # Loop / If / Scan bodies
                if attr.type == onnx.AttributeProto.GRAPH:
                    yield from ops(attr.g)
                for g in attr.graphs:
                    yield from ops(g)
    ctx.info["op_counts"] = _count(ops(proto.graph))
    ctx.info["nodes"] = sum(ctx.info["op_counts"].values())

    def dims(value_info):
        return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]
    ctx.info["inputs"] = {v.name: dims(v) for v in proto.graph.input}
    ctx.info["outputs"] = {v.name: dims(v) for v in proto.graph.output}
    first: list = next(iter(ctx.info["inputs"].values()), [])
    ctx.info["dynamic_batch"] = bool(first) and isinstance(first[0], str)


def _export_onnx(ctx: _Ctx, verify: Callable[[Runner], float]) -> tuple[bytes, Loader]:
    try:
        t0 = time.perf_counter()
        data = _onnx_once(ctx, dynamo=True)
        ctx.info["dynamo_seconds"] = round(time.perf_counter() - t0, 3)
        _onnx_inspect(ctx, data)
        verify(_onnx_runner(_onnx_session(data)))  # a wrong or unloadable file counts as a failure too
        ctx.info["exporter"] = "dynamo"
    except Exception as exc:  # noqa: BLE001 - any dynamo failure: fall back to the legacy exporter
        ctx.info["dynamo_error"] = summarize_error(exc)
        ctx.info["dynamo_failure"] = failure(exc)
        ctx.info["dynamo_detail"] = traceback_text(exc)
        for key in ("checker", "opset", "ir_version", "op_counts", "nodes", "inputs", "outputs", "dynamic_batch"):
            ctx.info.pop(key, None)
        ctx.model = ctx.fresh()  # the failed attempt may have left export state on the old copy
        data = _onnx_once(ctx, dynamo=False)
        _onnx_inspect(ctx, data)
        ctx.info["exporter"] = "legacy"
    return data, lambda: _onnx_runner(_onnx_session(data))


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


# --------------------------------------------------------------------------- public API
def export_model(model: nn.Module, input_shape: Sequence[int], fmt: str, *, name: str = "model",
                 opset: int | None = None, dynamic_batch: bool = True,
                 input_names: Sequence[str] = ("input",), output_names: Sequence[str] = ("output",),
                 seed: int = 0, checkpoint_extra: dict | None = None,
                 tolerance: float = DEFAULT_TOLERANCE) -> ExportResult:
    """Export ``model`` to ``fmt`` (a key of ``FORMATS``), reload the bytes and verify them.

    ``input_shape`` is one sample's shape, without the batch dimension. The exporters see a
    random batch of ``EXAMPLE_BATCH`` (2); verification uses fresh random batches of 2 and,
    when the batch axis is dynamic, 3. ``ok`` is True only when the file was written, reloaded,
    ran on every verification batch with eager's output shapes, and stayed within
    ``tolerance * max(1, max|eager|)`` of eager; ``data`` is set only then.

    Invalid arguments (unknown format, bad shape, names or opset) raise ``LabError`` (a
    ``ValueError``); anything that goes wrong while exporting or verifying is returned as
    ``ok=False`` with ``failure`` (and its English text ``error``).
    ``checkpoint_extra`` may give the checkpoint's ``epoch``, ``loss``, ``optimizer_state_dict``
    and ``config`` (plain values only: the file must load with ``weights_only=True``).
    """
    if fmt not in FORMATS:
        raise LabError("export.unknown_format", format=Code(repr(fmt)), choices=Code(", ".join(FORMATS)))
    shape = _check_input_shape(input_shape)
    in_names = _check_names(input_names, "input_names")
    out_names = _check_names(output_names, "output_names")
    if len(in_names) != 1:
        raise LabError("export.one_input")
    if opset is not None and (isinstance(opset, bool) or not isinstance(opset, int) or not 7 <= opset <= 30):
        raise LabError("export.bad_opset", opset=Code(repr(opset)))
    if not isinstance(model, nn.Module):
        raise LabError("export.not_a_module", kind=Code(type(model).__name__))

    result = ExportResult(format=fmt, ok=False, filename=filename_for(fmt, name))
    info: dict[str, Any] = {"warnings": []}
    result.info = info
    gen = torch.Generator().manual_seed(int(seed))
    example = torch.randn(EXAMPLE_BATCH, *shape, generator=gen)
    batches = [EXAMPLE_BATCH] + ([DYNAMIC_CHECK_BATCH] if dynamic_batch else [])
    checks = [torch.randn(b, *shape, generator=gen) for b in batches]
    info["verified_batches"] = batches
    stage = "preparing"  # the step that failed names the failure: "export.failed.<stage>"
    t0: float | None = None
    try:
        with _EXPORT_LOCK, _Warnings(info["warnings"]):
            eager = _eval_copy(model)
            stage = "eager"
            with torch.no_grad():
                refs = [[t.detach().clone() for t in _as_list(eager(x))] for x in checks]
            scale = max([1.0] + [float(t.abs().max()) for r in refs for t in r if t.numel()])
            limit = tolerance * scale

            def verify(run: Runner) -> float:
                worst = 0.0
                static = info.get("dynamic_batch") is False  # e.g. torch.export fell back to a static batch
                info["verified_batches"] = [b for b in batches if not static or b == EXAMPLE_BATCH]
                for x, ref in zip(checks, refs, strict=False):
                    if static and x.shape[0] != EXAMPLE_BATCH:
                        continue
                    try:
                        got = _as_list(run(x.clone()))
                    except Exception as exc:
                        raise LabError("export.batch_failed", batch=int(x.shape[0]), reason=describe(exc)) from exc
                    worst = max(worst, _max_diff(got, ref))
                if not math.isfinite(worst) or worst > limit:
                    raise LabError("export.outputs_differ", diff=worst, allowed=limit)
                return worst

            with tempfile.TemporaryDirectory(prefix="lab_export_", dir=scratch_dir()) as tmp:
                ctx = _Ctx(model=_eval_copy(model), fresh=lambda: _eval_copy(model), example=example,
                           dynamic=bool(dynamic_batch), opset=opset, input_names=in_names, output_names=out_names,
                           tmp=tmp, extra=checkpoint_extra, info=info)
                stage = "exporting"
                t0 = time.perf_counter()
                if fmt == "onnx":
                    data, load = _export_onnx(ctx, verify)
                else:
                    data, load = {"state_dict": _export_state_dict, "checkpoint": _export_checkpoint,
                                  "torchscript_trace": _export_trace, "torchscript_script": _export_script,
                                  "torch_export": _export_torch_export}[fmt](ctx)
                result.seconds = time.perf_counter() - t0
                result.size_bytes = len(data)
                stage = "verifying"
                t1 = time.perf_counter()
                result.max_abs_diff = verify(load())
                info["verify_seconds"] = round(time.perf_counter() - t1, 3)
        info.setdefault("dynamic_batch", bool(dynamic_batch) if fmt not in ("state_dict", "checkpoint") else True)
        result.ok, result.data = True, data
    except Exception as exc:  # noqa: BLE001 - every exporter failure is reported, never raised
        if not result.seconds and t0 is not None:
            result.seconds = time.perf_counter() - t0
        result.failure = LabError(f"export.failed.{stage}", format=FORMATS[fmt].label,
                                  reason=failure(exc, fmt if stage == "exporting" else None))
        result.detail = traceback_text(exc)
        if info.get("dynamo_failure") is not None:
            result.failure = LabError("export.dynamo_failed_first", error=result.failure, dynamo=info["dynamo_failure"])
            result.detail = info.get("dynamo_detail", "") + "\n\n" + result.detail
        result.error = str(result.failure)
        result.ok, result.data = False, None
    info.pop("dynamo_detail", None)
    info.pop("dynamo_failure", None)
    return result


def export_all(model: nn.Module, input_shape: Sequence[int], formats: Sequence[str] = FORMAT_KEYS,
               **kw) -> list[ExportResult]:
    """``export_model`` for every format in order; one failing never stops the others."""
    return [export_model(model, input_shape, fmt, **kw) for fmt in formats]


# --------------------------------------------------------------------------- full-model pickle
FULL_PICKLE_NOTE = (
    "torch.save(model) pickles the whole object: the file records the import path of every class "
    "(for example core.ml.modules.SpecModel) and loading it imports and calls them. It only loads where "
    "the same code exists at the same path, breaks when the code moves, and a pickle from someone "
    "else can run any code on your machine. Since PyTorch 2.6, torch.load uses weights_only=True and "
    "refuses such files. Save model.state_dict() instead and rebuild the model from code.")


def full_model_pickle(model: nn.Module, *, name: str = "model") -> ExportResult:
    """Tutorial E1's ``torch.save(model)`` as bytes, to show what such a file holds and why it is discouraged.

    The Export page does not offer it (see the module doc). The bytes are never unpickled:
    ``info`` lists the globals the pickle would import (read with ``pickletools``, which executes
    nothing), what ``torch.load(weights_only=True)`` says about it, and ``verified: False``;
    ``max_abs_diff`` stays None. The state_dict format is the verified way to save weights.
    """
    fname = f"{safe_name(name)}_full_model.pt"
    result = ExportResult(format="full_model", ok=False, filename=fname,
                          info={"verified": False, "note": FULL_PICKLE_NOTE, "warnings": []})
    try:
        with _EXPORT_LOCK, _Warnings(result.info["warnings"]):
            buf = io.BytesIO()
            t0 = time.perf_counter()
            torch.save(_eval_copy(model), buf)
            result.seconds = time.perf_counter() - t0
            data = buf.getvalue()
            result.info["globals"] = pickle_globals(data)
            try:
                buf = io.BytesIO(data)
                torch.load(buf, map_location="cpu", weights_only=True)
                result.info["weights_only_load"] = "accepted"
            except Exception as exc:  # noqa: BLE001 - expected: the safe loader refuses arbitrary classes
                result.info["weights_only_load"] = f"refused: {first_line(exc)}"
        result.ok, result.data, result.size_bytes = True, data, len(data)
    except Exception as exc:  # noqa: BLE001 - reported in the result, never raised
        result.failure = LabError("export.pickle_failed", reason=failure(exc))
        result.error = str(result.failure)
        result.detail = traceback_text(exc)
    return result


def pickle_globals(data: bytes) -> list[str]:
    """``module.name`` of every global a torch.save file's pickle references, read without unpickling."""
    found: set[str] = set()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        pkl = next(n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl")
        raw = zf.read(pkl)
    strings: list[str] = []
    for op, arg, _pos in pickletools.genops(raw):
        if op.name in ("GLOBAL", "INST") and isinstance(arg, str):
            found.add(arg.replace(" ", "."))
        elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE") and isinstance(arg, str):
            strings.append(arg)
        elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
            found.add(f"{strings[-2]}.{strings[-1]}")
    return sorted(found)


# --------------------------------------------------------------------------- speed table
_RUNTIMES = {"torchscript_trace": "TorchScript (trace)", "torchscript_script": "TorchScript (script)",
             "onnx": "ONNX Runtime", "torch_export": "torch.export module"}


def _runner_for(result: ExportResult) -> Runner:
    data = result.data or b""
    if result.format in ("torchscript_trace", "torchscript_script"):
        # Our own verified bytes from export_model, never an upload.
        module = torch.jit.load(io.BytesIO(data), map_location="cpu")
        return _torch_runner(module.eval())
    if result.format == "onnx":
        return _onnx_runner(_onnx_session(data))
    if result.format == "torch_export":
        return _torch_runner(torch.export.load(io.BytesIO(data)).module())
    raise ValueError(result.format)


def _time(run: Runner, x: torch.Tensor, repeats: int, budget: float) -> tuple[float, int]:
    run(x)  # warm-up (TorchScript's profiling executor optimizes on the first calls)
    start = time.perf_counter()
    times: list[float] = []
    while len(times) < repeats:
        t0 = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > budget and len(times) >= 1:
            break
    return statistics.median(times) * 1000, len(times)


def speed_table(model: nn.Module, input_shape: Sequence[int], results: Sequence[ExportResult],
                batches: Sequence[int] = (1, 64), repeats: int = 20, budget_seconds: float = 3.0,
                seed: int = 0) -> pd.DataFrame:
    """Median latency of eager PyTorch vs each verified TorchScript / ONNX / torch.export file.

    Measured now, on this machine: one warm-up call, then up to ``repeats`` timed calls per
    (runtime, batch) cell, stopping early when the cell's share of ``budget_seconds`` is used.
    Columns: format, runtime, batch, median_ms, per_sample_ms, runs, speedup_vs_eager
    (eager median / this median), note (a ``core.errors.Message`` or None). Files exported with a
    static batch are not run at other batch sizes: their row says so and has no time. state_dict
    and checkpoint files run as eager.
    """
    shape = _check_input_shape(input_shape)
    if not batches or any(isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= 1024 for b in batches):
        raise LabError("export.bad_batches", batches=Code(repr(batches)))
    if not 1 <= int(repeats) <= 1000 or not 0 < budget_seconds <= 120:
        raise LabError("export.bad_timing")
    runnable = [r for r in results if r.ok and r.data and r.format in _RUNTIMES]
    gen = torch.Generator().manual_seed(int(seed))
    inputs = {b: torch.randn(b, *shape, generator=gen) for b in batches}
    cell_budget = budget_seconds / max(1, (1 + len(runnable)) * len(batches))
    rows: list[dict] = []
    eager_ms: dict[int, float] = {}

    def add(fmt, runtime, b, ms=float("nan"), runs=0, note: Message | None = None):
        rows.append({"format": fmt, "runtime": runtime, "batch": b, "median_ms": ms,
                     "per_sample_ms": ms / b if ms == ms else float("nan"), "runs": runs,
                     "speedup_vs_eager": (eager_ms.get(b, float("nan")) / ms) if ms == ms and ms > 0 else float("nan"),
                     "note": note})

    with _EXPORT_LOCK, warnings.catch_warnings():  # one timing at a time, or they disturb each other
        warnings.simplefilter("ignore")
        eager = _torch_runner(_eval_copy(model))
        for b in batches:
            try:
                ms, runs = _time(eager, inputs[b], repeats, cell_budget)
                eager_ms[b] = ms
                add("eager", "PyTorch eager", b, ms, runs)
            except Exception as exc:  # noqa: BLE001 - a cell of the table says why it has no time
                add("eager", "PyTorch eager", b, note=Message("export.note.failed", reason=Code(summarize_error(exc))))
        for r in runnable:
            try:
                run = _runner_for(r)
            except Exception as exc:  # noqa: BLE001 - the format's cells say why they have no time
                for b in batches:
                    add(r.format, _RUNTIMES[r.format], b,
                        note=Message("export.note.unloadable", reason=Code(summarize_error(exc))))
                continue
            dynamic = r.info.get("dynamic_batch", False)
            for b in batches:
                if not dynamic and b != EXAMPLE_BATCH:
                    add(r.format, _RUNTIMES[r.format], b, note=Message("export.note.static", batch=EXAMPLE_BATCH, b=b))
                    continue
                try:
                    ms, runs = _time(run, inputs[b], repeats, cell_budget)
                    add(r.format, _RUNTIMES[r.format], b, ms, runs)
                except Exception as exc:  # noqa: BLE001 - a cell of the table says why it has no time
                    add(r.format, _RUNTIMES[r.format], b,
                        note=Message("export.note.failed", reason=Code(summarize_error(exc))))
    table = pd.DataFrame(rows, columns=["format", "runtime", "batch", "median_ms", "per_sample_ms", "runs",
                                        "speedup_vs_eager", "note"])
    table.attrs["torch_threads"] = torch.get_num_threads()  # timings depend on it (and on other load)
    return table


TORCHSCRIPT_DEPRECATED_IN = "2.11"  # PyTorch's release that deprecated TorchScript in favour of torch.export


def torchscript_warning() -> str | None:
    """What this PyTorch says when ``torch.jit.trace`` runs (its deprecation warning), or None when
    it says nothing: traced on a tiny model, the warning captured, not printed."""
    with _EXPORT_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.jit.trace(nn.Linear(2, 1).eval(), torch.zeros(1, 2))
    texts = [str(w.message) for w in caught if "deprecat" in str(w.message).lower()]
    return first_line(texts[0]) if texts else None


# --------------------------------------------------------------------------- tutorial code
def saving_examples_code(input_shape: Sequence[int] = (1, 28, 28), name: str = "model") -> dict[str, str]:
    """Copy-ready code of tutorials E1 (state_dict vs whole model), E2 (TorchScript), E3 (ONNX)
    and the torch.export equivalent, for a model with one sample of ``input_shape``."""
    shape = ", ".join(str(int(s)) for s in _check_input_shape(input_shape))
    n = safe_name(name)
    e1 = f'''import torch

# model = ...  (an nn.Module built from your code)

# Recommended: save only the weights (the state_dict).
torch.save(model.state_dict(), "{n}_weights.pth")

# Loading: build the same architecture from code, then load the weights into it.
model.load_state_dict(torch.load("{n}_weights.pth", weights_only=True))
model.eval()  # dropout off, batch norm uses its running statistics

# Also possible, but discouraged: pickle the whole model object.
torch.save(model, "{n}_full.pth")
# The file stores the import path of your model's class, so it only loads where the same
# code sits at the same path, and unpickling a file can run arbitrary code. Since PyTorch 2.6
# loading defaults to weights_only=True, which refuses such a file with an UnpicklingError.
# Only ever unpickle whole models that you saved yourself; share state_dicts instead.
'''
    e2 = f'''import torch

# TorchScript is deprecated since PyTorch 2.11: prefer torch.export (below, "torch_export") or ONNX (E3).
# It still runs, with a FutureWarning, for runtimes that load TorchScript files (LibTorch).
model.eval()
example = torch.randn(1, {shape})

# Trace: run the model once and record the ops it executed.
traced = torch.jit.trace(model, example)
traced.save("{n}_traced.pt")

# Script: compile the forward's Python source (keeps if/for control flow).
scripted = torch.jit.script(model)
scripted.save("{n}_scripted.pt")

# torch.jit.load runs code from the archive: only load files you made yourself.
loaded = torch.jit.load("{n}_traced.pt")
with torch.no_grad():
    torch.testing.assert_close(loaded(example), model(example))
'''
    e3 = f'''import numpy as np
import onnxruntime as ort
import torch

model.eval()
example = torch.randn(1, {shape})
torch.onnx.export(
    model, (example,), "{n}.onnx",
    input_names=["input"], output_names=["output"],
    dynamic_shapes=({{0: torch.export.Dim("batch")}},),  # any batch size
    external_data=False,  # keep the weights inside the .onnx file
)

session = ort.InferenceSession("{n}.onnx", providers=["CPUExecutionProvider"])
onnx_out = session.run(None, {{"input": example.numpy()}})[0]
with torch.no_grad():
    np.testing.assert_allclose(onnx_out, model(example).numpy(), atol=1e-4)
'''
    pt2 = f'''import torch

model.eval()
example = torch.randn(2, {shape})
program = torch.export.export(model, (example,), dynamic_shapes=({{0: torch.export.Dim("batch")}},))
torch.export.save(program, "{n}.pt2")

loaded = torch.export.load("{n}.pt2").module()  # only load files you made yourself
with torch.no_grad():
    torch.testing.assert_close(loaded(example), model(example))
'''
    return {"E1": e1, "E2": e2, "E3": e3, "torch_export": pt2}
