"""The default recipe and its tricks are wired as configured (no timing is asserted here):
the validation split (and that no test image ever takes part in model selection), the weights'
moving average, test-time augmentation, the linear schedule, fused optimizers, precision auto."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from core.ml.data import load_bundled, validation_split
from core.ml.evaluate import ShiftTTA, eval_state_dict, shift_images
from core.runs.trained import checkpoint_test_evaluation, model_from_checkpoint
from core.runs.view import evaluate_model
from core.training.batches import load_data
from core.training.config import RECIPES, STORED_BEFORE, TrainConfig, recipe
from core.training.precision import select_precision
from core.training.trainer import Trainer, linear_warmup_decay

FAST = SimpleNamespace(fast_bf16=True, fast_bf16_reason="native bf16 instructions: avx512_bf16")
SLOW = SimpleNamespace(fast_bf16=False, fast_bf16_reason="no AVX512-BF16/AMX: bf16 is emulated")
SMALL = {"name": "Small", "input_shape": [1, 28, 28], "layers": [
    {"type": "Conv2d", "args": {"in_channels": 1, "out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1}},
    {"type": "BatchNorm2d", "args": {"num_features": 4}},
    {"type": "ReLU"},
    {"type": "MaxPool2d", "args": {"kernel_size": 2}},
    {"type": "Flatten"},
    {"type": "Linear", "args": {"in_features": 4 * 7 * 7, "out_features": 10}},
]}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small(**kw) -> TrainConfig:
    """The default recipe's settings on a small model and part of the data, in fp32 (exact comparisons)."""
    base = dict(model_spec=SMALL, limit_train=384, limit_test=200, val_size=100, epochs=3, precision="fp32",
                device="cpu")
    return TrainConfig(**{**base, **kw})


# --------------------------------------------------------------------------- the recipe's config
def test_the_default_recipe_is_the_fast_one_and_the_tutorials_recipes_stay_plain():
    cfg = TrainConfig()
    assert RECIPES["default"] == {} and recipe("default") == cfg
    assert (cfg.preset, cfg.dataset, cfg.optimizer, cfg.lr, cfg.weight_decay) == ("lab_fast", "digits8k", "adamw",
                                                                                  5e-3, 5e-4)
    assert (cfg.scheduler, cfg.warmup_pct, cfg.batch_size, cfg.epochs, cfg.drop_last) == ("linear", 0.2, 128, 12, True)
    assert (cfg.augment, cfg.ema, cfg.tta, cfg.precision, cfg.val_size) == (True, 0.98, True, "auto", 500)
    for name in ("r1", "r2", "r3"):
        rc = recipe(name)
        assert (rc.precision, rc.ema, rc.tta, rc.drop_last) == ("fp32", 0.0, False, False), name
    r3 = recipe("r3")
    # R3 is the tutorials' plain recipe: their CNN, Adam 1e-3, a constant lr, batch 64, 5 epochs.
    assert (r3.preset, r3.optimizer, r3.lr, r3.scheduler, r3.batch_size, r3.epochs) == ("cnn", "adam", 1e-3, "none",
                                                                                         64, 5)


def test_a_stored_config_from_before_the_new_settings_keeps_training_as_it_did():
    old = {k: v for k, v in TrainConfig(preset="lab_cnn", scheduler="onecycle", epochs=8,
                                        precision="fp32").to_dict().items() if k not in STORED_BEFORE}
    cfg = TrainConfig.from_stored(old)
    assert (cfg.val_size, cfg.ema, cfg.tta, cfg.drop_last) == (0, 0.0, False, False)
    assert TrainConfig.from_stored(TrainConfig().to_dict()) == TrainConfig()  # a new one is read as it is


def test_precision_auto_is_bf16_only_where_the_hardware_runs_it_natively():
    assert select_precision("auto", "cpu", FAST).name == "bf16"
    fallback = select_precision("auto", "cpu", SLOW)
    assert fallback.name == "fp32" and fallback.dtype is None and "no native bf16" in fallback.note
    assert select_precision("fp32", "cpu", FAST).dtype is None  # fp32 still works where bf16 is fast


def test_the_optimizers_are_fused_or_foreach_and_the_linear_schedule_warms_up_then_decays():
    trainer = Trainer(small(epochs=5))
    assert isinstance(trainer.optimizer, torch.optim.AdamW) and trainer.optimizer.defaults["fused"] is True
    assert Trainer(small(optimizer="rmsprop")).optimizer.defaults["foreach"] is True
    total = trainer.total_steps
    assert trainer.batches_per_epoch == 384 // 128 == 3 and total == 15  # drop_last: whole batches only
    f = linear_warmup_decay(total, 0.2)
    assert [round(f(i), 6) for i in range(total)] == [round(v, 6) for v in
                                                      [1 / 3, 2 / 3, 1.0, *[(total - i) / 12 for i in range(3, 15)]]]
    lrs = [trainer.step()["lr"] for _ in range(total)]
    assert lrs[0] == pytest.approx(5e-3 / 3) and max(lrs) == pytest.approx(5e-3) and lrs[-1] == pytest.approx(5e-3 / 12)
    assert trainer.current_lr() == 0.0


