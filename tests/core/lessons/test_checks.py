"""The lesson engine: every exercise kind checked against real PyTorch (right, wrong, hints, solution) and
bad input refused with a clear LabError, never another exception."""
from __future__ import annotations

import math
import tempfile

import pytest
import torch
from torch import nn

from core.errors import LabError
from core.lessons import checks
from core.lessons.checks import check, display_order, parse_numbers, parse_order, parse_shape
from core.lessons.course import (
    answer_display,
    course,
    hints,
    lab_target,
    lab_url,
    reference_answer,
    solution_ready,
    solution_text,
)
from core.lessons.probes import ERROR, PROBES, SCENARIOS, run_probe
from core.lessons.prompts import page_prompt, page_prompts, question, reveal
from core.lessons.schema import LAB_PAGES, TRAIN_FORM_FIELDS
from core.ml.zoo import preset_spec
from core.safe.share import decode_state

HOSTILE = ["__import__('os').system('id')", "x.__class__.__bases__", "lambda: 1", "(" * 300 + "x" + ")" * 300,
           "9**9**9**9", "zeros(100000, 100000)", "open('/etc/passwd')"]


def ex(lesson: str, exercise: str):
    return course().exercise(lesson, exercise)


def wrong(result) -> str:
    assert not result.correct
    return result.feedback.message()


# --------------------------------------------------------------------------- kinds
def test_number():
    mean = ex("tensors_autograd", "mean_ab")
    truth = (torch.tensor([[1.0, 2, 3], [4, 5, 6]]) + torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])).mean()
    assert check(mean, f"{truth.item():.6f}").correct
    assert check(mean, f"[{truth.item()}]").correct
    assert "lower" in wrong(check(mean, "3.35")) and "higher" in wrong(check(mean, "23.1"))
    assert "1 number(s); the answer has" not in wrong(check(mean, "1, 2"))  # a count mismatch is said
    grad = ex("tensors_autograd", "grad_two")
    w = torch.tensor([3.14, 1.0], requires_grad=True)
    (2 * w[0] * w[1] + w[1] * torch.cos(w[0])).backward()
    assert check(grad, f"{w.grad[0]:.4f}, {w.grad[1]:.4f}").correct
    assert "position(s) 1, 2" in wrong(check(grad, "2.0, 6.28"))
    for bad in ["", "   ", "three", "1 +", "0x10", "1e", 5, None, "1, " * 100]:
        with pytest.raises(LabError):
            check(mean, bad)


def test_counts_are_exact_and_thousands_separators_read():
    params = ex("data_cnn", "params_cnn")
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(16 * 14 * 14, 10))
    n = sum(p.numel() for p in model.parameters())
    assert check(params, f"{n:,}").correct and check(params, str(n)).correct
    assert not check(params, str(n - 1)).correct and not check(params, str(n + 1)).correct
    sampler = ex("devices_deploy", "sampler_len")
    assert not check(sampler, "3500").correct  # within a relative tolerance of 3,501, but a count is exact


def test_shape_and_error():
    bcast = ex("tensors_autograd", "broadcast_shape")
    truth = (torch.zeros(5, 1, 4) + torch.zeros(3, 1)).shape
    for text in [", ".join(map(str, truth)), str(tuple(truth)), str(truth), "×".join(map(str, truth))]:
        assert check(bcast, text).correct, text
    assert "dimension(s) 1 is not" in wrong(check(bcast, "5, 1, 4"))
    assert "accepts this operation" in wrong(check(bcast, "error"))
    view = ex("tensors_autograd", "view_after_transpose")
    assert check(view, "error").correct and check(view, "报错").correct
    assert "accept this operation at all" in wrong(check(view, "6, 4"))
    for bad in ["six, four", "-1, 4", "2.5, 4", "1," * 20]:
        with pytest.raises(LabError) as caught:
            check(bcast, bad)
        assert caught.value.code == "lessons.bad_shape"
    assert parse_shape("()") == () and parse_shape("torch.Size([])") == () and parse_shape("ERROR") is ERROR


