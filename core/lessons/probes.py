"""Probes: the computations whose results lessons and prediction prompts ask about, run in real PyTorch.

A lesson file never states a number that PyTorch computes. It names a probe and its
arguments (``compute = { probe = "grad", args = { expr = "x**3 + 5*x", vars = { x = "tensor(2.)" } } }``)
and the probe computes the value when the answer is checked. Expressions in probe arguments
(and every expression a learner types) go through ``core.safe.expr.evaluate`` only.

Each probe has a pydantic model of its arguments (``PROBES[name].args``), checked when a
lesson file is loaded, and a function that takes the validated arguments and returns a plain
value: a number, a list, a shape (tuple), a string, a bool, a tensor, or ``ERROR`` when the
probe was asked to show that PyTorch refuses the operation. Randomness is seeded inside
``torch.random.fork_rng`` so a probe never moves the caller's random state.
"""
from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from torch import nn

from core.errors import Code, LabError, first_line
from core.ml.failures import describe
from core.ml.modules import build_model, infer_shapes, parameter_count
from core.ml.spec import ModelSpec
from core.ml.zoo import PRESETS, preset_spec
from core.safe.allowlist import ExprError
from core.safe.expr import check, evaluate


class _Error:
    """The value of a probe that shows PyTorch refusing an operation (a shape answer "error")."""

    _instance: _Error | None = None

    def __new__(cls) -> _Error:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ERROR"


ERROR: Any = _Error()
MAX_VALUES = 64  # numbers a number answer may hold


def reason(exc: BaseException) -> LabError | Code:
    """An exception as a message parameter: a LabError as itself, the safe evaluator's refusal as its
    message, anything else as ``Type: first line`` (code)."""
    if isinstance(exc, ExprError) and not isinstance(exc, LabError):
        return Code(first_line(exc, limit=300))
    return describe(exc)


# --------------------------------------------------------------------------- helpers
@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run with torch's CPU generator seeded, restoring the caller's random state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def check_expression(text: str, names: list[str]) -> None:
    """The static check of a lab-authored expression (at load time): refused text is a LabError."""
    try:
        check(text, names)
    except ExprError as exc:
        raise LabError("lessons.bad_expression", expr=Code(text), reason=reason(exc)) from None


def run_expression(text: str, variables: Mapping[str, object]) -> object:
    """Evaluate a lab-authored expression through the safe evaluator; failures are LabErrors."""
    try:
        return evaluate(text, variables)
    except ExprError as exc:
        raise LabError("lessons.expression_failed", expr=Code(text), reason=reason(exc)) from None


def make_vars(definitions: Mapping[str, str], seed: int = 0) -> dict[str, object]:
    """Variables from safe expressions, evaluated in order (each may use the ones before it), seeded."""
    out: dict[str, object] = {}
    with seeded(seed):
        for name, text in definitions.items():
            out[name] = run_expression(text, out)
    return out


def resolve_model(model: str | dict | ModelSpec) -> ModelSpec:
    """A model given as a zoo preset key, as JSON text or as a spec dict: a validated spec."""
    if isinstance(model, (dict, ModelSpec)):
        return ModelSpec.parse(model)
    text = model.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            raise LabError("lessons.bad_model_json", text=Code(text[:80])) from None
        return ModelSpec.parse(data)
    if text not in PRESETS:
        raise LabError("lessons.unknown_preset", name=Code(text[:40]), choices=Code(", ".join(PRESETS)))
    return preset_spec(text)


def to_plain(value: object) -> object:
    """A probe result as plain Python: tensors to nested lists (scalars to numbers), sizes to tuples."""
    if isinstance(value, torch.Size):
        return tuple(int(v) for v in value)
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return value.item() if value.dim() == 0 else value.tolist()
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def numbers(value: object) -> list[float]:
    """Every number in a value (tensor, number, nested list), flattened; a LabError when there are none."""
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            raise LabError("lessons.not_numbers", value=Code(show(value)))
        return [float(v) for v in value.detach().cpu().flatten().tolist()]
    if isinstance(value, bool):
        return [float(value)]
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, (list, tuple)):
        out: list[float] = []
        for v in value:
            out += numbers(v)
        return out
    raise LabError("lessons.not_numbers", value=Code(show(value)))


