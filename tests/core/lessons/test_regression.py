"""R1 as PyTorch computes it: the lab's run, its report, why it is slow and "run on", against plain torch."""
import pytest
import torch
from torch import nn

from core.lessons.regression import (
    can_run_on,
    fit_figure,
    least_squares,
    regression_report,
    run_on,
    slow_direction,
)
from core.training.config import recipe
from core.training.trainer import Trainer

X = torch.tensor([[1.0], [2.0], [3.0]])
Y = 2 * X


def tutorial_r1(seed: int, epochs: int = 100) -> tuple[nn.Linear, torch.optim.SGD, float]:
    """The tutorial's loop, written out: Linear(1, 1), MSELoss, SGD lr 0.01, full batch."""
    torch.manual_seed(seed)
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss = torch.tensor(0.0)
    for _ in range(epochs):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(X), Y)
        loss.backward()
        opt.step()
    return model, opt, loss.item()


def epochs_until_close(seed: int, tol: float = 0.01) -> int:
    torch.manual_seed(seed)
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    epochs = 0
    while abs(model.weight.item() - 2) >= tol:
        opt.zero_grad()
        nn.functional.mse_loss(model(X), Y).backward()
        opt.step()
        epochs += 1
    return epochs


@pytest.mark.parametrize("seed", [0, 3])
def test_the_labs_r1_run_ends_where_torch_does_and_not_at_w_2(seed, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_HOME", str(tmp_path))
    trainer = Trainer(recipe("r1").replace(seed=seed))
    for _ in trainer.run():
        pass
    model, _, loss = tutorial_r1(seed)
    report = regression_report(trainer.core, X, Y)
    w, b = report["line"]
    assert w == pytest.approx(float(model.weight), abs=1e-6) and b == pytest.approx(float(model.bias), abs=1e-6)
    assert abs(w - 2) > 0.01  # the tutorial's "learns y = 2x" is not what 100 epochs give
    with torch.no_grad():
        pred = model(X)
    assert report["mse"] == pytest.approx(float(((pred - Y) ** 2).mean()), rel=1e-5)
    assert report["mae"] == pytest.approx(float((pred - Y).abs().mean()), rel=1e-5)
    assert trainer.history[-1]["train_loss"] == pytest.approx(loss, rel=1e-5)


def test_run_on_continues_the_run_until_w_is_within_the_tolerance_as_torch_does(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_HOME", str(tmp_path))
    for seed in (0, 1):
        trainer = Trainer(recipe("r1").replace(seed=seed))
        for _ in trainer.run():
            pass
        ckpt = trainer.checkpoint()
        assert can_run_on(trainer.config, trainer.core, 3)
        result = run_on(trainer.core, trainer.config, ckpt["optimizer_state_dict"], X, Y, start_epoch=100)
        assert result["reached"] and abs(result["w"] - 2) < 0.01
        assert result["epochs"] == epochs_until_close(seed)  # 1,645 for seed 0, 854 for seed 1
        assert result["more"] == result["epochs"] - 100
        assert result["trajectory"]["epoch"].iloc[0] == 100 and len(result["trajectory"]) == result["more"] + 1


def test_run_on_stops_at_its_budget():
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("linear", nn.Linear(1, 1))
    result = run_on(model, recipe("r1"), None, X, Y, start_epoch=0, max_epochs=50)
    assert not result["reached"] and result["more"] == 50


def test_why_it_is_slow_is_the_curvature_of_the_loss_valley():
    """The smallest eigenvalue of the MSE's Hessian in (w, b), computed by autograd, sets SGD's pace."""
    def mse(params):
        return ((params[0] * X[:, 0] + params[1] - Y[:, 0]) ** 2).mean()

    hessian = torch.autograd.functional.hessian(mse, torch.tensor([1.5, 0.9], dtype=torch.float64).float())
    smallest = float(torch.linalg.eigvalsh(hessian.double())[0])
    slow = slow_direction(X, 0.01)
    assert slow["curvature"] == pytest.approx(smallest, rel=1e-6)
    assert slow["per_epoch"] == pytest.approx(0.01 * smallest, rel=1e-6)
    assert slow["mean_x"] == pytest.approx(2.0)
    # Along the valley, the bias that fits best makes up for the weight: b*(w) = mean(y) - w mean(x).
    w = torch.tensor(1.5887)
    best_b = float(torch.linalg.lstsq(torch.ones(3, 1), Y - w * X).solution)
    target_w, target_b = least_squares(X, Y)
    assert target_b + slow["mean_x"] * (target_w - float(w)) == pytest.approx(best_b, abs=1e-5)
    assert (target_w, target_b) == pytest.approx((2.0, 0.0), abs=1e-9)


def test_not_a_line_fit_has_no_w_and_b_and_no_run_on():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 1))
    x = torch.randn(16, 10)
    report = regression_report(model, x, torch.randn(16, 1))
    assert report["line"] is None
    assert not can_run_on(recipe("r2"), model, 448)
    fig = fit_figure(x, torch.randn(16, 1), report["pred"], {"data": "d", "fit": "f", "ideal": "i", "true": "t",
                                                             "pred": "p"})
    assert [t.name for t in fig.data] == ["f", "i"]  # predicted against true, with the diagonal
