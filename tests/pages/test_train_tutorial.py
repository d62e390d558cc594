"""AppTest: the Train and Runs pages show PyTorch's true results for the tutorial examples (values
computed here with torch), in both languages, and the form offers what this machine has."""
import io
import json
import re
import time

import pytest
import torch

from core.i18n import CATALOGUE
from tests.core.lessons.test_regression import epochs_until_close, tutorial_r1
from tests.pages.conftest import shown

EN, ZH = CATALOGUE["en"], CATALOGUE["zh"]
pytestmark = pytest.mark.slow


def wait_for(run_id: str, timeout: float = 300) -> dict:
    from pages.ui.state import lab_store

    deadline = time.time() + timeout
    while time.time() < deadline:
        run = lab_store().get_run(run_id)
        if run["status"] in ("completed", "failed", "stopped"):
            return run
        time.sleep(0.5)
    raise AssertionError("run did not finish")


def watched(at) -> str:
    value = at.query_params["run"]
    return value[0] if isinstance(value, list) else value


def texts(at) -> list[str]:
    """Every text the page shows (as the browser shows it: code spans without backticks)."""
    out = []
    for kind in ("markdown", "caption", "info", "success", "warning", "error", "title", "subheader"):
        out += [shown(e.value) for e in getattr(at, kind)]
    out += [shown(b.label) for b in at.button] + [shown(m.label) for m in at.metric]
    out += [p.proto.text for p in at.get("progress")]
    for kind in ("selectbox", "number_input", "radio", "text_input", "toggle", "checkbox"):
        out += [shown(w.label) for w in getattr(at, kind)]
    out += [str(o) for w in at.selectbox for o in w.options]
    return out


_CODE = re.compile(r"`[^`]*`")
# Three English words in a row (2+ letters each), outside code: an untranslated sentence.
_ENGLISH = re.compile(r"\b[A-Za-z]{2,}(?:[ ,']+[A-Za-z]{2,}){2,}\b")


def english_in(text_list: list[str]) -> list[str]:
    allowed = {"CUDA GPU", "Apple MPS"}
    found = []
    for text in text_list:
        for match in _ENGLISH.finditer(_CODE.sub(" ", text)):
            if match.group(0) not in allowed:
                found.append(f"{match.group(0)!r} in {text[:80]!r}")
    return found


