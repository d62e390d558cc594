"""Regression runs (R1, R2): what the model learned, shown against its data, and R1's "run on".

The tutorial's R1 says Linear(1, 1) learns y = 2x from the points (1, 2), (2, 4), (3, 6) with SGD
lr 0.01 in 100 epochs. It does not: the loss falls fast and then crawls, because on three points a
smaller weight with a larger bias fits almost as well. ``slow_direction`` measures that from the
data (the MSE's curvature along the valley), ``run_on`` continues the tutorial's own loop from the
run's last state until the weight is within a tolerance of the least-squares answer.
"""
from __future__ import annotations

import math
from typing import Any, TypedDict

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from torch import nn

from core.training.config import TrainConfig
from core.training.trainer import make_optimizer

# Epochs "run on" may take after a run: R1's tiny model (2 parameters, 3 points) takes ~50 µs an epoch,
# so this bounds it at about a second; the tutorial's seeds need 854-1,645 epochs in all.
RUN_ON_MAX_EPOCHS = 20_000


class RegressionReport(TypedDict):
    """What a trained regression model does on a split."""

    mse: float               # mean squared error
    mae: float               # mean absolute error
    pred: torch.Tensor       # predictions, (N,)
    line: tuple[float, float] | None  # (w, b) of a Linear(1, 1) model, else None


def linear_params(model: nn.Module) -> tuple[float, float] | None:
    """(w, b) when the model is one Linear(1, 1) (R1's LinearModel), else None."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    params = list(model.parameters())
    if len(linears) != 1 or linears[0].in_features != 1 or linears[0].out_features != 1 or linears[0].bias is None \
            or len(params) != 2:
        return None
    return float(linears[0].weight.detach().reshape(())), float(linears[0].bias.detach().reshape(()))


@torch.no_grad()
def regression_report(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> RegressionReport:
    model.eval()
    pred = model(x).float().reshape(len(x), -1)
    target = y.float().reshape(len(y), -1)
    return RegressionReport(mse=float(((pred - target) ** 2).mean()), mae=float((pred - target).abs().mean()),
                            pred=pred[:, 0].cpu(), line=linear_params(model))


def least_squares(x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """The (w, b) that fit one-feature data best (what SGD on MSE converges to)."""
    a = torch.cat([x.double().reshape(-1, 1), torch.ones(len(x), 1, dtype=torch.float64)], 1)
    sol = torch.linalg.lstsq(a, y.double().reshape(-1, 1)).solution
    return float(sol[0, 0]), float(sol[1, 0])


class SlowDirection(TypedDict):
    """Why full-batch SGD on MSE is slow on a line fit: the loss surface is a long, flat valley."""

    mean_x: float        # along the valley b = mean_x * (w* - w) + b*: the bias makes up for the weight
    curvature: float     # the smallest eigenvalue of the MSE's Hessian 2 E[[x^2, x], [x, 1]]
    per_epoch: float     # fraction of the remaining gap SGD closes per epoch along the valley: lr * curvature


def slow_direction(x: torch.Tensor, lr: float) -> SlowDirection:
    xs = x.double().reshape(-1)
    hessian = 2 * torch.tensor([[float((xs ** 2).mean()), float(xs.mean())], [float(xs.mean()), 1.0]],
                               dtype=torch.float64)
    smallest = float(torch.linalg.eigvalsh(hessian)[0])
    return SlowDirection(mean_x=float(xs.mean()), curvature=smallest, per_epoch=lr * smallest)


def can_run_on(config: dict[str, Any] | TrainConfig, model: nn.Module, samples: int) -> bool:
    """"Run on" repeats the tutorial's full-batch loop: a Linear(1, 1) model trained with MSE on all samples at once."""
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.model_construct(**config)
    return (linear_params(model) is not None and cfg.resolved_loss == "mse" and cfg.batch_size >= samples
            and cfg.scheduler == "none" and cfg.accum_steps == 1)


class RunOn(TypedDict):
    """The trajectory of ``run_on``: one row per epoch (epoch, w, b, loss) and where it stopped."""

    trajectory: pd.DataFrame
    reached: bool        # |w - target| < tol
    epochs: int          # epochs in all (the run's plus the new ones)
    more: int            # epochs added here
    w: float
    b: float
    loss: float
    target: float


