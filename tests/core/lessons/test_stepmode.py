import pytest
import torch

from core.lessons.stepmode import teaching_step
from core.training.config import TrainConfig
from core.training.trainer import Trainer


def test_teaching_step_reports_a_real_step():
    cfg = TrainConfig(preset="cnn", limit_train=256, limit_test=64, batch_size=32, epochs=1, lr=1e-3,
                      optimizer="adam", scheduler="none", augment=False)
    trainer = Trainer(cfg)
    x, y = trainer.next_batch()
    assert x.shape == (32, 1, 28, 28)
    result = teaching_step(trainer)
    assert result["record"]["step"] == 1 and result["batch_size"] == 32
    assert torch.equal(result["y"], y[:8])
    assert result["loss_after"] < result["loss_before"]  # one Adam step on this batch lowers its loss
    layers = result["layers"].set_index("layer")
    assert set(layers.index) == {"conv1", "fc"} and (layers["grad norm"] > 0).all()
    assert (layers["update norm"] > 0).all()
    assert list(result["predictions"].columns) == ["label", "before", "after", "p(label) before", "p(label) after"]
    for _ in range(trainer.steps_per_epoch - 1):
        teaching_step(trainer)
    with pytest.raises(ValueError, match="finished"):
        teaching_step(trainer)


def test_a_step_whose_batch_would_not_fit_the_memory_budget_is_refused_before_running(monkeypatch):
    """Issue 22, item 6: step mode runs in the server, under the request's memory budget."""
    wide = {"name": "Wide", "input_shape": [1, 28, 28], "layers": [
        {"type": "Conv2d", "args": {"in_channels": 1, "out_channels": 64, "kernel_size": 3, "padding": 1}},
        {"type": "AdaptiveAvgPool2d", "args": {"output_size": 1}}, {"type": "Flatten"},
        {"type": "Linear", "args": {"in_features": 64, "out_features": 10}}]}
    cfg = TrainConfig(model_spec=wide, limit_train=4096, limit_test=64, batch_size=4096, epochs=1,
                      scheduler="none", augment=False)
    trainer = Trainer(cfg)
    monkeypatch.setattr(trainer, "step", lambda: pytest.fail("the step ran"))
    with pytest.raises(ValueError) as err:
        teaching_step(trainer)
    # 51,098 activations (input, conv, pool, flatten, linear) x 4 bytes x 2 (scratch) per sample: 128 MB hold 328.
    assert err.value.code == "budget.step_memory" and err.value.params["fit"] == 328
    assert str(err.value).startswith("a training step on a batch of 4,096 would need about 1,597 MB")
    assert "PYTORCH_LAB_BUDGET_MB" in err.value.message("zh") and trainer.global_step == 0
    monkeypatch.setenv("PYTORCH_LAB_BUDGET_MB", "2000")
    # Its work: 5 forward-pass equivalents x 4,096 samples x 0.55 million multiply-adds = 11 billion.
    with pytest.raises(ValueError, match="multiply-adds") as err:
        teaching_step(trainer)
    assert err.value.code == "budget.batch_macs"
