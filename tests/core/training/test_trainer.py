import itertools
import json
import math
from types import SimpleNamespace

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.ml.checkpoint import CheckpointError, load_checkpoint
from core.ml.modules import build_model
from core.ml.spec import ModelSpec
from core.ml.zoo import DEFAULT_PRESET
from core.runs.cli import main
from core.runs.store import SQLiteRunStore
from core.training.config import OPTIMIZERS, RECIPES, Limits, TrainConfig, recipe
from core.training.console import Progress
from core.training.events import DoneEvent, EpochEvent, EpochRecord, StepEvent, StoppedEvent
from core.training.precision import Precision, resolve_device, select_precision
from core.training.trainer import Trainer, grad_norm

TINY_SPEC = {"name": "Tiny", "input_shape": [1, 28, 28], "layers": [
    {"type": "Conv2d", "args": {"in_channels": 1, "out_channels": 4, "kernel_size": 3, "padding": 1}},
    {"type": "BatchNorm2d", "args": {"num_features": 4}},
    {"type": "ReLU"},
    {"type": "MaxPool2d", "args": {"kernel_size": 4}},
    {"type": "Flatten"},
    {"type": "Dropout", "args": {"p": 0.1}},
    {"type": "Linear", "args": {"in_features": 4 * 7 * 7, "out_features": 10}},
]}
MLP_SPEC = {"name": "MLP", "input_shape": [1, 28, 28], "layers": [
    {"type": "Flatten"}, {"type": "Linear", "args": {"in_features": 784, "out_features": 16}}, {"type": "ReLU"},
    {"type": "Linear", "args": {"in_features": 16, "out_features": 10}}]}
FAST = SimpleNamespace(fast_bf16=True, fast_bf16_reason="native bf16 instructions: avx512_bf16")
SLOW = SimpleNamespace(fast_bf16=False, fast_bf16_reason="no AVX512-BF16/AMX: bf16 is emulated")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/core/conftest.py


def tiny(**kw) -> TrainConfig:
    base = dict(model_spec=TINY_SPEC, limit_train=192, limit_test=96, batch_size=32, epochs=2, lr=3e-3,
                device="cpu", precision="fp32")  # exact comparisons: fp32, not the default's auto (bf16 where fast)
    base.update(kw)
    return TrainConfig(**base)


def losses(trainer: Trainer) -> list[float]:
    return [ev["loss"] for ev in trainer.run() if ev["kind"] == "step"]


# --------------------------------------------------------------------------- config
def test_default_config_is_the_valid_default_recipe():
    cfg = TrainConfig()
    assert cfg.validate() is cfg
    assert cfg.preset == DEFAULT_PRESET == "lab_fast" and cfg.dataset == "digits8k"
    assert cfg.resolved_task == "classification" and cfg.resolved_loss == "cross_entropy"
    for name in RECIPES:
        rc = recipe(name)
        assert rc.validate() is rc
    assert recipe("r1").resolved_task == "regression" and recipe("r1").resolved_loss == "mse"
    with pytest.raises(ValueError, match="unknown recipe"):
        recipe("nope")