def number_text(v: float) -> str:
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.6g}"


def show(value: object) -> str:
    """A value as the lab shows it to a learner (numbers with 6 significant digits)."""
    if value is ERROR:
        return "error"
    if isinstance(value, torch.Size):
        return str(tuple(int(v) for v in value))
    if isinstance(value, tuple) and all(isinstance(v, int) for v in value):
        return str(value)
    if isinstance(value, torch.dtype):
        return str(value)
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.numel() > MAX_VALUES:
            return f"tensor of shape {tuple(value.shape)}"
        if value.dtype == torch.bool:
            return str(value.tolist())
        if value.is_floating_point():
            return _nested(value.tolist())
        return str(value.tolist())
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return number_text(value)
    if isinstance(value, (list, tuple)):
        return _nested(list(value))
    return str(value)


def _nested(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_nested(v) for v in value) + "]"
    if isinstance(value, float):
        return number_text(value)
    return str(value)


# --------------------------------------------------------------------------- argument models
def _model_valid(v: str | dict) -> str | dict:
    resolve_model(v)
    return v


def _expr_valid(v: str) -> str:
    check_expression(v, [])
    return v


def _vars_valid(v: dict[str, str]) -> dict[str, str]:
    names: list[str] = []
    for name, text in v.items():
        if not name.isidentifier() or name.startswith("_"):
            raise ValueError(f"variable name {name!r} must be an identifier not starting with '_'")
        check_expression(text, names)
        names.append(name)
    return v


def _as_data(v: object) -> object:
    return v.to_dict() if isinstance(v, ModelSpec) else v  # a page's current (typed) model, as data


ModelRef = Annotated[str | dict, BeforeValidator(_as_data), AfterValidator(_model_valid)]  # a preset, JSON or spec
Expr = Annotated[str, AfterValidator(_expr_valid)]  # a safe expression without variables
Vars = Annotated[dict[str, str], AfterValidator(_vars_valid)]  # name -> safe expression, in order
Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExprArgs(Args):
    vars: Vars = {}
    expr: str
    seed: Seed = 0
    expect_error: bool = False  # the point is that PyTorch refuses it (the value is ERROR)

    @model_validator(mode="after")
    def _names(self) -> ExprArgs:
        check_expression(self.expr, list(self.vars))
        return self


class GradArgs(Args):
    vars: Vars
    expr: str
    wrt: str
    seed: Seed = 0

    @model_validator(mode="after")
    def _names(self) -> GradArgs:
        check_expression(self.expr, list(self.vars))
        if self.wrt not in self.vars:
            raise ValueError(f"wrt must name one of the vars, got {self.wrt!r}")
        return self


class ModelArgs(Args):
    model: ModelRef
    append_linear: int | None = Field(None, ge=1, le=4096)  # append [Flatten,] Linear(features, n)
    batch: int = Field(1, ge=1, le=1024)


class StateDictArgs(Args):
    model: ModelRef
    then: Literal["count", "keys"] = "count"


class NameArgs(Args):
    model: ModelRef


class ModuleArgs(Args):
    model: ModelRef
    input: Expr  # the input batch
    then: str  # a safe expression over x (input), y_train (train mode output), y_eval (eval mode output)
    seed: Seed = 0

    @model_validator(mode="after")
    def _names(self) -> ModuleArgs:
        check_expression(self.then, ["x", "y_train", "y_eval"])
        return self


class LossArgs(Args):
    name: Literal["cross_entropy", "mse", "l1", "bce_with_logits", "nll"]
    input: Expr
    target: Expr


class OptimizerArgs(Args):
    optimizer: Literal["sgd", "adam", "adamw", "rmsprop"]
    lr: float = Field(gt=0, le=10)
    momentum: float = Field(0.0, ge=0, lt=1)
    start: list[float] = Field(min_length=1, max_length=16)
    loss: str  # a safe expression over w
    steps: int = Field(1, ge=1, le=1000)

    @model_validator(mode="after")
    def _names(self) -> OptimizerArgs:
        check_expression(self.loss, ["w"])
        return self