def chart_specs(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def start_r1(app):
    at = app("pages/train.py")
    at.button(key="tr_ex_R1").click().run()
    at.button(key="tr_start").click().run()
    assert not at.exception and not at.error
    run = wait_for(watched(at))
    assert run["status"] == "completed", run.get("error")
    at.run()
    assert not at.exception
    return at, run


def test_r1_shows_the_learned_w_and_b_why_it_is_not_2_and_runs_on_until_it_is(app):
    at, _run = start_r1(app)
    model, _opt, _loss = tutorial_r1(0)
    w, b = model.weight.item(), model.bias.item()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["w"] == f"{w:.4f}" and metrics["b"] == f"{b:.4f}"  # 1.5887 and 0.9350 for seed 0
    x = torch.tensor([[1.0], [2.0], [3.0]])
    with torch.no_grad():
        pred = model(x)
    assert metrics[EN["train.mse"]] == f"{float(((pred - 2 * x) ** 2).mean()):.4f}"
    assert metrics[EN["train.mae"]] == f"{float((pred - 2 * x).abs().mean()):.4f}"
    notes = " ".join(texts(at))
    assert "100 epochs are not enough" in notes and "R1: 3 samples" in notes and "goes to ≈ 2" not in notes
    hessian = torch.autograd.functional.hessian(
        lambda p: ((p[0] * x[:, 0] + p[1] - 2 * x[:, 0]) ** 2).mean(), torch.tensor([1.0, 0.0]))
    pct = 100 * 0.01 * float(torch.linalg.eigvalsh(hessian.double())[0])
    assert f"{pct:.2f}%" in notes
    fit = next(s for s in chart_specs(at) if any(t.get("name") == EN["train.fit.data"] for t in s["data"]))
    assert [t["name"] for t in fit["data"]] == [EN["train.fit.data"], EN["train.fit.fit"]]  # the points, the line
    # A constant lr of 0.01 is drawn on an axis that shows it (not -1..1).
    lr_chart = next(s for s in chart_specs(at) if s["layout"].get("title", {}).get("text") == EN["train.chart.lr"])
    lo, hi = lr_chart["layout"]["yaxis"]["range"]
    assert lo <= 0 < 0.01 < hi <= 0.05
    at.button(key="tr_run_on").click().run()
    assert not at.exception
    epochs = epochs_until_close(0)
    assert f"{epochs - 100:,} more epochs, {epochs:,} in all" in shown(at.success[0].value)


def test_r1_in_chinese_and_the_runs_page_for_a_regression_run(app):
    """Each view opens in a fresh session (AppTest cannot rerun a radio whose labels changed language)."""
    from core.safe.share import encode_state

    _at, run = start_r1(app)
    zh = app("pages/train.py", lang="简体中文", run=run["id"])  # the run link, in Chinese
    assert [b.label for b in zh.button if b.key and b.key.startswith("tr_ex_")][:2] == \
        [ZH["train.ex_title.R1"], ZH["train.ex_title.R2"]]
    assert {m.label for m in zh.metric} >= {"w", "b", ZH["train.mse"], ZH["train.mae"]}
    assert not english_in(texts(zh)), english_in(texts(zh))
    # Runs: the regression run shows its test loss, not "None" accuracy, and opens with its own metrics.
    model, _opt, _loss = tutorial_r1(0)
    x = torch.tensor([[1.0], [2.0], [3.0]])
    with torch.no_grad():
        mse = float(((model(x) - 2 * x) ** 2).mean())
    shared = encode_state({"runs": [run["id"]]})
    runs = app("pages/runs.py", lang="简体中文", s=shared)
    row = runs.dataframe[0].value.set_index("id").loc[run["id"]]
    assert float(row["test loss"]) == pytest.approx(mse, abs=1e-4) and row["processes"] == 1
    assert row["best acc"] == row["last acc"] == "—"  # no accuracy for a regression run (and no "None")
    assert runs.selectbox(key="rn_metric").value == "test_loss"
    assert not english_in(texts(runs)), english_in(texts(runs))
    opened = app("pages/runs.py", lang="简体中文", s=shared, rn_view="open")
    assert not opened.exception and not opened.error
    metrics = {m.label: m.value for m in opened.metric}
    assert metrics["w"] == f"{model.weight.item():.4f}" and ZH["train.mae"] in metrics
    assert "None" not in " ".join(texts(opened))
    assert not english_in(texts(opened)), english_in(texts(opened))
    # Predict offers no regression run (it reads digits).
    predict = app("pages/predict.py")
    assert all(run["id"] not in str(o) for o in predict.selectbox(key="pr_run").options)


def test_examples_set_what_their_notes_say(app):
    at = app("pages/train.py")
    at.button(key="tr_ex_R3").click().run()
    values = {k: at.session_state[f"tr_{k}"] for k in ("optimizer", "lr", "scheduler", "batch_size", "epochs",
                                                        "label_smoothing", "weight_decay", "augment")}
    assert values == {"optimizer": "adam", "lr": 1e-3, "scheduler": "none", "batch_size": 64, "epochs": 5,
                      "label_smoothing": 0.0, "weight_decay": 0.0, "augment": False}
    at.button(key="tr_ex_R4").click().run()  # SGD momentum 0.9, constant lr, step mode
    at.button(key="tr_step_one").click().run()
    assert not at.exception and not at.error
    assert {m.label: m.value for m in at.metric}["lr"] == "1.00e-02"
    at.button(key="tr_ex_R5").click().run()
    assert at.session_state["tr_loss"] == "bce_with_logits" and "nn.BCELoss" in shown(at.info[0].value)
    at.button(key="tr_ex_R6").click().run()
    assert "torch.cuda.amp.GradScaler()" in shown(at.info[0].value) and "torch.amp" in shown(at.info[0].value)
    at.button(key="tr_ex_R9").click().run()
    assert at.number_input(key="tr_accum_steps").value == 4
    at.button(key="tr_step_one").click().run()
    assert not at.exception and at.session_state["tr_step_trainer"].batch == 4  # one step: 4 micro-batches
    at.button(key="tr_ex_R8").click().run()
    assert at.selectbox(key="tr_processes").value == min(2, len(at.selectbox(key="tr_processes").options))
    labels = [b.label for b in at.button if b.key and b.key.startswith("tr_ex_")]
    assert labels == [EN[f"train.ex_title.R{i}"] for i in range(1, 10)] and all(" · " in lab for lab in labels)
    optimizers = at.selectbox(key="tr_optimizer").options
    assert "AdamW" in optimizers and "adamw" not in optimizers


def test_the_form_offers_only_this_machines_devices_and_says_why(app):
    at = app("pages/train.py")
    options = at.selectbox(key="tr_device").options
    if not torch.cuda.is_available():
        assert EN["option.device.cuda"] not in options
        assert any("cuda (no CUDA GPU)" in shown(c.value) for c in at.caption)
        from core.safe.share import encode_state

        linked = app("pages/train.py", s=encode_state({"train": {"device": "cuda"}}))  # a link from a GPU machine
        assert not linked.exception and linked.selectbox(key="tr_device").value == "auto"
        assert any("device: cuda → auto" in shown(i.value) for i in linked.info)
    assert at.selectbox(key="tr_processes").options == [str(n) for n in range(1, (__import__("os").cpu_count() or 1)
                                                                              + 1)] or torch.cuda.is_available()


def test_a_run_link_in_a_new_session_shows_that_runs_config(app, tmp_path):
    from core.runs.store import SQLiteRunStore
    from core.training.config import recipe

    config = recipe("r2").replace(lr=0.004, epochs=37, accum_steps=2)
    run_id = SQLiteRunStore(tmp_path).create_run(config.to_dict(), name="linked", status="completed")
    at = app("pages/train.py", run=run_id)
    assert not at.exception
    assert at.selectbox(key="tr_dataset").value == "synthetic" and at.selectbox(key="tr_preset").value == "neural_net"
    assert at.number_input(key="tr_lr").value == pytest.approx(0.004) and at.number_input(key="tr_epochs").value == 37
    assert at.number_input(key="tr_accum_steps").value == 2 and at.radio(key="tr_source").value == "preset"


def test_accumulation_from_the_form_reaches_the_run(app):
    from pages.ui.state import lab_store
    from pages.ui.train_views import lab_jobs

    at = app("pages/train.py")
    at.button(key="tr_ex_R2").click().run()
    at.number_input(key="tr_accum_steps").set_value(4).run()
    at.number_input(key="tr_epochs").set_value(1).run()
    at.button(key="tr_start").click().run()
    assert not at.exception and not at.error
    run_id = watched(at)
    assert lab_store().get_run(run_id)["config"]["accum_steps"] == 4
    lab_jobs().wait(run_id, timeout=300)


def small_lab_checkpoint(epochs_done: int = 1, epochs: int = 2) -> bytes:
    from core.training.config import recipe
    from core.training.trainer import Trainer

    trainer = Trainer(recipe("r3").replace(epochs=epochs, limit_train=256, limit_test=200))
    for ev in trainer.run():
        if ev["kind"] == "epoch" and ev["epoch"] == epochs_done:
            break
    buf = io.BytesIO()
    torch.save(trainer.checkpoint(), buf)
    return buf.getvalue()


def test_evaluate_an_upload_then_resume_it_does_not_break_the_page(app):
    at = app("pages/train.py")
    at.file_uploader(key="tr_upload").upload("lab.pt", small_lab_checkpoint(), "application/octet-stream").run()
    assert not at.exception and not at.error
    at.toggle(key="tr_up_eval").set_value(True).run()
    assert not at.exception
    at.button(key="tr_up_resume").click().run()
    assert not at.exception
    run = wait_for(watched(at))
    assert run["status"] == "completed", run.get("error")
    at.run()  # both evaluations on one page: the upload's and the finished run's
    assert not at.exception, [e.value for e in at.exception]


def tutorial_checkpoint() -> tuple[bytes, torch.nn.Module]:
    """The tutorial's own checkpoint, made in plain Python: R1's LinearModel after 10 epochs."""
    class LinearModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(1, 1)

        def forward(self, x):
            return self.linear(x)

    torch.manual_seed(0)
    model = LinearModel()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.tensor([[1.0], [2.0], [3.0]])
    for _epoch in range(10):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), 2 * x)
        loss.backward()
        opt.step()
    buf = io.BytesIO()
    torch.save({"epoch": 10, "model_state_dict": model.state_dict(), "optimizer_state_dict": opt.state_dict(),
                "loss": loss.item()}, buf)
    return buf.getvalue(), model


