"""The training doctor: named diagnoses of a run, from its metrics and its training internals.

``diagnose(run, metrics)`` reads a stored run (its config, status and error) and its long metrics
frame (the per-step loss, learning rate and gradient norm, the per-epoch train / validation / test
scores, and the internals the trainer records every ``internals_every`` steps:
``core.training.internals``) and returns ``Diagnosis`` records, most serious first. Each names a
problem (``code``), how sure and how bad (``severity``: info, warning, serious), the layer when it
is one layer's (``layer``), the measured evidence (``params``, filled into the text
``doctor.<code>.evidence``), the suggested fix (``doctor.<code>.fix``) and, when the fix is one
change of the run's config, that change (``change``), which the pages start as an A/B run.

The rules and their thresholds (each checked by tests/core/runs/test_doctor.py on tiny runs built to
have the problem, and on healthy runs, which must get no serious diagnosis):

- ``lr_too_high`` (serious): the run diverged (NaN loss), or the loss at the end is no lower than
  at the start while the updates are large (update/weight ratio above 1e-2). Fix: lr / 10.
- ``lr_too_low`` (warning): the update/weight ratio, while the lr is near its peak, is below 1e-4
  (healthy training sits near 1e-3). Fix: lr × the factor that brings it to about 1e-3.
- ``exploding_gradients`` (serious, a layer): the gradient norm grew over 100× from the first
  steps, or jumped (over 5× the recent median) at least 3 times. Fix: clip the gradient norm at 1.
- ``grad_spikes`` (info): a few such jumps.
- ``vanishing_gradients`` (warning, a layer): a layer's gradient, relative to its weights, is under
  1/100 of the largest layer's. Fix: ReLU instead of Sigmoid/Tanh (when the model has them).
- ``dead_relu`` (warning over 40% of a ReLU's units, serious over 70%, a layer): units that are zero
  for every sample of a batch. Fix: LeakyReLU instead of ReLU.
- ``overfitting`` (warning): the validation (else test) loss was lowest at epoch k and rose since by
  over 10% while the training loss kept falling. Fix: augmentation on, else stop at epoch k.
- ``underfitting``: a classifier below 90% training accuracy whose train/validation gap is small and
  that none of the learning-rate rules explains: a warning when its training loss has levelled off
  (fix: a bigger model), information while it still falls (fix: twice the epochs).
- ``labels_not_shuffled`` (serious): a batch holds under half of the classes (a sorted dataset read in
  order). Fix: shuffle on.
- ``unnormalized_inputs`` (warning): the inputs' mean is beyond ±1 or their spread outside 0.2-5
  (normalized inputs have mean 0 and standard deviation 1). Fix: normalize them (no config change).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.i18n import t
from core.runs.internals import internals_frame, layers, series, spikes
from core.training.config import TrainConfig

SEVERITIES = ("serious", "warning", "info")
CODES = ("lr_too_high", "lr_too_low", "exploding_gradients", "grad_spikes", "vanishing_gradients", "dead_relu",
         "overfitting", "underfitting", "labels_not_shuffled", "unnormalized_inputs")
HEALTHY_RATIO = 1e-3
LOW_RATIO = 1e-4
HIGH_RATIO = 1e-2
GROWTH = 100.0
VANISH = 1e-2
DEAD_WARN, DEAD_SERIOUS = 0.4, 0.7
OVERFIT_RISE = 1.10
UNDERFIT_ACC = 0.90


@dataclass
class Diagnosis:
    """One named problem of a run (see the module doc for the codes)."""

    code: str
    severity: str
    layer: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    change: dict[str, Any] | None = None   # the one config change the fix is (None: advice only)

    def evidence(self, lang: str = "en") -> str:
        how = self.params.get("how")  # a rule with two kinds of evidence (lr_too_high: diverged, oscillates)
        return t(f"doctor.{self.code}.evidence" + (f".{how}" if how else ""), lang, **self._values())

    def fix(self, lang: str = "en") -> str:
        return t(f"doctor.{self.code}.fix", lang, **self._values())

    def title(self, lang: str = "en") -> str:
        return t(f"doctor.{self.code}.title", lang)

    def _values(self) -> dict[str, Any]:
        return {"layer": self.layer or "", **self.params}

    def as_json(self, lang: str = "en") -> dict[str, Any]:
        return {"code": self.code, "severity": self.severity, "layer": self.layer, "evidence": self.evidence(lang),
                "fix": self.fix(lang), "change": self.change}


def _values(metrics: pd.DataFrame, name: str) -> pd.DataFrame:
    one = metrics[metrics["name"] == name][["step", "epoch", "value"]]
    return one.sort_values("step", kind="stable").reset_index(drop=True)


def _mean(values) -> float:
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if len(arr) else math.nan


def _swap_spec(config: dict[str, Any], old: tuple[str, ...], new: str) -> dict[str, Any] | None:
    """The config's model spec with every layer of a type in ``old`` replaced by ``new`` (None: none there)."""
    try:
        spec = TrainConfig.model_of(config).model_dump(mode="json")
    except (ValueError, TypeError):
        return None
    found = False

    def walk(layers_: list[dict[str, Any]]) -> None:
        nonlocal found
        for layer in layers_:
            if layer.get("type") in old:
                layer["type"] = new
                layer["args"] = {}
                found = True
            inner = layer.get("layers")
            if isinstance(inner, list):
                walk(inner)

    walk(spec.get("layers", []))
    return {"model_spec": spec} if found else None