# --------------------------------------------------------------------------- the validation split
def test_the_validation_split_is_carved_from_the_training_images_class_balanced_and_seeded():
    digits = load_bundled()
    fit, val = validation_split(digits.train_labels.numpy(), 500)
    assert len(val) == 500 and len(fit) == 6500 and not set(fit) & set(val)
    assert np.bincount(digits.train_labels.numpy()[val], minlength=10).tolist() == [50] * 10
    again = validation_split(digits.train_labels.numpy(), 500)
    assert np.array_equal(again[1], val)
    data = load_data(TrainConfig())
    assert len(data.train_x) == 6500 and len(data.val_x) == 500 and len(data.test_x) == 1000
    # Normalized with the fitted images' statistics only, and the validation images are training images.
    fit_images = digits.train_images[torch.from_numpy(fit)]
    x = fit_images.float() / 255
    assert data.mean == pytest.approx(float(x.mean())) and data.std == pytest.approx(float(x.std()))
    expected_val = (digits.train_images[torch.from_numpy(val)].float() / 255 - data.mean) / data.std
    assert torch.allclose(data.val_x[:, 0], expected_val, atol=1e-6)
    assert torch.equal(data.test_y, digits.test_labels)
    assert not load_data(TrainConfig(val_size=0)).has_validation
    with pytest.raises(ValueError, match="val_size is 7,000"):
        TrainConfig(val_size=7000)


def test_torchvision_datasets_get_the_validation_split_too(tmp_path):
    from bench.training import write_mnist_raw
    from core.settings import load_settings

    write_mnist_raw(tmp_path, n_train=1200, n_test=200)
    settings = load_settings({"PYTORCH_LAB_HOME": str(tmp_path), "PYTORCH_LAB_DATA_ROOT": str(tmp_path),
                              "PYTORCH_LAB_DOWNLOAD": "0"})
    data = load_data(TrainConfig(dataset="mnist", val_size=300), settings)
    assert len(data.val_x) + len(data.train_x) == 1200 and abs(len(data.val_x) - 300) <= 10
    assert len(data.test_x) == 200 and data.mean is not None


def test_regression_data_has_no_validation_split_and_selects_on_the_training_loss():
    trainer = Trainer(recipe("r1").replace(epochs=3))
    assert not trainer.data.has_validation
    events = [e for e in trainer.run() if e["kind"] == "epoch"]
    assert all(e["val_loss"] is None for e in events)
    train = [e["train_loss"] for e in events]
    assert [e["best"] for e in events] == [t == min(train[:i + 1]) for i, t in enumerate(train)]


def _epochs(trainer: Trainer) -> list[dict]:
    return [e for e in trainer.run() if e["kind"] == "epoch"]


def test_no_test_image_is_used_for_selection(tmp_path):
    """The same run with its test labels shuffled (or the test images replaced by noise) picks the same
    epochs as best and writes the same best.pt: selection sees the validation split only."""
    from core.runs.store import SQLiteRunStore
    from core.runs.worker import train_run

    cfg = small(epochs=4, lr=2e-2)
    data = load_data(cfg)
    gen = torch.Generator().manual_seed(0)
    shuffled = dataclasses.replace(data, test_y=data.test_y[torch.randperm(len(data.test_y), generator=gen)])
    noise = dataclasses.replace(data, test_x=torch.randn(data.test_x.shape, generator=gen))
    runs = {}
    for name, variant in (("real", data), ("shuffled", shuffled), ("noise", noise)):
        store = SQLiteRunStore(tmp_path / name)
        run_id = store.create_run(cfg.to_dict(), name=name)
        trainer = Trainer(cfg, data=variant)
        events: list[dict] = []
        original = trainer._epoch_event

        def record(seconds, original=original, events=events):
            ev = original(seconds)
            events.append(dict(ev))
            return ev

        trainer._epoch_event = record  # type: ignore[method-assign]
        assert train_run(trainer, store, run_id) == "completed"
        best = torch.load(store.run_dir(run_id) / "best.pt", weights_only=True)
        runs[name] = (events, best, store.get_run(run_id))
    real_events, real_best, real_run = runs["real"]
    assert real_run["best_metrics"]["epoch"] == real_best["epoch"]
    assert [e["test_acc"] for e in real_events] != [e["test_acc"] for e in runs["shuffled"][0]]
    for name in ("shuffled", "noise"):
        events, best, run = runs[name]
        assert [e["best"] for e in events] == [e["best"] for e in real_events], name
        assert [e["val_acc"] for e in events] == [e["val_acc"] for e in real_events], name
        assert best["epoch"] == real_best["epoch"] == run["best_metrics"]["epoch"]
        for k, v in real_best["ema_state_dict"].items():
            assert torch.equal(best["ema_state_dict"][k], v), k
    val = [e["val_acc"] for e in real_events]
    assert real_best["epoch"] == 1 + max(range(len(val)), key=lambda i: (val[i], -i))  # the first best val epoch