@pytest.mark.parametrize("changes,match", [
    ({"lr": float("nan")}, "lr must be a finite number"),
    ({"lr": float("inf")}, "lr must be a finite number"),
    ({"lr": 0.0}, "lr must be between"),
    ({"lr": "0.1"}, "lr must be a number"),
    ({"weight_decay": -1.0}, "weight_decay must be between"),
    ({"epochs": 0}, "epochs must be between"),
    ({"epochs": 2.5}, "epochs must be a whole number"),
    ({"epochs": True}, "epochs must be a whole number"),
    ({"batch_size": 10**9}, "batch_size must be between"),
    ({"seed": -1}, "seed must be between"),
    ({"optimizer": "lbfgs"}, "optimizer must be one of"),
    ({"scheduler": "cyclic"}, "scheduler must be one of"),
    ({"device": "tpu"}, "device must be one of"),
    ({"precision": "int8"}, "precision must be one of"),
    ({"augment": "yes"}, "augment must be true or false"),
    ({"dataset": "cifar"}, "dataset must be one of"),
    ({"task": "regression"}, "is a classification dataset"),
    ({"loss": "mse"}, "does not fit classification"),
    ({"loss": "bce_with_logits", "label_smoothing": 0.1}, "label_smoothing applies to the cross_entropy"),
    ({"label_smoothing": 1.5}, "label_smoothing must be between"),
    ({"optimizer": "adam", "nesterov": True}, "nesterov needs the sgd"),
    ({"optimizer": "sgd", "momentum": 0.0, "nesterov": True}, "nesterov needs the sgd"),
    ({"accum_steps": 64, "batch_size": 32}, "at least accum_steps"),
    ({"grad_clip": float("nan")}, "grad_clip must be a finite number"),
    ({"preset": "cnn_rgb16"}, "shape demo"),
    ({"preset": "nope"}, "unknown preset"),
    ({"preset": "linear"}, "regression model"),
    ({"dataset": "linear", "augment": False, "preset": "cnn"}, "classification model"),
    ({"dataset": "linear", "preset": "linear"}, "augment works on images"),
    ({"model_spec": {"name": "X", "input_shape": [10], "layers": []}}, "input of shape"),
    ({"model_spec": {"name": "X", "input_shape": [1, 28, 28], "layers": [
        {"type": "Flatten"}, {"type": "Linear", "args": {"in_features": 784, "out_features": 7}}]}},
     "needs 10 classes"),
    ({"model_spec": {"name": "X", "input_shape": [1, 28, 28], "layers": [{"type": "Bogus"}]}},
     r"model: .*unknown layer"),
    ({"model_spec": [1, 2]}, "model_spec must be a model spec object"),
])
def test_invalid_configs_raise_clear_errors(changes, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**changes).validate()


def test_caps_are_configurable():
    limits = Limits(max_epochs=3, max_batch_size=64, max_params=1000)
    with pytest.raises(ValueError, match="over the cap of 3"):
        tiny(epochs=4).validate(Limits(max_epochs=3))
    with pytest.raises(ValueError, match="batch_size is 128, over the cap of 64"):
        tiny(batch_size=128).validate(limits)
    with pytest.raises(ValueError, match="parameters, over the cap of 1,000"):
        TrainConfig().validate(Limits(max_params=1000))
    env = Limits.from_env({"PYTORCH_LAB_MAX_EPOCHS": "7", "PYTORCH_LAB_MAX_BATCH": "x", "PYTORCH_LAB_MAX_PARAMS": "99"})
    assert (env.max_epochs, env.max_batch_size, env.max_params) == (7, Limits.max_batch_size, 99)


def test_unknown_keys_and_json():
    with pytest.raises(ValueError, match=r"unknown config key.*bogus, lrr"):
        TrainConfig.from_dict({"lr": 0.1, "lrr": 0.1, "bogus": 1})
    with pytest.raises(ValueError, match="not valid JSON"):
        TrainConfig.from_json("{lr: 1")
    with pytest.raises(ValueError, match="JSON object"):
        TrainConfig.from_json("[1, 2]")
    cfg = tiny(optimizer="sgd", nesterov=True)
    assert TrainConfig.from_json(cfg.to_json()) == cfg


_values = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from(["", "sgd", "adam", "cpu", "fp16", "bf16", "onecycle", "linear", "digits8k",
                                     "mse", "auto", "cnn"]), st.lists(st.integers(), max_size=2))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(list(TrainConfig.model_fields)), _values, max_size=4))
def test_any_config_values_validate_or_raise_valueerror(changes):
    try:
        TrainConfig.from_dict(changes).validate()
    except ValueError as exc:
        assert str(exc)


# --------------------------------------------------------------------------- precision
def test_select_precision():
    p = select_precision("fp32", "cpu", FAST)
    assert (p.dtype, p.use_scaler) == (None, False)
    p = select_precision("bf16", "cpu", FAST)
    assert (p.dtype, p.use_scaler, p.autocast_device) == (torch.bfloat16, False, "cpu")
    with pytest.raises(ValueError, match="4-6x slower"):
        select_precision("bf16", "cpu", SLOW)
    forced = select_precision("bf16", "cpu", SLOW, force=True)
    assert forced.dtype == torch.bfloat16 and "4-6x slower" in forced.note
    with pytest.raises(ValueError, match="fp16 on the CPU is refused"):
        select_precision("fp16", "cpu", FAST)
    p = select_precision("fp16", "cuda", FAST)
    assert (p.dtype, p.use_scaler, p.autocast_device) == (torch.float16, True, "cuda")
    with pytest.raises(ValueError, match="MPS"):
        select_precision("bf16", "mps", FAST)
    with pytest.raises(ValueError, match="precision must be one of"):
        select_precision("fp8", "cpu", FAST)