class NormalizeArgs(Args):
    mean: float
    std: float = Field(gt=0)
    then: Literal["range", "mean", "std"] = "range"


class LoaderArgs(Args):
    n: int = Field(ge=1, le=100_000)
    features: int = Field(1, ge=1, le=1000)
    batch_size: int = Field(ge=1, le=100_000)
    drop_last: bool = False
    then: Literal["len", "last_shape", "first_shape"] = "len"


class SamplerArgs(Args):
    n: int = Field(ge=1, le=10_000_000)
    replicas: int = Field(ge=1, le=1024)
    rank: int = Field(0, ge=0)
    drop_last: bool = False


class AutocastArgs(Args):
    op: Literal["matmul", "add", "sum", "relu", "softmax", "linear"]
    dtype: Literal["bfloat16", "float16"] = "bfloat16"


class ProfileArgs(Args):
    model: ModelRef
    batch: int = Field(4, ge=1, le=256)


class ScenarioArgs(Args):
    name: Literal["accumulate", "zero_grad", "resume", "eval_mode", "compile"]
    variant: str

    @model_validator(mode="after")
    def _variant(self) -> ScenarioArgs:
        variants = SCENARIOS[self.name][1]
        if self.variant not in variants:
            raise ValueError(f"scenario {self.name} has the variants {', '.join(variants)}, not {self.variant!r}")
        return self


class CurveArgs(Args):
    lrs: list[Annotated[float, Field(gt=0, le=10)]] = Field(min_length=2, max_length=5)
    epochs: int = Field(40, ge=2, le=500)
    which: float | None = None  # the lr whose curve is classified (output "label")
    output: Literal["label", "curves"] = "label"


# --------------------------------------------------------------------------- probes
def _expr(a: ExprArgs) -> object:
    variables = make_vars(a.vars, a.seed)
    with seeded(a.seed + 1):
        try:
            value = evaluate(a.expr, variables)
        except ExprError as exc:
            if a.expect_error:
                return ERROR
            raise LabError("lessons.expression_failed", expr=Code(a.expr), reason=reason(exc)) from None
    if a.expect_error:
        raise LabError("lessons.expected_error", expr=Code(a.expr))
    return value


def _grad(a: GradArgs) -> object:
    variables = make_vars(a.vars, a.seed)
    leaf = variables.get(a.wrt)
    if not isinstance(leaf, torch.Tensor) or not leaf.requires_grad:
        raise LabError("lessons.grad_leaf", name=Code(a.wrt))
    out = run_expression(a.expr, variables)
    if not isinstance(out, torch.Tensor) or not out.requires_grad:
        raise LabError("lessons.grad_leaf", name=Code(a.wrt))
    out.sum().backward()
    return leaf.grad


def _appended(spec: ModelSpec, n: int) -> ModelSpec:
    out = infer_shapes(spec, batch=1)[-1].output_shape if spec.layers else (1, *spec.input_shape)
    layers: list[Any] = [layer.to_dict() for layer in spec.layers]
    features = math.prod(out[1:])
    if len(out) != 2:
        layers.append({"type": "Flatten", "args": {}})
    layers.append({"type": "Linear", "args": {"in_features": features, "out_features": n}})
    return spec.edit(layers=layers)


def _params(a: ModelArgs) -> object:
    spec = resolve_model(a.model)
    if a.append_linear is not None:
        spec = _appended(spec, a.append_linear)
    return parameter_count(spec)


def _output_shape(a: ModelArgs) -> object:
    spec = resolve_model(a.model)
    if a.append_linear is not None:
        spec = _appended(spec, a.append_linear)
    return tuple(infer_shapes(spec, batch=a.batch)[-1].output_shape)


def _name(a: NameArgs) -> object:
    return resolve_model(a.model).name


def _state_dict(a: StateDictArgs) -> object:
    keys = list(build_model(resolve_model(a.model)).state_dict())
    return len(keys) if a.then == "count" else keys


def _module(a: ModuleArgs) -> object:
    with seeded(a.seed):
        model = build_model(resolve_model(a.model), seed=a.seed)
        x = run_expression(a.input, {})
        model.train()
        y_train = model(x)
        model.eval()
        with torch.no_grad():
            y_eval = model(x)
        return run_expression(a.then, {"x": x, "y_train": y_train.detach(), "y_eval": y_eval})


