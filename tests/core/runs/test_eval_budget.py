"""Evaluation in the server is sized by the model's activation memory and bounded in time
(issue 22, item 2): a valid 243 KB checkpoint of Conv2d(1, 5000, 1) + pool + Linear asked for
15.7 GB with batches of 1,000."""
from __future__ import annotations

import io
import time

import pytest
import torch

from core.errors import LabError
from core.ml.activations import activation_bytes, eval_batch_size, sample_activations
from core.ml.checkpoint import load_checkpoint
from core.ml.evaluate import ShiftTTA
from core.ml.modules import activation_count, build_model
from core.ml.spec import ModelSpec
from core.runs.trained import model_from_checkpoint
from core.runs.view import evaluate_model
from core.settings import load_settings
from core.training.batches import load_data
from core.training.config import TrainConfig
from core.training.trainer import Trainer

WIDE = ModelSpec.parse({"name": "Wide", "input_shape": [1, 28, 28], "layers": [
    {"type": "Conv2d", "args": {"in_channels": 1, "out_channels": 5000, "kernel_size": 1}},
    {"type": "AdaptiveAvgPool2d", "args": {"output_size": 1}},
    {"type": "Flatten"},
    {"type": "Linear", "args": {"in_features": 5000, "out_features": 10}},
]})


def wide_checkpoint() -> bytes:
    config = TrainConfig(model_spec=WIDE, device="cpu")
    model = build_model(WIDE)
    buf = io.BytesIO()
    torch.save({"epoch": 1, "model_state_dict": model.state_dict(), "optimizer_state_dict": {}, "loss": 0.1,
                "config": config.to_dict()}, buf)
    return buf.getvalue()


def guard(model: torch.nn.Module, per_sample: int, budget: int) -> list[int]:
    """Record the batch sizes the model sees; fail before the forward runs when one would pass the budget."""
    seen: list[int] = []

    def pre(module, inputs) -> None:
        n = inputs[0].shape[0]
        assert n * per_sample <= budget, f"a batch of {n} needs {n * per_sample / 2**20:,.0f} MiB"
        seen.append(n)

    model.register_forward_pre_hook(pre)
    return seen


def test_meta_count_matches_the_spec_count_and_allocates_nothing():
    model = build_model(WIDE)
    assert sample_activations(model, (1, 28, 28)) == activation_count(WIDE)
    assert activation_bytes(model, (1, 28, 28)) == 2 * 4 * activation_count(WIDE)
    assert all(p.device.type == "cpu" for p in model.parameters())  # the model itself is untouched
    assert eval_batch_size(model, (1, 28, 28), memory_bytes=10**12) == 1000
    assert eval_batch_size(model, (1, 28, 28), memory_bytes=64 * 2**20) == 64 * 2**20 // (8 * activation_count(WIDE))


def test_a_wide_uploaded_model_is_evaluated_in_batches_that_fit_the_budget(monkeypatch):
    monkeypatch.delenv("PYTORCH_LAB_BUDGET_MB", raising=False)  # the default budget
    monkeypatch.setenv("PYTORCH_LAB_BUDGET_S", "120")  # this test is about memory; the machine may be busy
    blob = wide_checkpoint()
    assert len(blob) < 300_000  # a small, valid file
    model, _ = model_from_checkpoint(load_checkpoint(blob))
    data = load_data(TrainConfig(dataset="digits8k"))
    x, y = data.test_x[:40], data.test_y[:40]
    per_sample = activation_bytes(model, (1, 28, 28))
    budget = load_settings().budget_bytes
    seen = guard(model, per_sample, budget)
    result = evaluate_model(model, x, y)
    assert sum(seen) == len(x) and max(seen) == budget // per_sample
    assert result["confusion"].sum() == len(x)