def test_cuda_bf16_depends_on_the_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with pytest.raises(ValueError, match="no bf16 support"):
        select_precision("bf16", "cuda", FAST)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert select_precision("bf16", "cuda", FAST).use_scaler is False


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_missing_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="no usable CUDA"):
        resolve_device("cuda")
    assert resolve_device("auto").type in ("cpu", "mps")
    with pytest.raises(ValueError, match="no usable CUDA"):
        Trainer(tiny(device="cuda"))


def test_bf16_autocast_trains_on_cpu():
    from core.ml.env import env_facts

    facts = env_facts()
    cfg = tiny(precision="bf16", epochs=1, allow_slow_bf16=not facts.fast_bf16)
    trainer = Trainer(cfg)
    assert trainer.precision.dtype == torch.bfloat16 and trainer.scaler is None
    events = list(trainer.run())
    assert events[-1]["kind"] == "done"
    assert all(math.isfinite(e["loss"]) for e in events if e["kind"] == "step")
    assert trainer.core[0].weight.dtype == torch.float32  # autocast keeps fp32 master weights


def test_grad_scaler_path_unscales_before_clipping():
    """The fp16 path (scale -> backward -> unscale_ -> clip -> step -> update), run with CPU tensors."""
    cfg = tiny(model_spec=MLP_SPEC, augment=False, epochs=1, limit_train=64, grad_clip=0.5)
    plain = Trainer(cfg)
    scaled = Trainer(cfg, precision=Precision("fp16", None, True, "cpu", "test: scaler on fp32 math"))
    assert scaled.scaler is not None and scaled.scaler.get_scale() > 1
    a, b = plain.step(), scaled.step()
    # grad_norm is measured on unscaled gradients, and clipping saw the same gradients.
    assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)
    for p, q in zip(plain.core.parameters(), scaled.core.parameters(), strict=False):
        assert torch.allclose(p, q, atol=1e-6)
    ck = scaled.checkpoint()
    assert ck["scaler_state_dict"]["scale"] == scaled.scaler.get_scale()


