"""The training doctor (core.runs.doctor, python -m core.doctor) on tiny runs built to have each problem,
and on healthy runs, which must get no serious diagnosis. Each run trains a few dozen steps on a few
hundred bundled digits, one thread, through the worker into a SQLite run store, as a job would."""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from types import SimpleNamespace

import pytest
import torch

from core import doctor as cli
from core.runs.doctor import CODES, SEVERITIES, diagnose, run_diagnoses
from core.runs.store import open_store
from core.runs.worker import execute
from core.training.batches import TrainData, load_data
from core.training.config import TrainConfig
from core.training.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")
BASE = dict(limit_train=512, limit_test=200, val_size=200, augment=False, precision="fp32", ema=0.0, tta=False,
            internals_every=2, batch_size=32, epochs=2)
MLP = dict(preset="neural_network", optimizer="adam", lr=1e-3, scheduler="none", weight_decay=0.0)


def deep(activation: str, hidden: int = 8, width: int = 64) -> dict:
    layers = [{"type": "Flatten"}, {"type": "Linear", "args": {"in_features": 784, "out_features": width}}]
    for _ in range(hidden):
        layers += [{"type": activation}, {"type": "Linear", "args": {"in_features": width, "out_features": width}}]
    layers += [{"type": activation}, {"type": "Linear", "args": {"in_features": width, "out_features": 10}}]
    return {"name": "Deep", "input_shape": [1, 28, 28], "layers": layers}


BOTTLENECK = {"name": "Tiny", "input_shape": [1, 28, 28], "layers": [
    {"type": "Flatten"}, {"type": "Linear", "args": {"in_features": 784, "out_features": 2}},
    {"type": "Linear", "args": {"in_features": 2, "out_features": 10}}]}


def sorted_by_label(data: TrainData) -> TrainData:
    order = torch.argsort(data.train_y, stable=True)
    return dataclasses.replace(data, train_x=data.train_x[order], train_y=data.train_y[order])


def raw_pixels(data: TrainData) -> TrainData:
    assert data.mean is not None and data.std is not None
    return dataclasses.replace(data, train_x=(data.train_x * data.std + data.mean) * 255)


# name: (config changes, data change, the diagnosis that must be named)
CASES = {
    "lr_too_high": (dict(MLP, optimizer="sgd", lr=1.0), None, "lr_too_high"),
    "lr_too_low": (dict(MLP, optimizer="sgd", lr=1e-5, momentum=0.0, epochs=1), None, "lr_too_low"),
    "exploding": (dict(MLP, optimizer="sgd", lr=0.3, momentum=0.9), None, "exploding_gradients"),
    "vanishing": (dict(MLP, preset="neural_network", model_spec=deep("Sigmoid"), optimizer="sgd", lr=0.1),
                  None, "vanishing_gradients"),
    "dead_relu": (dict(MLP, lr=0.05), None, "dead_relu"),
    "overfitting": (dict(MLP, limit_train=64, epochs=25), None, "overfitting"),
    "underfitting": (dict(MLP, model_spec=BOTTLENECK, lr=1e-2, epochs=6), None, "underfitting"),
    "not_shuffled": (dict(MLP, shuffle=False), sorted_by_label, "labels_not_shuffled"),
    "unnormalized": (dict(MLP), raw_pixels, "unnormalized_inputs"),
    # the same problem made through the config: raw pixel values 0-255 (TrainConfig.normalize off)
    "unnormalized_config": (dict(MLP, normalize=False), None, "unnormalized_inputs"),
}
HEALTHY = {"default recipe": dict(epochs=3), "mlp": dict(MLP, epochs=3)}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    store = open_store(home=tmp_path_factory.mktemp("doctor"), url="")
    data: dict[tuple, TrainData] = {}

    def train(changes: dict, data_change=None) -> str:
        config = TrainConfig(**{**BASE, **changes})
        key = (config.limit_train, config.limit_test, config.val_size, config.normalize)
        if key not in data:
            data[key] = load_data(config)
        run_id = store.create_run(config.to_dict(), status="running")
        trainer = Trainer(config, data=data_change(data[key]) if data_change else data[key])
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            execute(trainer, store, run_id, SimpleNamespace(quiet=True))
        return run_id

    yield store, train
    store.close()