def run_on(model: nn.Module, config: dict[str, Any] | TrainConfig, optimizer_state: dict | None, x: torch.Tensor,
           y: torch.Tensor, start_epoch: int, tol: float = 0.01, max_epochs: int = RUN_ON_MAX_EPOCHS) -> RunOn:
    """Continue the tutorial's loop (zero_grad, MSE on all points, backward, step) from the run's last
    weights and optimizer state until |w - w*| < tol, w* the least-squares weight, or ``max_epochs``."""
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.model_construct(**config)
    target, _ = least_squares(x, y)
    model = model.float().train()
    opt = make_optimizer(cfg, [p for p in model.parameters() if p.requires_grad])
    if optimizer_state:
        opt.load_state_dict(optimizer_state)
    loss_fn = nn.MSELoss()
    x, y = x.float(), y.float()
    rows = []
    line = linear_params(model)
    assert line is not None, "run_on needs a Linear(1, 1) model"
    w, b = line
    with torch.no_grad():
        loss = float(loss_fn(model(x), y))
    rows.append((start_epoch, w, b, loss))
    epoch = start_epoch
    while abs(w - target) >= tol and epoch - start_epoch < max_epochs:
        opt.zero_grad()
        out = loss_fn(model(x), y)
        out.backward()
        opt.step()
        epoch += 1
        w, b = linear_params(model) or (math.nan, math.nan)
        loss = float(out.detach())  # the loss of this epoch's forward pass, as the tutorial prints it
        rows.append((epoch, w, b, loss))
    frame = pd.DataFrame(rows, columns=["epoch", "w", "b", "loss"])
    return RunOn(trajectory=frame, reached=abs(w - target) < tol, epochs=epoch, more=epoch - start_epoch, w=w, b=b,
                 loss=loss, target=target)


def fit_figure(x: torch.Tensor, y: torch.Tensor, pred: torch.Tensor, labels: dict[str, str],
               line: tuple[float, float] | None = None, height: int = 320) -> go.Figure:
    """One input feature: the points and the fitted line (or the predictions); more: predicted against true."""
    yy, pp = y.float().reshape(-1).numpy(), pred.float().reshape(-1).numpy()
    if x.ndim == 2 and x.shape[1] == 1:
        xx = x.float().reshape(-1).numpy()
        traces: list[dict[str, Any]] = [dict(type="scatter", x=xx, y=yy, mode="markers", name=labels["data"],
                                             marker=dict(size=11, color="#1f77b4"))]
        if line is not None:
            lo, hi = float(xx.min()), float(xx.max())
            pad = 0.25 * (hi - lo or 1.0)
            grid = np.linspace(lo - pad, hi + pad, 50)
            traces.append(dict(type="scatter", x=grid, y=line[0] * grid + line[1], mode="lines",
                               name=labels["fit"], line=dict(color="#ff7f0e")))
        else:
            order = np.argsort(xx)
            traces.append(dict(type="scatter", x=xx[order], y=pp[order], mode="lines+markers", name=labels["fit"],
                               line=dict(color="#ff7f0e")))
        axes = dict(xaxis=dict(title=dict(text="x")), yaxis=dict(title=dict(text="y")))
    else:
        lo, hi = float(min(yy.min(), pp.min())), float(max(yy.max(), pp.max()))
        traces = [dict(type="scatter", x=yy, y=pp, mode="markers", name=labels["fit"],
                       marker=dict(size=6, color="#1f77b4", opacity=0.7)),
                  dict(type="scatter", x=[lo, hi], y=[lo, hi], mode="lines", name=labels["ideal"],
                       line=dict(color="#7f7f7f", dash="dash"))]
        axes = dict(xaxis=dict(title=dict(text=labels["true"])), yaxis=dict(title=dict(text=labels["pred"])))
    layout = dict(height=height, margin=dict(l=0, r=0, t=10, b=0), legend=dict(orientation="h", y=-0.2), **axes)
    return go.Figure(dict(data=traces, layout=layout))


def run_on_figure(result: RunOn, labels: dict[str, str], height: int = 300) -> go.Figure:
    """w and b against the epoch, with the least-squares weight as a dashed line."""
    t = result["trajectory"]
    traces = [dict(type="scatter", x=t["epoch"], y=t["w"], mode="lines", name="w", line=dict(color="#1f77b4")),
              dict(type="scatter", x=t["epoch"], y=t["b"], mode="lines", name="b", line=dict(color="#ff7f0e")),
              dict(type="scatter", x=[t["epoch"].iloc[0], t["epoch"].iloc[-1]], y=[result["target"]] * 2,
                   mode="lines", name=labels["target"], line=dict(color="#7f7f7f", dash="dash"))]
    layout = dict(height=height, margin=dict(l=0, r=0, t=10, b=0), xaxis=dict(title=dict(text=labels["epoch"])),
                  legend=dict(orientation="h", y=-0.25))
    return go.Figure(dict(data=traces, layout=layout))