# --------------------------------------------------------------------------- steps and events
def test_step_record_and_epoch_events():
    trainer = Trainer(tiny(epochs=2))
    assert trainer.batches_per_epoch == 6 and trainer.steps_per_epoch == 6 and trainer.total_steps == 12
    rec = trainer.step()
    assert rec["kind"] == "step" and rec["step"] == 1 and rec["epoch"] == 1 and rec["batch"] == 1
    for key in ("loss", "lr", "grad_norm", "samples_per_s"):
        assert isinstance(rec[key], float) and math.isfinite(rec[key]) and rec[key] > 0
    assert rec["samples"] == 32 and not rec["epoch_end"]
    events = list(trainer.run())
    kinds = [e["kind"] for e in events]
    assert kinds.count("step") == 11 and kinds.count("epoch") == 2 and kinds[-1] == "done"
    epochs = [e for e in events if e["kind"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2] and [e["step"] for e in epochs] == [6, 12]
    for e in epochs:
        assert {"train_loss", "train_acc", "test_loss", "test_acc", "seconds", "lr", "best"} <= set(e)
        assert 0 <= e["test_acc"] <= 1 and e["test_loss"] > 0
    assert trainer.finished and trainer.evaluate()["n"] == 96
    with pytest.raises(RuntimeError, match="complete"):
        trainer.step()


def keys(typed) -> tuple[set, set]:
    return set(typed.__required_keys__), set(typed.__optional_keys__)


def test_events_have_their_documented_shapes():
    """Every record the trainer yields has exactly the keys of its TypedDict (core.training.events)."""
    step_required, step_optional = keys(StepEvent)
    assert step_optional == {"acc", "internals"}
    trainer = Trainer(tiny(epochs=2))
    stop_after = iter(range(8, -1, -1))
    events = list(trainer.run(stop=lambda: next(stop_after) == 0))  # stops on the 9th poll, in epoch 2
    kinds = [e["kind"] for e in events]
    assert kinds.count("epoch") == 1 and kinds[-1] == "stopped"
    for e in events:
        if e["kind"] == "step":
            # classification: the step's accuracy too; the internals on recording steps (the first, every 50th)
            assert set(e) == step_required | {"acc"} | ({"internals"} if e["step"] == 1 else set())
            assert all(type(e[k]) is int for k in ("step", "epoch", "batch", "batches", "samples"))
        elif e["kind"] == "epoch":
            assert set(e) == keys(EpochEvent)[0]
        else:
            assert set(e) == keys(StoppedEvent)[0] and (e["epoch"], e["batch"], e["step"]) == (1, 3, 9)
    assert [set(h) for h in trainer.history] == [keys(EpochRecord)[0]]
    assert trainer.history[0] == {k: v for k, v in events[6].items() if k != "kind"}
    regression = Trainer(recipe("r1").replace(epochs=2))
    events = list(regression.run())
    assert set(events[0]) == step_required | {"internals"}  # no accuracy for regression
    assert set(events[-1]) == keys(DoneEvent)[0] and events[-1]["last"] == regression.history[-1]
    assert set(regression.evaluate()) == {"loss", "acc", "n"}


def test_public_view_of_the_next_step():
    """next_batch_indices / next_batch show what step() takes without changing it; targets, rng, grad_norm."""
    cfg = tiny(model_spec=MLP_SPEC, augment=False, epochs=1, limit_train=100, batch_size=40, accum_steps=2)
    peeked, plain = Trainer(cfg), Trainer(cfg)
    for _ in range(peeked.steps_per_epoch):
        parts = peeked.next_batch_indices()
        x, y = peeked.next_batch()
        assert [len(p) for p in parts] in ([20, 20], [20])  # accum_steps micro-batches (the last step: one)
        idx = torch.cat(parts)
        assert torch.equal(x, peeked.data.train_x[idx]) and torch.equal(y, peeked.data.train_y[idx])
        assert torch.equal(peeked.next_batch()[1], y)  # looking twice takes nothing
        assert peeked.step()["loss"] == plain.step()["loss"]  # and changes nothing
    # targets: labels as the loss takes them.
    y = torch.tensor([0, 3])
    assert peeked.targets(y) is y
    bce = Trainer(cfg.replace(loss="bce_with_logits"))
    assert torch.equal(bce.targets(y), torch.nn.functional.one_hot(y, 10).float())
    # rng(): the trainer's own stream, isolated from the global one, advancing with what runs inside.
    a, b = Trainer(cfg), Trainer(cfg)
    torch.manual_seed(5)
    with a.rng():
        first = torch.rand(3)
    after = torch.rand(3)
    torch.manual_seed(5)
    assert torch.equal(after, torch.rand(3))  # the global stream is untouched
    with a.rng():
        second = torch.rand(3)
    with b.rng():
        assert torch.equal(torch.rand(3), first)
    assert not torch.equal(first, second)
    # grad_norm: the norm clip_grad_norm_ reports, 0 without gradients.
    assert float(grad_norm(a.params)) == 0.0
    a.step()
    expected = torch.sqrt(sum((p.grad.float() ** 2).sum() for p in a.params))
    assert float(grad_norm(a.params)) == pytest.approx(float(expected), rel=1e-5)
    assert float(grad_norm(a.params)) == pytest.approx(float(torch.nn.utils.clip_grad_norm_(a.params, 1e9)))


def test_gradient_accumulation_is_one_step_over_micro_batches():
    base = tiny(model_spec=MLP_SPEC, augment=False, optimizer="sgd", momentum=0.0, scheduler="none", lr=0.1,
                epochs=1, limit_train=128, batch_size=64)
    one, acc = Trainer(base), Trainer(base.replace(accum_steps=4))
    assert acc.micro_batch == 16 and acc.batches_per_epoch == 8 and acc.steps_per_epoch == 2
    r1, r2 = one.step(), acc.step()
    assert r2["samples"] == 64 and r2["batch"] == 4
    assert r2["loss"] == pytest.approx(r1["loss"], rel=1e-5)
    assert r2["grad_norm"] == pytest.approx(r1["grad_norm"], rel=1e-4)
    for p, q in zip(one.core.parameters(), acc.core.parameters(), strict=False):
        assert torch.allclose(p, q, atol=1e-6)


def test_gradient_clipping_bounds_the_update():
    cfg = tiny(model_spec=MLP_SPEC, augment=False, optimizer="sgd", momentum=0.0, weight_decay=0.0,
               scheduler="none", lr=1.0, grad_clip=0.01, epochs=1)
    trainer = Trainer(cfg)
    before = [p.detach().clone() for p in trainer.core.parameters()]
    rec = trainer.step()
    assert rec["grad_norm"] > 0.01  # reported before clipping
    change = torch.linalg.vector_norm(torch.stack(
        [torch.linalg.vector_norm(p.detach() - b) for p, b in zip(trainer.core.parameters(), before, strict=False)]))
    assert float(change) == pytest.approx(0.01, rel=1e-3)


@pytest.mark.parametrize("sched", ["none", "step", "cosine", "onecycle"])
def test_schedulers(sched):
    trainer = Trainer(tiny(model_spec=MLP_SPEC, augment=False, scheduler=sched, step_size=1, gamma=0.5, epochs=2))
    lrs = [ev["lr"] for ev in trainer.run() if ev["kind"] == "step"]
    if sched == "none":
        assert set(lrs) == {3e-3}
    elif sched == "step":
        assert lrs[0] == pytest.approx(3e-3) and lrs[-1] == pytest.approx(1.5e-3)
    elif sched == "cosine":
        assert lrs[0] == pytest.approx(3e-3) and lrs == sorted(lrs, reverse=True) and lrs[-1] < 3e-4
    else:
        peak = lrs.index(max(lrs))
        assert 0 < peak < len(lrs) - 1 and lrs[0] < max(lrs) and lrs[-1] < lrs[0]


@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_every_optimizer_trains(opt):
    lr = 1.0 if opt == "adadelta" else 0.05 if opt == "sgd" else 3e-3
    trainer = Trainer(tiny(model_spec=MLP_SPEC, augment=False, optimizer=opt, lr=lr, epochs=3,
                             scheduler="onecycle"))
    events = [e for e in trainer.run() if e["kind"] == "epoch"]
    assert events[-1]["train_loss"] < events[0]["train_loss"]


@pytest.mark.parametrize("loss", ["cross_entropy", "bce_with_logits"])
def test_classification_losses(loss):
    trainer = Trainer(tiny(model_spec=MLP_SPEC, augment=False, loss=loss, epochs=1,
                             label_smoothing=0.1 if loss == "cross_entropy" else 0.0))
    done = list(trainer.run())[-1]
    assert done["kind"] == "done" and 0 <= done["last"]["test_acc"] <= 1


def test_r1_learns_y_equals_2x():
    cfg = recipe("r1")
    assert (cfg.preset, cfg.dataset, cfg.optimizer, cfg.lr, cfg.epochs, cfg.resolved_loss) == (
        "linear", "linear", "sgd", 0.01, 100, "mse")
    trainer = Trainer(cfg)
    events = [e for e in trainer.run() if e["kind"] == "epoch"]
    assert len(events) == 100 and trainer.global_step == 100
    assert events[-1]["train_loss"] < 0.05 * events[0]["train_loss"]
    with torch.no_grad():
        pred = trainer.core(torch.tensor([[1.0], [2.0], [3.0], [4.0]])).flatten()
    assert torch.allclose(pred[:3], torch.tensor([2.0, 4.0, 6.0]), atol=0.6)
    assert 1.4 < float(trainer.core.linear.weight.detach()) < 2.4


def test_r2_loss_falls():
    cfg = recipe("r2")
    assert (cfg.preset, cfg.optimizer, cfg.lr, cfg.epochs) == ("neural_net", "adam", 1e-3, 100)
    trainer = Trainer(cfg)
    events = [e for e in trainer.run() if e["kind"] == "epoch"]
    test = [e["test_loss"] for e in events]
    assert test[-1] < 0.1 * test[0]
    assert sum(b < a for a, b in itertools.pairwise(test)) > 90  # falling nearly every epoch


def test_regression_l1_loss():
    trainer = Trainer(recipe("r2").replace(loss="l1", epochs=3))
    assert isinstance(trainer.loss_fn, torch.nn.L1Loss)
    assert list(trainer.run())[-1]["last"]["test_acc"] is None


# --------------------------------------------------------------------------- determinism and resume
def test_same_seed_same_numbers_and_isolated_rng():
    cfg = tiny()
    a = losses(Trainer(cfg))
    t = Trainer(cfg)
    b = []
    for ev in t.run():
        if ev["kind"] == "step":
            b.append(ev["loss"])
            torch.manual_seed(123)  # other code using the global RNG between steps changes nothing
            torch.rand(10)
    assert a == b
    assert losses(Trainer(cfg.replace(seed=1))) != a


@pytest.mark.parametrize("name", ["digits8k", "linear", "synthetic"])
def test_training_data_has_the_registry_sizes_and_shapes(name):
    from core.ml.data import DATASETS
    from core.training.batches import load_data

    info = DATASETS[name]
    config = {"digits8k": TrainConfig(), "linear": recipe("r1"), "synthetic": recipe("r2")}[name]  # valid configs
    data = load_data(config)
    assert config.dataset == name
    held = len(data.val_x) if data.val_x is not None else 0  # the validation split is carved from the training split
    assert (len(data.train_x) + held, len(data.test_x)) == (info.train_size, info.test_size)
    assert held == (config.val_size if info.image else 0)
    assert tuple(data.train_x.shape[1:]) == info.input_shape and data.outputs == info.outputs
    assert data.task == info.task == config.resolved_task


def test_limit_and_model_init_match_build_model():
    cfg = tiny()
    trainer = Trainer(cfg)
    ref = build_model(ModelSpec.parse(TINY_SPEC), seed=cfg.seed)
    for p, q in zip(ref.parameters(), trainer.core.parameters(), strict=False):
        assert torch.equal(p, q)
    assert len(trainer.data.train_x) == 192 and len(trainer.data.test_x) == 96


def _state(trainer):
    return {k: v.clone() for k, v in trainer.core.state_dict().items()}


@pytest.mark.parametrize("stop_after_steps", [6, 8])  # at the epoch boundary and mid-epoch
def test_resume_ends_where_an_uninterrupted_run_ends(tmp_path, stop_after_steps):
    cfg = tiny(epochs=2, accum_steps=1)
    full = Trainer(cfg)
    full_events = [e for e in full.run() if e["kind"] == "epoch"]

    first = Trainer(cfg)
    count = [0]

    def stop():
        count[0] += 1
        return count[0] >= stop_after_steps

    events = list(first.run(stop))
    assert events[-1]["kind"] == "stopped" and first.global_step == stop_after_steps
    path = first.save(tmp_path / "last.pt")
    ck = load_checkpoint(path)
    assert {"epoch", "model_state_dict", "optimizer_state_dict", "loss", "config", "scheduler_state_dict",
            "scaler_state_dict", "step", "rng"} <= set(ck)
    assert ck["epoch"] == stop_after_steps // 6 and ck["step"] == stop_after_steps

    resumed = Trainer(cfg)
    resumed.load_checkpoint(path)
    rest = [e for e in resumed.run() if e["kind"] == "epoch"]
    assert resumed.global_step == full.global_step == 12 and resumed.epoch == 2
    final, expected = _state(resumed), _state(full)
    for k in expected:
        assert torch.equal(final[k], expected[k]), k
    assert rest[-1]["test_acc"] == full_events[-1]["test_acc"]
    assert rest[-1]["train_loss"] == pytest.approx(full_events[-1]["train_loss"], rel=1e-12)
    assert [h["epoch"] for h in resumed.history] == [1, 2]


def test_checkpoint_of_another_config_is_refused(tmp_path):
    trainer = Trainer(tiny(epochs=1))
    path = trainer.save(tmp_path / "a.pt")
    other = Trainer(tiny(epochs=1, lr=1e-2))
    with pytest.raises(CheckpointError, match=r"different config.*lr"):
        other.load_checkpoint(path)


# --------------------------------------------------------------------------- CLI
def test_cli_trains_into_the_store(tmp_path, capsys):
    cfg_file = tmp_path / "run.json"
    cfg_file.write_text(tiny(epochs=1).to_json())
    home = tmp_path / "home"
    code = main(["--config", str(cfg_file), "--epochs", "2", "--home", str(home), "--name", "cli run",
                   "--tags", "a,b", "--quiet"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] == "completed" and summary["epoch"] == 2
    store = SQLiteRunStore(home)
    run = store.run(summary["run_id"])
    assert run["status"] == "completed" and run["kind"] == "cli" and run["name"] == "cli run"
    assert run["config"]["epochs"] == 2 and run["tags"] == ["a", "b"]
    assert run["last_metrics"]["epoch"] == 2 and run["best_metrics"]["test_acc"] is not None
    m = store.metrics(summary["run_id"])
    assert set(m["name"]) >= {"loss", "lr", "grad_norm", "samples_per_s", "test_acc", "test_loss", "train_loss"}
    assert m[m["name"] == "loss"]["step"].tolist() == list(range(1, 13))
    run_dir = store.run_dir(summary["run_id"])
    assert (run_dir / "last.pt").exists() and (run_dir / "best.pt").exists()
    assert load_checkpoint(run_dir / "last.pt")["epoch"] == 2
    store.close()


def test_cli_resumes_a_stopped_run(tmp_path, capsys):
    cfg = tiny(epochs=2)
    full = Trainer(cfg)
    list(full.run())
    store = SQLiteRunStore(tmp_path)
    run_id = store.create_run(cfg.to_dict(), status="running", kind="cli")
    partial = Trainer(cfg)
    count = [0]

    def stop():
        count[0] += 1
        return count[0] >= 3

    for ev in partial.run(stop):
        if ev["kind"] == "step":
            store.log_metrics(run_id, [(ev["step"], ev["epoch"], "loss", ev["loss"])])
    store.log_metrics(run_id, [(99, 2, "loss", 0.0)])  # logged after the checkpoint, then killed
    partial.save(store.run_dir(run_id, create=True) / "last.pt")
    store.finish_run(run_id, "stopped")
    assert main(["--run-id", run_id, "--home", str(tmp_path), "--quiet"]) == 2  # needs --resume
    assert main(["--run-id", run_id, "--home", str(tmp_path), "--resume", "--quiet"]) == 0
    run = store.run(run_id)
    assert run["status"] == "completed" and run["last_metrics"]["epoch"] == 2
    assert store.metrics(run_id, names=["loss"])["step"].tolist() == list(range(1, 13))
    ck = load_checkpoint(store.run_dir(run_id) / "last.pt")
    for k, v in full.core.state_dict().items():
        assert torch.equal(ck["model_state_dict"][k], v), k
    assert main(["--run-id", run_id, "--home", str(tmp_path), "--resume"]) == 2  # completed: nothing to do
    store.close()


@pytest.mark.parametrize("argv,match", [
    (["--lr", "nan"], "lr must be a finite number"),
    (["--epochs", "0"], "epochs must be between"),
    (["--preset", "cnn_rgb16"], "shape demo"),
    (["--model-spec", "{bad json"], "model_spec: the spec is not valid JSON"),
    (["--config", "/nonexistent/x.json"], "cannot read the config file"),
])
def test_cli_invalid_config_exits_2(argv, match, capsys):
    assert main([*argv, "--no-store"]) == 2
    assert "invalid config" in (err := capsys.readouterr().err) and match.split(".*")[0] in err


def test_cli_unknown_json_keys_exit_2(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"lr": 0.1, "learning_rate": 0.1}))
    assert main(["--config", str(path), "--no-store"]) == 2
    assert "unknown config key(s): learning_rate" in capsys.readouterr().err


def test_cli_print_config_and_recipes(capsys):
    assert main(["--recipe", "r3", "--epochs", "2", "--print-config"]) == 0
    cfg = TrainConfig.from_json(capsys.readouterr().out)
    assert (cfg.preset, cfg.optimizer, cfg.lr, cfg.epochs) == ("cnn", "adam", 1e-3, 2)
    assert main(["--recipe", "r1", "--no-store", "--quiet", "--epochs", "3"]) == 0
    assert json.loads(capsys.readouterr().out.strip())["epoch"] == 3


def test_progress_printer_on_a_terminal():
    class Tty(list):
        def write(self, s):
            self.append(s)

        def flush(self):
            pass

        def isatty(self):
            return True

    out = Tty()
    p = Progress(10, stream=out)
    p.step({"step": 10, "epoch": 1, "loss": 0.5, "lr": 1e-3, "samples_per_s": 100.0})
    p.line("epoch 1/1 done")
    text = "".join(out)
    assert text.startswith("\repoch 1 [") and "10/10" in text and "epoch 1/1 done\n" in text