def test_a_model_whose_one_sample_passes_the_budget_is_refused_before_running(monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_BUDGET_MB", "16")
    model, _ = model_from_checkpoint(load_checkpoint(wide_checkpoint()))
    data = load_data(TrainConfig(dataset="digits8k"))
    seen = guard(model, activation_bytes(model, (1, 28, 28)), 16 * 2**20)  # no forward may run at all
    with pytest.raises(LabError) as info:
        evaluate_model(model, data.test_x, data.test_y)
    assert info.value.code == "budget.sample_too_large" and not seen
    assert "PYTORCH_LAB_BUDGET_MB" in str(info.value) and "30.0 MB" in str(info.value)
    assert "16 MB" in str(info.value)


def test_the_evaluation_stops_at_the_time_budget():
    model = build_model(WIDE)
    data = load_data(TrainConfig(dataset="digits8k"))
    guard(model, activation_bytes(model, (1, 28, 28)), load_settings().budget_bytes)
    with pytest.raises(LabError) as info:
        evaluate_model(model, data.test_x, data.test_y, seconds=0)
    assert info.value.code == "budget.too_slow" and "PYTORCH_LAB_BUDGET_S" in str(info.value)


def test_a_model_that_does_not_fit_the_images_is_a_clear_error():
    spec = ModelSpec.parse({"name": "Flat", "input_shape": [784], "layers": [
        {"type": "Linear", "args": {"in_features": 784, "out_features": 10}}]})
    data = load_data(TrainConfig(dataset="digits8k"))
    with pytest.raises(LabError) as info:
        evaluate_model(build_model(spec), data.test_x, data.test_y)
    assert info.value.code == "runs.evaluation_failed"


def test_the_workers_epoch_test_pass_uses_budget_sized_batches(monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_BUDGET_MB", "64")
    trainer = Trainer(TrainConfig(model_spec=WIDE, limit_train=8, limit_test=20, batch_size=4, epochs=1,
                                  device="cpu", precision="fp32"))
    per_sample = activation_bytes(trainer.core, (1, 28, 28))
    # The model evaluation runs (the weights' average; test-time augmentation passes it each shifted batch).
    scored = trainer.eval_model.model if isinstance(trainer.eval_model, ShiftTTA) else trainer.eval_model
    seen = guard(scored, per_sample, 64 * 2**20)
    ev = trainer.evaluate()
    passes = 5 if scored is not trainer.eval_model else 1
    assert ev["n"] == 20 and sum(seen) == 20 * passes and max(seen) == 64 * 2**20 // per_sample == 2


def test_an_evaluation_that_cannot_finish_in_time_stops_after_its_first_batches(monkeypatch):
    """The wide model's evaluation would take many budgets: the first batches say so, and it stops
    at once instead of running until the clock is out (the Abuse benchmark's wide-checkpoint row)."""
    model = build_model(WIDE)
    data = load_data(TrainConfig(dataset="digits8k"))
    batch = eval_batch_size(model, (1, 28, 28))
    assert len(data.test_x) >= 10 * batch  # many batches: the estimate has something to project
    with torch.no_grad():
        start = time.monotonic()
        model(data.test_x[:batch])
        per_batch = time.monotonic() - start
    budget = max(0.3, per_batch * 3)  # far less than the whole split's batches need
    seen = guard(model, activation_bytes(model, (1, 28, 28)), load_settings().budget_bytes)
    start = time.monotonic()
    with pytest.raises(LabError) as info:
        evaluate_model(model, data.test_x, data.test_y, seconds=budget)
    assert info.value.code == "budget.too_slow"
    assert time.monotonic() - start < budget  # stopped by the estimate, before the clock ran out
    assert sum(seen) < len(data.test_x)


def test_the_estimate_waits_for_some_work_and_lets_work_that_fits_run():
    from core.safe.budget import Deadline

    clock = Deadline(seconds=10.0)
    clock.check_progress(1, 1000)  # no estimate from nothing: a tenth of a second must have passed
    clock.start -= 0.5  # half a second for 1 unit of 1,000: 500 s projected
    with pytest.raises(LabError):
        clock.check_progress(1, 1000)
    clock.check_progress(900, 1000)  # 0.55 s projected: runs on