def test_a_tutorial_checkpoint_loads_into_the_model_the_learner_names_and_resumes(app):
    data, model = tutorial_checkpoint()
    at = app("pages/train.py")
    at.button(key="tr_ex_R1").click().run()  # the form: R1's settings, 100 epochs
    at.file_uploader(key="tr_upload").upload("tutorial.pt", data, "application/octet-stream").run()
    assert not at.exception
    at.selectbox(key="tr_up_model").set_value("cnn").run()  # not its model: the keys say so
    assert at.error and "linear.weight" in shown(at.error[0].value)
    at.selectbox(key="tr_up_model").set_value("linear").run()
    assert not at.exception and not at.error and at.success
    at.button(key="tr_up_resume").click().run()
    run = wait_for(watched(at))
    assert run["status"] == "completed", run.get("error")
    # It went on from the tutorial's epoch 10 to the form's 100, from the tutorial's weights and SGD state.
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    ckpt = torch.load(io.BytesIO(data), weights_only=True)
    opt.load_state_dict(ckpt["optimizer_state_dict"])
    x = torch.tensor([[1.0], [2.0], [3.0]])
    for _epoch in range(90):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), 2 * x).backward()
        opt.step()
    at.run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["w"] == f"{float(model.linear.weight):.4f}" and metrics["b"] == f"{float(model.linear.bias):.4f}"


def test_step_mode_in_chinese_has_no_english(app):
    at = app("pages/train.py", tr_view="step")
    at.button(key="tr_step_one").click().run()
    at.button_group(key="lang").set_value("zh").run()  # one run in Chinese (AppTest cannot rerun after it)
    assert not at.exception and not at.error
    # The headers as the browser shows them: each column's configured label (else its name).
    headers = []
    for df in at.dataframe:
        config = json.loads(df.proto.columns or "{}")
        headers += [(config.get(c) or {}).get("label") or c for c in df.value.columns]
    assert not english_in(texts(at)), english_in(texts(at))
    assert not any(re.search(r"[A-Za-z]{3,}", h) and not h.startswith("p(") for h in headers), headers