def test_choice_computed_by_torch():
    detach = ex("tensors_autograd", "detach_flag")
    truth = (torch.tensor([1.0, 2.0], requires_grad=True) * 2).detach().requires_grad
    assert check(detach, "yes" if truth else "no").correct
    assert not check(detach, "no" if truth else "yes").correct
    profile = ex("devices_deploy", "profile_op")
    assert check(profile, "addmm").correct and not check(profile, "conv").correct
    for bad in ["maybe", "", 3, None]:
        with pytest.raises(LabError):
            check(detach, bad)


def test_expression_on_several_seeds():
    rev = ex("tensors_autograd", "reverse_dims")
    assert check(rev, "x.permute(2, 1, 0)").correct and check(rev, "x.transpose(0, 2)").correct
    assert "values differ" in wrong(check(rev, "x.view(4, 3, 2)"))
    assert "shape" in wrong(check(rev, "x.transpose(0, 1)"))
    mse = ex("modules_training", "mse_expr")
    assert check(mse, "((target - pred)**2).mean()").correct and not check(mse, "((pred - target)**2).sum()").correct
    # The value of the first draw, typed as a number, is right on that draw only: the check draws again.
    torch.manual_seed(0)
    pred, target = torch.randn(8, 1), torch.randn(8, 1)
    first = ((pred - target) ** 2).mean().item()
    assert checks.compare(torch.tensor(first), ((pred - target) ** 2).mean(), 1e-4, 1e-5) is None
    assert not check(mse, repr(first)).correct
    assert "PyTorch refuses" in wrong(check(rev, "x.view(5, 5)"))
    for text in HOSTILE:
        with pytest.raises(LabError) as caught:
            check(rev, text)
        assert caught.value.code in ("lessons.bad_answer_expression", "lessons.answer_too_long"), text


def test_model_to_a_target():
    build = ex("modules_training", "build_mlp")
    assert check(build, preset_spec("mlp_sequential")).correct
    assert check(build, "mlp_sequential").correct
    assert "241 parameters" in wrong(check(build, "neural_net"))
    spec = preset_spec("mlp_sequential").to_dict()
    spec["layers"][-1]["args"]["out_features"] = 3
    assert "outputs shape" in wrong(check(build, spec))
    spec = preset_spec("mlp_sequential").to_dict()
    spec["layers"][2]["args"]["in_features"] = 49
    assert "shape error" in wrong(check(build, spec))
    cnn = ex("data_cnn", "build_cnn")
    assert "input of shape" in wrong(check(cnn, "cnn_rgb16"))
    assert "20,000 to 60,000" in wrong(check(cnn, "lab_cnn"))
    for bad in ["{not json", '{"layers": 5}', "no_such_preset", '{"name": "X", "input_shape": [10], "layers": '
                '[{"type": "Linear", "args": {"in_features": 10, "out_features": 60000}}, {"type": "Linear", '
                '"args": {"in_features": 60000, "out_features": 60000}}]}', 42, "[" * 10_000]:
        with pytest.raises(LabError):
            check(build, bad)


def test_parsons_orders_and_malformed_orders():
    loop = ex("modules_training", "parsons_loop")
    for order in loop.orders:
        assert check(loop, order).correct
    assert check(loop, ", ".join(loop.orders[0])).correct  # typed as text
    assert "first 4 line(s)" in wrong(check(loop, ["loop", "out", "loss", "back", "zero", "step"]))
    assert "do not belong" in wrong(check(loop, ["loop", "zero", "out", "loss", "back_out", "step"]))
    assert "missing" in wrong(check(loop, ["loop", "zero", "out"]))
    for bad, code in [([], "lessons.parsons.empty"), ("", "lessons.parsons.empty"),
                      (["loop", "loop"], "lessons.parsons.repeated"), (["loop", "nope"], "lessons.parsons.unknown"),
                      (["loop"] * 50, "lessons.parsons.too_long"), ([1, 2], "lessons.parsons.not_a_list"),
                      ({"a": 1}, "lessons.parsons.not_a_list"), (None, "lessons.parsons.not_a_list")]:
        with pytest.raises(LabError) as caught:
            check(loop, bad)
        assert caught.value.code == code, bad
    shown = display_order(loop)
    assert sorted(shown) == sorted(line.id for line in loop.lines)
    assert [i for i in shown if i in loop.orders[0]] not in loop.orders  # never listed in a right order
    assert parse_order("loop zero", loop) == ["loop", "zero"]