def test_selection_score_reads_validation_or_training_never_test():
    trainer = Trainer(small(epochs=1))
    event = {"val_acc": 0.5, "val_loss": 1.0, "train_acc": 0.7, "train_loss": 0.8, "test_acc": 0.99,
             "test_loss": 0.01}
    assert trainer.selection_score(event) == 0.5  # type: ignore[arg-type]
    no_val = Trainer(small(epochs=1, val_size=0))
    assert no_val.selection_score(event) == 0.7  # type: ignore[arg-type]


# --------------------------------------------------------------------------- EMA and TTA
def test_ema_follows_the_weights_with_the_warmed_up_decay():
    trainer = Trainer(small(epochs=1, augment=False))
    before = {k: v.clone() for k, v in trainer.ema.state_dict().items()}
    trainer.step()
    assert trainer.ema is not None and trainer.ema.updates == 1
    decay = min(0.98, 2 / 11)
    now = trainer.core.state_dict()
    for k, v in trainer.ema.state_dict().items():
        if v.is_floating_point():
            assert torch.allclose(v, before[k] + (1 - decay) * (now[k] - before[k]), atol=1e-6), k
    assert trainer.eval_model.model is trainer.ema.module  # evaluation runs the average (inside TTA)
    assert Trainer(small(epochs=1, ema=0.0, tta=False)).eval_model is not None


def test_ema_weights_are_what_the_checkpoints_evaluation_uses(tmp_path):
    trainer = Trainer(small(epochs=2))
    _epochs(trainer)
    ckpt = torch.load(trainer.save(tmp_path / "last.pt"), weights_only=True)
    assert set(ckpt["ema_state_dict"]) == set(ckpt["model_state_dict"])
    assert any(not torch.equal(ckpt["ema_state_dict"][k], ckpt["model_state_dict"][k])
               for k in ckpt["model_state_dict"] if ckpt["model_state_dict"][k].is_floating_point())
    assert eval_state_dict(ckpt) is ckpt["ema_state_dict"]
    model, _ = model_from_checkpoint(ckpt)  # what Predict, Export and the Profiler get
    for k, v in model.state_dict().items():
        assert torch.equal(v, ckpt["ema_state_dict"][k]), k
    # The page's evaluation of the checkpoint scores what the trainer scored: EMA weights, TTA,
    # the run's normalization (the full test split here: compare on the trainer's 200 images).
    scored, x, y = checkpoint_test_evaluation(ckpt)
    assert isinstance(scored, ShiftTTA)
    result = evaluate_model(scored, x[:200], y[:200])
    assert result["accuracy"] == pytest.approx(trainer.evaluate("test")["acc"], abs=1e-6)
    plain = {**ckpt, "ema_state_dict": {}}
    assert model_from_checkpoint(plain)[0].state_dict()["0.weight"].equal(ckpt["model_state_dict"]["0.weight"])


def test_resume_restores_the_moving_average_exactly(tmp_path):
    cfg = small(epochs=2)
    full = Trainer(cfg)
    _epochs(full)
    first = Trainer(cfg)
    count = [0]

    def stop():
        count[0] += 1
        return count[0] >= 4

    list(first.run(stop))
    path = first.save(tmp_path / "last.pt")
    resumed = Trainer(cfg)
    resumed.load_checkpoint(path)
    assert resumed.ema is not None and resumed.ema.updates == 4
    _epochs(resumed)
    for k, v in full.ema.state_dict().items():
        assert torch.equal(resumed.ema.state_dict()[k], v), k


def test_tta_averages_the_image_and_its_four_one_pixel_shifts():
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 1, 2] = 1.0
    assert shift_images(x, 0, 1, -1.0)[0, 0, 1, 3] == 1.0 and shift_images(x, 0, 1, -1.0)[0, 0, 0, 0] == -1.0
    assert shift_images(x, 1, 0, 0.0)[0, 0, 2, 2] == 1.0 and shift_images(x, -1, 0, 0.0)[0, 0, 0, 2] == 1.0
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, z):
            seen.append(z.clone())
            return z.flatten(1)[:, :3]

    out = ShiftTTA(Spy(), background=-0.5)(x)
    assert len(seen) == 5 and torch.equal(seen[0], x)
    assert torch.allclose(out, torch.stack([s.flatten(1)[:, :3] for s in seen]).mean(0))
    assert all((s == -0.5).any() for s in seen[1:])  # the uncovered border is the background, never a flip
    trainer = Trainer(small(epochs=1))
    assert isinstance(trainer.eval_model, ShiftTTA)
    assert trainer.eval_model.background == pytest.approx(-trainer.data.mean / trainer.data.std)
    assert not isinstance(Trainer(small(epochs=1, tta=False)).eval_model, ShiftTTA)
    assert not isinstance(Trainer(recipe("r1").replace(tta=True)).eval_model, ShiftTTA)  # images only