def _loss(a: LossArgs) -> object:
    inp, target = run_expression(a.input, {}), run_expression(a.target, {})
    if not isinstance(inp, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise LabError("lessons.not_numbers", value=Code(a.input))
    fns: dict[str, Any] = {"cross_entropy": F.cross_entropy, "mse": F.mse_loss, "l1": F.l1_loss,
                           "bce_with_logits": F.binary_cross_entropy_with_logits, "nll": F.nll_loss}
    fn = fns[a.name]
    try:
        return fn(inp, target)
    except (RuntimeError, ValueError, IndexError) as exc:
        raise LabError("lessons.expression_failed", expr=Code(a.input), reason=reason(exc)) from None


def _optimizer(a: OptimizerArgs) -> object:
    w = torch.tensor(a.start, dtype=torch.float32, requires_grad=True)
    opt: torch.optim.Optimizer
    if a.optimizer == "sgd":
        opt = torch.optim.SGD([w], lr=a.lr, momentum=a.momentum)
    elif a.optimizer == "adam":
        opt = torch.optim.Adam([w], lr=a.lr)
    elif a.optimizer == "adamw":
        opt = torch.optim.AdamW([w], lr=a.lr)
    else:
        opt = torch.optim.RMSprop([w], lr=a.lr, momentum=a.momentum)
    for _ in range(a.steps):
        opt.zero_grad()
        loss = run_expression(a.loss, {"w": w})
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            raise LabError("lessons.loss_not_scalar", expr=Code(a.loss))
        loss.backward()
        opt.step()
    return w.detach()


@lru_cache(maxsize=1)
def _digits() -> torch.Tensor:
    from core.ml.data import load_bundled

    return load_bundled().train_images


def _normalize(a: NormalizeArgs) -> object:
    x = (_digits().float() / 255 - a.mean) / a.std  # ToTensor scales to [0, 1], then Normalize
    if a.then == "range":
        return [float(x.min()), float(x.max())]
    return float(x.mean()) if a.then == "mean" else float(x.std())


def _loader(a: LoaderArgs) -> object:
    from torch.utils.data import DataLoader, TensorDataset

    with seeded(0):
        data = TensorDataset(torch.randn(a.n, a.features), torch.randint(0, 2, (a.n,)))
    loader = DataLoader(data, batch_size=a.batch_size, shuffle=False, drop_last=a.drop_last)
    if a.then == "len":
        return len(loader)
    batches = list(loader)
    if not batches:
        return ERROR
    return tuple(batches[-1 if a.then == "last_shape" else 0][0].shape)


def _sampler(a: SamplerArgs) -> object:
    from torch.utils.data.distributed import DistributedSampler

    if a.rank >= a.replicas:
        raise LabError("lessons.bad_rank", rank=a.rank, replicas=a.replicas)
    data: Any = range(a.n)  # the sampler only needs len()
    sampler: DistributedSampler = DistributedSampler(data, num_replicas=a.replicas, rank=a.rank, shuffle=False,
                                                     drop_last=a.drop_last)
    return len(sampler)


def _autocast(a: AutocastArgs) -> object:
    dtype = getattr(torch, a.dtype)
    with seeded(0):
        x, w = torch.randn(4, 8), torch.randn(8, 8)
        with torch.autocast("cpu", dtype=dtype):
            out = {"matmul": lambda: x @ w, "add": lambda: x + x, "sum": lambda: (x @ w).sum(),
                   "relu": lambda: torch.relu(x @ w), "softmax": lambda: torch.softmax(x @ w, dim=1),
                   "linear": lambda: F.linear(x, w)}[a.op]()
    return str(out.dtype).removeprefix("torch.")


def _profile(a: ProfileArgs) -> object:
    from torch.profiler import ProfilerActivity, profile

    spec = resolve_model(a.model)
    model = build_model(spec).eval()
    x = torch.randn(a.batch, *spec.input_shape)
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        model(x)
    return sorted({e.key for e in prof.key_averages()})


# ---- scenarios: small lab-authored programs with a bug and its candidate fixes, run for real
def _accumulate(variant: str) -> bool:
    x = torch.tensor(2.0, requires_grad=True)

    def f(t: torch.Tensor) -> torch.Tensor:
        return t**2 + 2 * t + 2

    f(x).backward(retain_graph=variant == "retain_graph")
    assert x.grad is not None
    single = x.grad.clone()
    if variant == "zero_grad":
        x.grad.zero_()
    elif variant == "set_none":
        x.grad = None
    try:
        if variant == "no_grad":
            with torch.no_grad():
                y = f(x)
        else:
            y = f(x)
        y.backward()
    except RuntimeError:
        return False
    return x.grad is not None and bool(torch.equal(x.grad, single))


def _regression() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    x = torch.randn(16, 3)
    return model, x, x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3


def _zero_grad(variant: str) -> bool:
    """Five SGD steps with zero_grad placed as the variant says, against plain gradient descent."""
    with seeded(0):
        model, x, y = _regression()
        reference = [p.detach().clone() for p in model.parameters()]
        for _ in range(5):  # gradient descent by hand: a fresh gradient every step
            w, b = (p.clone().requires_grad_(True) for p in reference)
            loss = F.mse_loss(x @ w.T + b, y)
            gw, gb = torch.autograd.grad(loss, (w, b))
            reference = [w.detach() - 0.1 * gw, b.detach() - 0.1 * gb]
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(5):
            if variant == "before_forward":
                opt.zero_grad()
            loss = F.mse_loss(model(x), y)
            if variant == "before_backward":
                opt.zero_grad()
            loss.backward()
            if variant == "before_step":
                opt.zero_grad()
            opt.step()
            if variant == "after_step":
                opt.zero_grad()
        return all(torch.allclose(p, r, atol=1e-6) for p, r in zip(model.parameters(), reference, strict=True))


def _resume(variant: str) -> bool:
    """Six Adam steps in one go, against three steps, a checkpoint, and three more after resuming."""
    def steps(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, n: int) -> None:
        for _ in range(n):
            opt.zero_grad()
            F.mse_loss(model(x), y).backward()
            opt.step()

    with seeded(0):
        model, x, y = _regression()
        start = {k: v.clone() for k, v in model.state_dict().items()}
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        steps(model, opt, x, y, 6)
        straight = [p.detach().clone() for p in model.parameters()]

        model.load_state_dict(start)
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        steps(model, opt, x, y, 3)
        buffer = io.BytesIO()
        torch.save({"epoch": 3, "model_state_dict": model.state_dict(),
                    "optimizer_state_dict": opt.state_dict()}, buffer)
        buffer.seek(0)
        ckpt = torch.load(buffer, weights_only=True)
        fresh = nn.Linear(3, 1)
        fresh_opt = torch.optim.Adam(fresh.parameters(), lr=0.05)
        if variant in ("model_only", "model_and_optimizer"):
            fresh.load_state_dict(ckpt["model_state_dict"])
        if variant in ("optimizer_only", "model_and_optimizer"):
            fresh_opt.load_state_dict(ckpt["optimizer_state_dict"])
        steps(fresh, fresh_opt, x, y, 3)
        return all(torch.allclose(p, r, atol=1e-6) for p, r in zip(fresh.parameters(), straight, strict=True))


def _eval_mode(variant: str) -> bool:
    """Two predictions for the same input agree (a model with Dropout and BatchNorm)."""
    with seeded(0):
        model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 2))
        x = torch.randn(4, 8)
        if variant == "eval":
            model.eval()
        if variant == "seed_once":
            torch.manual_seed(1)
        outs = []
        for _ in range(2):
            if variant == "no_grad":
                with torch.no_grad():
                    outs.append(model(x))
            else:
                outs.append(model(x).detach())
        return bool(torch.allclose(outs[0], outs[1]))