def test_fix_a_bug_three_ways():
    zero = ex("modules_training", "fix_zero_grad")
    assert check(zero, "after_step").correct and check(zero, "before_forward").correct
    assert not check(zero, "before_step").correct and not check(zero, "missing").correct
    nan = ex("tensors_autograd", "fix_log_softmax")
    assert check(nan, "log_softmax(z, dim=1)").correct
    assert check(nan, "z - logsumexp(z, dim=1, keepdim=True)").correct
    assert "inf or NaN" in wrong(check(nan, "log(softmax(z, dim=1))"))
    assert "gradient" in wrong(check(nan, "sqrt(z - z) + log_softmax(z, dim=1)"))  # finite, NaN gradient
    assert "values differ" in wrong(check(nan, "log(softmax(z, dim=1) + 1e-8)"))
    shape = ex("data_cnn", "fix_linear_size")
    assert "shape error" in wrong(check(shape, shape.broken))
    fixed = preset_spec("cnn")
    assert check(shape, fixed).correct
    assert checks.broken_fails(shape) and checks.broken_fails(nan)
    for text in HOSTILE[:3]:
        with pytest.raises(LabError):
            check(nan, text)


def test_scenarios_run_real_code():
    """The fixes are decided by running them, and the runs agree with PyTorch's documented behaviour."""
    assert SCENARIOS["accumulate"][0]("zero_grad") and not SCENARIOS["accumulate"][0]("nothing")
    assert SCENARIOS["resume"][0]("model_and_optimizer") and not SCENARIOS["resume"][0]("model_only")
    assert SCENARIOS["eval_mode"][0]("eval") and not SCENARIOS["eval_mode"][0]("no_grad")
    assert SCENARIOS["compile"][0]("script") and not SCENARIOS["compile"][0]("trace")
    state = torch.random.get_rng_state()
    run_probe("scenario", {"name": "zero_grad", "variant": "after_step"})
    assert torch.equal(state, torch.random.get_rng_state())  # a probe leaves the caller's random state alone


def test_training_challenge_from_the_run_store():
    from core.runs.store import SQLiteRunStore

    goal = ex("modules_training", "train_r1_goal").goal
    with tempfile.TemporaryDirectory() as home:
        store = SQLiteRunStore(home)
        good = store.create_run({"dataset": "linear"}, status="completed")
        store.log_metrics(good, [(10, 1, "test_loss", 5.0), (200, 60, "test_loss", 0.004),
                                 (300, 101, "test_loss", 0.0)])
        slow = store.create_run({"dataset": "linear"}, status="completed")
        store.log_metrics(slow, [(100, 100, "test_loss", 0.12)])
        late = store.create_run({"dataset": "linear"}, status="completed")
        store.log_metrics(late, [(300, 101, "test_loss", 0.001)])  # after the epoch limit: does not count
        other = store.create_run({"dataset": "digits8k"}, status="completed")
        training = ex("modules_training", "train_r1_goal")
        assert check(training, good, store).correct
        assert "at most 0.01" in wrong(check(training, slow, store))
        assert "no `test_loss`" not in wrong(check(training, late, store)) and not check(training, late, store).correct
        assert "digits8k" in wrong(check(training, other, store))
        for bad in ["../../etc/passwd", "r-missing", "", 5]:
            with pytest.raises(LabError):
                check(training, bad, store)
        with pytest.raises(LabError):
            check(training, good, None)
        store.close()
    assert goal.at_most == 0.01


# --------------------------------------------------------------------------- hints, solutions, links
def test_hints_one_at_a_time_and_the_solution_after_n_tries():
    mean = ex("tensors_autograd", "mean_ab")
    assert hints(mean, 0) == [] and len(hints(mean, 1)) == 1 and len(hints(mean, 99)) == len(mean.hints)
    assert hints(mean, 1, "zh")[0] != hints(mean, 1, "en")[0]
    assert not solution_ready(mean, mean.tries - 1) and solution_ready(mean, mean.tries)
    truth = (torch.tensor([[1.0, 2, 3], [4, 5, 6]]) + torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])).mean()
    assert f"{truth.item():.6g}" in solution_text(mean, "en") and "{answer}" not in solution_text(mean, "zh")


