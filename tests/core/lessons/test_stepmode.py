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