class _Branchy(nn.Module):
    """A forward that branches on the data: what torch.jit.trace cannot record."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x * 2
        return -x


def _compile(variant: str) -> bool:
    """The compiled module gives eager's answer for a positive and a negative input."""
    import warnings

    model = _Branchy()
    positive, negative = torch.ones(3), -torch.ones(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer warns about the branch: that is the lesson's point
        try:
            if variant == "trace":
                compiled: Callable[[torch.Tensor], torch.Tensor] = torch.jit.trace(model, positive)
            elif variant == "script":
                compiled = torch.jit.script(model)
            else:
                compiled = model
            return all(torch.equal(compiled(t), model(t)) for t in (positive, negative))
        except Exception:  # noqa: BLE001 - a compiler that refuses the module does not run clean either
            return False


SCENARIOS: dict[str, tuple[Callable[[str], bool], tuple[str, ...]]] = {
    "accumulate": (_accumulate, ("nothing", "zero_grad", "set_none", "retain_graph", "no_grad")),
    "zero_grad": (_zero_grad, ("missing", "before_forward", "before_backward", "before_step", "after_step")),
    "resume": (_resume, ("model_only", "optimizer_only", "model_and_optimizer")),
    "eval_mode": (_eval_mode, ("train", "eval", "no_grad", "seed_once")),
    "compile": (_compile, ("eager", "trace", "script")),
}


def _scenario(a: ScenarioArgs) -> object:
    fn, _ = SCENARIOS[a.name]
    return fn(a.variant)


def _curves(a: CurveArgs) -> dict[str, list[float | None]]:
    from core.ml.data import regression_linear

    x, y = regression_linear()
    out: dict[str, list[float | None]] = {}
    for lr in a.lrs:
        with seeded(0):
            model = nn.Linear(1, 1)
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        losses: list[float | None] = []
        for _ in range(a.epochs):
            opt.zero_grad()
            loss = F.mse_loss(model(x), y)
            value = float(loss.detach())
            losses.append(value if math.isfinite(value) and value < 1e12 else None)
            if losses[-1] is None:
                break
            loss.backward()
            opt.step()
        out[f"lr = {lr:g}"] = losses + [None] * (a.epochs - len(losses))
    return out


def curve_label(losses: list[float | None]) -> str:
    """A loss curve as one word: "diverges" (grows or overflows), "fast" (falls under 5% of its start)
    or "slow"."""
    finite = [v for v in losses if v is not None]
    if len(finite) < len(losses) or finite[-1] > finite[0]:
        return "diverges"
    return "fast" if finite[-1] < 0.05 * finite[0] else "slow"


def _curve(a: CurveArgs) -> object:
    curves = _curves(a)
    if a.output == "curves":
        return curves
    which = a.which if a.which is not None else a.lrs[-1]
    key = f"lr = {which:g}"
    if key not in curves:
        raise LabError("lessons.curve_lr", lr=which)
    return curve_label(curves[key])


@dataclass(frozen=True)
class Probe:
    args: type[Args]
    fn: Callable[[Any], object]


PROBES: dict[str, Probe] = {
    "expr": Probe(ExprArgs, _expr),
    "grad": Probe(GradArgs, _grad),
    "params": Probe(ModelArgs, _params),
    "output_shape": Probe(ModelArgs, _output_shape),
    "state_dict": Probe(StateDictArgs, _state_dict),
    "model_name": Probe(NameArgs, _name),
    "module": Probe(ModuleArgs, _module),
    "loss": Probe(LossArgs, _loss),
    "optimizer": Probe(OptimizerArgs, _optimizer),
    "normalize": Probe(NormalizeArgs, _normalize),
    "loader": Probe(LoaderArgs, _loader),
    "sampler": Probe(SamplerArgs, _sampler),
    "autocast": Probe(AutocastArgs, _autocast),
    "profile": Probe(ProfileArgs, _profile),
    "scenario": Probe(ScenarioArgs, _scenario),
    "curve": Probe(CurveArgs, _curve),
}


def run_probe(name: str, args: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> object:
    """Run probe ``name`` with ``args`` (plus page-given ``overrides``, validated the same way)."""
    if name not in PROBES:
        raise LabError("lessons.unknown_probe", name=Code(name), choices=Code(", ".join(PROBES)))
    probe = PROBES[name]
    parsed = probe.args.model_validate({**args, **(overrides or {})})
    try:
        return probe.fn(parsed)
    except LabError:
        raise
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:  # torch refused: say what it said
        raise LabError("lessons.probe_failed", probe=Code(name), reason=reason(exc)) from None