def test_every_exercise_has_a_working_reference_and_display():
    for lesson in course().lessons:
        for exercise in lesson.exercises:
            for lang in ("en", "zh"):
                short, _ = answer_display(exercise, lang)
                assert short, exercise.id
            if exercise.kind != "training":
                assert check(exercise, reference_answer(exercise)).correct, exercise.id


def test_lab_links_carry_page_state_and_a_share_token():
    from pages.ui.frame import PAGES
    from pages.ui.share import TRAIN_FIELDS

    assert set(LAB_PAGES) == {p[3] for p in PAGES} - {"lessons"}
    assert set(TRAIN_FORM_FIELDS) == set(TRAIN_FIELDS)
    step = course().lesson("modules_training").steps[0]
    page, params = lab_target(step.lab, "zh")
    assert page == "builder" and params["bld_tab"] == "summary" and params["lang"] == "简体中文"
    assert decode_state(params["s"])["model"]["name"] == "LinearModel"
    train = course().lesson("modules_training").steps[-1].lab
    state = decode_state(lab_target(train)[1]["s"])
    assert state["train"]["preset"] == "linear" and state["train"]["source"] == "preset"
    assert lab_url(course().lesson("tensors_autograd").steps[2].lab).startswith("tensors?ten_view=broadcast")


# --------------------------------------------------------------------------- predictions
def test_page_prompts_reveal_the_real_result_and_the_gap():
    assert set(page_prompts()) == {"tensors_broadcast", "autograd_sign", "builder_params", "data_normalize",
                                   "train_lr"}
    shape = reveal(page_prompt("tensors_broadcast"), "3, 1")
    assert not shape.correct and shape.actual == "(3, 4)" and "dim 1: 1 → 4" in shape.gap and "(3, 4)" in shape.explain
    x = torch.tensor(1.0, requires_grad=True)
    (x**3 - 6 * x).backward()
    sign = reveal(page_prompt("autograd_sign"), str(-x.grad.item()), "zh")
    assert not sign.correct and float(sign.actual) == x.grad.item() and sign.gap == f"{2 * x.grad.item():g}"
    builder = page_prompt("builder_params")
    spec = preset_spec("linear")
    asked = question(builder, "en", {"model": spec})
    assert "LinearModel" in asked and " 2 " in asked
    assert reveal(builder, str(2 + 1 * 10 + 10), "en", {"model": spec}).correct
    curve = reveal(page_prompt("train_lr"), "diverges", "en")
    assert curve.correct and set(curve.chart) == {"lr = 0.01", "lr = 0.1", "lr = 1"}
    assert all(v is None or math.isfinite(v) for series in curve.chart.values() for v in series)
    for bad in ["", "abc", "1, 2, 3"]:
        with pytest.raises(LabError):
            reveal(page_prompt("data_normalize"), bad)
    with pytest.raises(LabError):
        reveal(page_prompt("train_lr"), "sideways")


def test_probes_validate_their_arguments():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        PROBES["expr"].args.model_validate({"expr": "x + 1"})  # x is not defined
    with pytest.raises(ValidationError):
        PROBES["scenario"].args.model_validate({"name": "resume", "variant": "nope"})
    with pytest.raises(LabError):
        run_probe("no_such_probe", {})
    with pytest.raises(LabError):
        run_probe("expr", {"expr": "zeros(2, 3) + zeros(4, 5)"})  # torch refuses: said as a LabError
    assert run_probe("expr", {"expr": "zeros(2, 3) + zeros(4, 5)", "expect_error": True}) is ERROR
    with pytest.raises(LabError):
        run_probe("expr", {"expr": "zeros(2)", "expect_error": True})
    assert parse_numbers("1,234", expect=1) == [1234.0] and parse_numbers("1,234") == [1.0, 234.0]
    assert math.isinf(parse_numbers("inf")[0]) and math.isnan(parse_numbers("nan")[0])