@pytest.mark.parametrize("case", list(CASES))
def test_the_problem_is_named(lab, case):
    store, train = lab
    changes, data_change, code = CASES[case]
    run, diagnoses = run_diagnoses(store, train(changes, data_change))
    named = {d.code for d in diagnoses}
    assert code in named, (case, [(d.code, d.severity, d.evidence()) for d in diagnoses])
    for d in diagnoses:
        assert d.code in CODES and d.severity in SEVERITIES
        assert d.evidence("en") and d.fix("en") and d.evidence("zh") and d.fix("zh")
        if d.change is not None:  # the one change a "try the fix" run makes is a valid config
            TrainConfig.from_dict({**run["config"], **d.change})
    found = next(d for d in diagnoses if d.code == code)
    if code in ("vanishing_gradients", "dead_relu", "exploding_gradients"):
        assert found.layer and found.layer.split(":")[1] in ("Linear", "ReLU")
    if code == "vanishing_gradients":  # the fix swaps the Sigmoids for ReLUs, nothing else
        types = {layer["type"] for layer in found.change["model_spec"]["layers"]}
        assert "Sigmoid" not in types and "ReLU" in types
    if code == "lr_too_high":
        assert found.severity == "serious" and found.change == {"lr": 0.1}
    if code == "lr_too_low":
        assert found.change is not None and found.change["lr"] >= 1e-3
    if code == "labels_not_shuffled":
        assert found.change == {"shuffle": True}
    if code == "overfitting":
        assert found.change == {"augment": True} and 1 <= found.params["epoch"] < 25
    if code == "underfitting":  # still falling: twice the epochs; levelled off: a bigger step (no weight decay)
        assert found.change in ({"epochs": 12}, {"lr": 0.03}), found.change
    if case == "unnormalized_config":
        assert found.change == {"normalize": True}


@pytest.mark.parametrize("name", list(HEALTHY))
def test_healthy_runs_get_no_serious_diagnosis(lab, name):
    store, train = lab
    _, diagnoses = run_diagnoses(store, train(HEALTHY[name]))
    assert not [d for d in diagnoses if d.severity == "serious"], [(d.code, d.evidence()) for d in diagnoses]
    assert not {"lr_too_high", "lr_too_low", "exploding_gradients", "vanishing_gradients", "labels_not_shuffled",
                "unnormalized_inputs"} & {d.code for d in diagnoses}


def test_the_command_prints_the_diagnoses(lab, capsys):
    store, train = lab
    run_id = train(CASES["lr_too_high"][0])
    assert cli.main([run_id, "--json", "--home", str(store.home)]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["run"]["id"] == run_id
    first = out["diagnoses"][0]
    assert set(first) >= {"code", "severity", "layer", "evidence", "fix"}
    assert first["code"] == "lr_too_high" and first["severity"] == "serious" and first["layer"] is None
    assert cli.main([run_id, "--home", str(store.home), "--lang", "zh"]) == 1
    assert "学习率过高" in capsys.readouterr().out
    assert cli.main(["nosuchrun", "--home", str(store.home)]) == 2


def test_no_metrics_no_diagnosis():
    import pandas as pd

    empty = pd.DataFrame(columns=["run_id", "step", "epoch", "name", "value", "wall"])
    assert diagnose({"id": "x", "config": {}, "status": "queued"}, empty) == []


@pytest.mark.parametrize("case", ["lr_too_high", "dead_relu", "not_shuffled", "unnormalized_config"])
def test_the_suggested_fix_removes_the_problem(lab, case):
    """The run "try the fix" starts (the one change, the same seed and data) no longer has the problem."""
    store, train = lab
    changes, data_change, code = CASES[case]
    run, diagnoses = run_diagnoses(store, train(changes, data_change))
    found = next(d for d in diagnoses if d.code == code)
    assert found.change is not None
    fixed = TrainConfig.from_dict({**run["config"], **found.change})
    changed = {k: v for k, v in fixed.to_dict().items() if run["config"].get(k) != v}
    assert set(changed) == set(found.change)
    _, after = run_diagnoses(store, train({**changes, **found.change}, data_change))
    assert code not in {d.code for d in after}, [(d.code, d.evidence()) for d in after]


def test_a_last_loss_that_is_not_a_number_is_divergence():
    import pandas as pd

    rows = [{"run_id": "x", "step": s, "epoch": 1, "name": "loss", "value": v, "wall": 0.0}
            for s, v in ((1, 2.3), (2, float("inf")), (3, 2.1), (4, None))]
    found = diagnose({"id": "x", "config": {"lr": 0.3}, "status": "stopped"}, pd.DataFrame(rows))
    assert [(d.code, d.params["how"], d.change) for d in found] == [("lr_too_high", "diverged", {"lr": 0.03})]
    rows[-1]["value"] = 2.0  # an infinite loss in between (a skipped fp16 step) is not divergence
    assert diagnose({"id": "x", "config": {"lr": 0.3}, "status": "stopped"}, pd.DataFrame(rows)) == []
