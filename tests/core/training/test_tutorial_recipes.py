"""The Train page's examples R3-R5, R8 and R9 do what the tutorials do, checked against plain torch."""
import copy

import pytest
import torch
from torch import nn

from core.lessons.stepmode import teaching_step
from core.ml.data import DATASETS
from core.training.config import ConfigError, TrainConfig, recipe, steps_per_epoch
from core.training.trainer import Trainer

SMALL = dict(limit_train=256, limit_test=128, val_size=0)  # every one of the 256 samples trains


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_HOME", str(tmp_path))
    monkeypatch.setenv("PYTORCH_LAB_DOWNLOAD", "0")


def test_r3_is_the_tutorials_plain_recipe():
    cfg = recipe("r3")
    assert (cfg.preset, cfg.optimizer, cfg.lr, cfg.resolved_loss, cfg.batch_size) == ("cnn", "adam", 1e-3,
                                                                                     "cross_entropy", 64)
    assert (cfg.scheduler, cfg.label_smoothing, cfg.weight_decay, cfg.augment, cfg.epochs) == ("none", 0.0, 0.0,
                                                                                             False, 5)
    for name in ("r4", "r5", "r8", "r9"):  # built on it, each changing only what its example is about
        other = recipe(name)
        changed = {k for k in TrainConfig.model_fields if getattr(other, k) != getattr(cfg, k)}
        assert changed == {"r4": {"optimizer", "lr"}, "r5": {"loss"}, "r8": {"processes"},
                           "r9": {"accum_steps"}}[name]
    assert recipe("r4").momentum == 0.9


def first_step_by_hand(trainer: Trainer, make_opt, loss_of) -> dict[str, torch.Tensor]:
    """The tutorial's loop for one step, on the batch the trainer takes next, from the same weights."""
    model = copy.deepcopy(trainer.core).float()
    x, y = trainer.next_batch()
    opt = make_opt(model.parameters())
    opt.zero_grad()
    loss_of(model(x.contiguous()), y).backward()
    opt.step()
    return {k: v.detach() for k, v in model.state_dict().items()}


def assert_same_weights(trainer: Trainer, expected: dict[str, torch.Tensor]) -> None:
    for k, v in trainer.core.state_dict().items():
        torch.testing.assert_close(v.contiguous(), expected[k].contiguous(), atol=2e-6, rtol=1e-5)


def test_r4_is_sgd_momentum_with_a_constant_lr():
    trainer = Trainer(recipe("r4").replace(**SMALL))
    expected = first_step_by_hand(trainer, lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9),
                                  nn.CrossEntropyLoss())
    result = teaching_step(trainer)
    assert result["record"]["lr"] == 0.01 and trainer.current_lr() == 0.01  # no OneCycle: the lr is the one asked
    assert_same_weights(trainer, expected)


def test_r5_is_bce_on_one_hot_targets_the_same_as_bceloss_on_sigmoid():
    trainer = Trainer(recipe("r5").replace(**SMALL))
    x, y = trainer.next_batch()
    with torch.no_grad():
        trainer.core.eval()
        out = trainer.core(x)
        trainer.core.train()
    tutorial = nn.BCELoss()(torch.sigmoid(out), nn.functional.one_hot(y, 10).float())
    result = teaching_step(trainer)
    assert result["loss_before"] == pytest.approx(float(tutorial), rel=1e-5)


def test_r9_accumulates_four_micro_batches_into_one_step_of_64():
    acc = Trainer(recipe("r9").replace(**SMALL))
    assert acc.micro_batch == 16 and acc.steps_per_epoch == 4  # 256 samples: 4 steps of 4 x 16
    expected = first_step_by_hand(acc, lambda p: torch.optim.Adam(p, lr=1e-3), nn.CrossEntropyLoss())
    acc.step()
    assert acc.batch == 4 and acc.global_step == 1
    assert_same_weights(acc, expected)  # the same update as one batch of 64


@pytest.mark.parametrize("samples,batch,accum,processes", [(7000, 128, 1, 1), (7000, 64, 4, 1), (7000, 64, 1, 2),
                                                           (3, 3, 1, 2), (448, 64, 3, 2), (1000, 100, 7, 1)])
def test_steps_per_epoch_counts_as_the_trainer(samples, batch, accum, processes):
    """Written out as core/training/trainer.py counts (each process's shard, its micro-batches, every accum_steps
    of them one step); a single process is checked against a real Trainer (test_ddp_job covers two)."""
    # val_size=0: every one of the samples trains (a validation split would hold some out first).
    cfg = recipe("r3").replace(batch_size=batch, accum_steps=accum, limit_train=samples, epochs=1, val_size=0)
    n_shard = samples // processes
    micro = max(1, max(1, batch // processes) // accum)
    batches = -(-n_shard // micro)
    assert steps_per_epoch(samples, batch, accum, processes) == -(-batches // accum)
    if processes == 1:
        assert Trainer(cfg).steps_per_epoch == steps_per_epoch(samples, batch, accum, processes)


def test_processes_must_fit_the_batch_and_the_data():
    with pytest.raises(ConfigError, match="processes × accum_steps"):
        recipe("r3").replace(batch_size=4, accum_steps=4, processes=2)
    with pytest.raises(ConfigError, match="3 training samples"):
        recipe("r1").replace(processes=4, batch_size=8)
    assert recipe("r1").replace(processes=3).processes == 3
    assert DATASETS["linear"].train_size == 3


@pytest.mark.slow
def test_r3_passes_the_tutorials_90_percent_on_the_bundled_digits():
    trainer = Trainer(recipe("r3"))
    for _ in trainer.run():
        pass
    assert trainer.epoch == 5 and trainer.history[-1]["test_acc"] > 0.90