def _lr_change(config: dict[str, Any], factor: float) -> dict[str, Any]:
    lr = float(config.get("lr", 5e-3))
    return {"lr": float(f"{min(10.0, max(1e-6, lr * factor)):.3g}")}


def _lr_params(config: dict[str, Any], factor: float) -> dict[str, Any]:
    return {"lr": float(config.get("lr", 5e-3)), "new": _lr_change(config, factor)["lr"]}


def diagnose(run: dict[str, Any], metrics: pd.DataFrame) -> list[Diagnosis]:
    """The diagnoses of one run (its store row and its long metrics frame), most serious first."""
    config = run.get("config") or {}
    found: list[Diagnosis] = []
    loss = _values(metrics, "loss") if not metrics.empty else pd.DataFrame(columns=["step", "epoch", "value"])
    frame = internals_frame(metrics)
    keys = layers(frame)
    weighted = [k for k in keys if not series(frame, k, "update_ratio").empty]
    relus = [k for k in keys if not series(frame, k, "dead").empty]
    error = str(run.get("error") or "")

    # ------------------------------------------------------------ learning rate too high
    diverged = "TrainingDiverged" in error or "diverged" in error.lower()
    steps_done = len(loss)
    if not diverged and steps_done and not np.isfinite(pd.to_numeric(loss["value"], errors="coerce").to_numpy(
            dtype=float)[-1]):
        diverged = True  # the last step's loss is NaN or infinite (a skipped fp16 step in between is not)
    ratios_all = frame[frame["stat"] == "update_ratio"]
    lr_high = False
    if diverged:
        lr_high = True
        found.append(Diagnosis("lr_too_high", "serious", params={"how": "diverged", "step": steps_done + 1,
                                                                  **_lr_params(config, 0.1)},
                               change=_lr_change(config, 0.1)))
    elif steps_done >= 8:
        values = loss["value"].to_numpy(dtype=float)
        k = max(2, steps_done // 4)
        first, last = _mean(values[:k]), _mean(values[-k:])
        big = float(ratios_all["value"].median()) if not ratios_all.empty else math.nan
        if math.isfinite(first) and math.isfinite(last) and last >= 0.95 * first and big > HIGH_RATIO:
            lr_high = True
            found.append(Diagnosis("lr_too_high", "serious",
                                   params={"how": "oscillates", "first": first, "last": last, "ratio": big,
                                           **_lr_params(config, 0.1)},
                                   change=_lr_change(config, 0.1)))

    # ------------------------------------------------------------ learning rate too low
    lr_low = False
    if not lr_high and weighted:
        lr_rows = _values(metrics, "lr")
        # While the lr is near its peak (a schedule that decays to 0 shrinks every update at its end), after step 1.
        peak_steps = set(lr_rows.loc[lr_rows["value"] >= 0.5 * lr_rows["value"].max(), "step"])
        near_peak = ratios_all[ratios_all["step"].isin(peak_steps) & (ratios_all["step"] > 1)]
        if len(near_peak) == 0:
            near_peak = ratios_all
        if len(near_peak):
            median = float(near_peak["value"].median())
            if 0 < median < LOW_RATIO:
                lr_low = True
                factor = 10 ** round(math.log10(HEALTHY_RATIO / median))
                found.append(Diagnosis("lr_too_low", "warning",
                                       params={"ratio": median, "healthy": HEALTHY_RATIO, "factor": factor,
                                               **_lr_params(config, factor)},
                                       change=_lr_change(config, factor)))

    # ------------------------------------------------------------ exploding gradients and spikes
    norms = _values(metrics, "grad_norm")
    jumps = spikes(frame)
    clip = None if float(config.get("grad_clip", 0.0) or 0.0) > 0 else {"grad_clip": 1.0}
    if len(norms) >= 8:
        values = norms["value"].to_numpy(dtype=float)
        start = _mean(values[:5])
        finite = values[np.isfinite(values)]
        peak = float(finite.max()) if len(finite) else math.nan
        growth = peak / start if start and math.isfinite(start) and start > 0 else math.nan
        if (math.isfinite(growth) and growth > GROWTH) or len(jumps) >= 3:
            grown = _layer_growth(frame, weighted)
            found.append(Diagnosis("exploding_gradients", "serious", layer=grown,
                                   params={"growth": growth if math.isfinite(growth) else 0.0, "spikes": len(jumps),
                                           "start": start, "peak": peak},
                                   change=clip))
        elif len(jumps):
            worst = jumps.loc[jumps["ratio"].idxmax()]
            found.append(Diagnosis("grad_spikes", "info", params={"n": len(jumps), "step": int(worst["step"]),
                                                                  "ratio": float(worst["ratio"])},
                                   change=clip))

    # ------------------------------------------------------------ vanishing gradients
    if len(weighted) >= 2 and not diverged:
        relative = {}
        for key in weighted:
            g, w = series(frame, key, "grad_norm"), series(frame, key, "w_norm")
            both = g.merge(w, on="step", suffixes=("_g", "_w"))
            both = both[both["step"] > 1]
            if len(both):
                rel = both["value_g"] / both["value_w"].where(both["value_w"] > 0)
                relative[key] = float(rel.median())
        finite = {k: v for k, v in relative.items() if math.isfinite(v)}
        if finite:
            top = max(finite.values())
            low = [k for k, v in finite.items() if top > 0 and v < VANISH * top]
            if low:
                first = low[0]
                found.append(Diagnosis("vanishing_gradients", "warning", layer=first,
                                       params={"ratio": finite[first] / top, "n": len(low),
                                               "top": max(finite, key=lambda k: finite[k]),
                                               "swap": "Sigmoid, Tanh → ReLU"},
                                       change=_swap_spec(config, ("Sigmoid", "Tanh"), "ReLU")))

    # ------------------------------------------------------------ dead ReLUs
    for key in relus:
        dead = series(frame, key, "dead")
        if dead.empty:
            continue
        tail = dead["value"].iloc[-max(1, len(dead) // 3):]
        share = _mean(tail)
        if math.isfinite(share) and share >= DEAD_WARN:
            found.append(Diagnosis("dead_relu", "serious" if share >= DEAD_SERIOUS else "warning", layer=key,
                                   params={"share": share, "step": int(dead["step"].iloc[-1]),
                                           "swap": "ReLU → LeakyReLU"},
                                   change=_swap_spec(config, ("ReLU",), "LeakyReLU")))

    # ------------------------------------------------------------ overfitting and underfitting
    val = _values(metrics, "val_loss")
    which = "val_loss"
    if val.empty:
        val, which = _values(metrics, "test_loss"), "test_loss"
    train = _values(metrics, "train_loss")
    if len(val) >= 3 and len(train) >= 3:
        v = val["value"].to_numpy(dtype=float)
        best = int(np.nanargmin(v)) if np.isfinite(v).any() else -1
        if 0 <= best < len(v) - 1:
            k_epoch = int(val["epoch"].iloc[best])
            rise = v[-1] / v[best] if v[best] > 0 else math.nan
            tr = train.set_index("epoch")["value"]
            falling = k_epoch in tr.index and tr.iloc[-1] < tr.loc[k_epoch]
            if math.isfinite(rise) and rise > OVERFIT_RISE and falling:
                change = {"augment": True} if not config.get("augment") and config.get("dataset") in (
                    "digits8k", "mnist", "fashion_mnist") else {"epochs": k_epoch}
                found.append(Diagnosis("overfitting", "warning", params={"epoch": k_epoch, "best": float(v[best]),
                                                                         "last": float(v[-1]), "metric": which,
                                                                         "rise": rise - 1},
                                       change=change))
    train_acc = _values(metrics, "train_acc")
    if not train_acc.empty and not (lr_high or lr_low):
        acc = float(train_acc["value"].iloc[-1])
        val_acc = _values(metrics, "val_acc")
        gap = acc - float(val_acc["value"].iloc[-1]) if not val_acc.empty else 0.0
        if math.isfinite(acc) and acc < UNDERFIT_ACC and gap < 0.05:
            # Levelled off: the training loss fell under 5% over the last epoch. Still falling: train longer.
            tl = train["value"].to_numpy(dtype=float) if len(train) else np.array([])
            level = len(tl) >= 3 and tl[-1] > 0.95 * tl[-2]
            epochs = int(config.get("epochs", 1))
            # Levelled off: less regularization where there is weight decay, else a bigger step size.
            fix = ({"weight_decay": 0.0} if float(config.get("weight_decay") or 0.0) > 0 else _lr_change(config, 3.0)) \
                if level else {"epochs": min(200, epochs * 2)}
            found.append(Diagnosis("underfitting", "warning" if level else "info",
                                   params={"acc": acc, "gap": gap}, change=fix))

    # ------------------------------------------------------------ data problems
    classes = series(frame, "input", "classes")
    if not classes.empty:
        share = float(classes["value"].median())
        if share < 0.5:
            found.append(Diagnosis("labels_not_shuffled", "serious", params={"share": share},
                                   change={"shuffle": True} if config.get("shuffle") is False else None))
    mean, std = series(frame, "input", "mean"), series(frame, "input", "std")
    if not mean.empty and not std.empty:
        m, s = float(mean["value"].median()), float(std["value"].median())
        if abs(m) > 1.0 or not 0.2 <= s <= 5.0:
            found.append(Diagnosis("unnormalized_inputs", "warning", params={"mean": m, "std": s},
                                   change={"normalize": True} if config.get("normalize") is False else None))

    order = {s: i for i, s in enumerate(SEVERITIES)}
    return sorted(found, key=lambda d: order[d.severity])


def _layer_growth(frame: pd.DataFrame, weighted: list[str]) -> str | None:
    """The layer whose gradient norm grew the most between its first and its largest recording."""
    best, best_growth = None, 0.0
    for key in weighted:
        g = series(frame, key, "grad_norm")["value"].to_numpy(dtype=float)
        g = g[np.isfinite(g)]
        if len(g) >= 2 and g[0] > 0 and g.max() / g[0] > best_growth:
            best, best_growth = key, float(g.max() / g[0])
    return best


def run_diagnoses(store, run_id: str) -> tuple[dict[str, Any], list[Diagnosis]]:
    """(the run's row, its diagnoses) from the store; KeyError for an unknown run."""
    run = store.get_run(run_id)
    if run is None:
        raise KeyError(run_id)
    return run, diagnose(run, store.metrics(run_id))


def report(run: dict[str, Any], diagnoses: list[Diagnosis], lang: str = "en") -> dict[str, Any]:
    """What ``python -m core.doctor --json`` prints."""
    return {"run": {"id": run["id"], "name": run.get("name") or "", "status": run.get("status")},
            "diagnoses": [d.as_json(lang) for d in diagnoses]}
