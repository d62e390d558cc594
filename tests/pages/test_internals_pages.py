"""AppTest: the training internals and the training doctor on the Runs page (a run's details) and the
Train page (a watched run); "try the fix" starts the one-change run next to the diagnosed one."""
from __future__ import annotations

import contextlib
import io
from types import SimpleNamespace

from core.i18n import CATALOGUE
from core.runs.store import open_store
from core.runs.worker import execute
from core.training.config import TrainConfig
from core.training.trainer import Trainer
from tests.pages.conftest import shown as unescaped
from tests.textcheck import text_problems

EN, ZH = CATALOGUE["en"], CATALOGUE["zh"]
TINY = dict(preset="neural_network", limit_train=256, limit_test=64, val_size=64, augment=False, precision="fp32",
            ema=0.0, tta=False, internals_every=2, batch_size=32, epochs=2, optimizer="adam", lr=1e-3,
            scheduler="none", weight_decay=0.0)


def trained(home, name: str, **changes) -> str:
    store = open_store(home=home, url="")
    config = TrainConfig(**{**TINY, **changes})
    run_id = store.create_run(config.to_dict(), name=name, status="running")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        execute(Trainer(config), store, run_id, SimpleNamespace(quiet=True))
    store.close()
    return run_id


def texts(at) -> str:
    return unescaped(" ".join(str(m.value) for kind in ("markdown", "caption", "error", "warning", "info", "success")
                    for m in at.get(kind)))


def open_run(app, run_id: str):
    at = app("pages/runs.py")
    at.multiselect(key="rn_sel").set_value([run_id]).run()
    at.button_group(key="rn_view").set_value("open").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_runs_page_shows_internals_and_a_healthy_verdict(app, tmp_path):
    run_id = trained(tmp_path, "healthy")
    at = open_run(app, run_id)
    assert {"rn_in_layers", "rn_in_band"} <= {c.key for c in at.get("plotly_chart")}  # the internals' two charts
    assert unescaped(EN["internals.help.update_ratio"]) in texts(at)
    assert at.selectbox(key="rn_in_layer").options  # the layers, in the model's order
    at.selectbox(key="rn_in_stat").set_value("dead").run()
    at.selectbox(key="rn_in_kind").set_value("a").run()
    assert not at.exception and unescaped(EN["internals.help.dead"]) in texts(at)
    assert not [b for b in at.button if b.key and b.key.startswith("rn_dx_try")]  # nothing to fix
    at.button_group(key="lang").set_value("zh").run()
    assert not at.exception and unescaped(ZH["internals.help.dead"]) in texts(at)
    assert not text_problems(at, "zh"), text_problems(at, "zh")


def test_runs_page_diagnoses_a_diverged_run_and_tries_the_fix(app, tmp_path):
    run_id = trained(tmp_path, "too fast", optimizer="sgd", lr=5.0)
    at = open_run(app, run_id)
    shown = texts(at)
    assert EN["doctor.lr_too_high.title"] in shown and "lr 5 → 0.5" in shown
    at.button(key="rn_dx_try_0").click().run()
    assert not at.exception, [e.value for e in at.exception]
    store = open_store(home=tmp_path, url="")
    child = [r for r in store.runs() if r.get("parent") == run_id]
    assert len(child) == 1 and child[0]["config"]["lr"] == 0.5 and child[0]["name"] == "too fast + lr = 0.5"
    assert {k: v for k, v in child[0]["config"].items() if k != "lr"} == \
        {k: v for k, v in store.run(run_id)["config"].items() if k != "lr"}  # one change, the same seed
    store.close()
    assert at.query_params.get("run") in ([f"{run_id},{child[0]['id']}"], f"{run_id},{child[0]['id']}")


def test_train_page_shows_the_doctor_of_the_watched_run(app, tmp_path):
    run_id = trained(tmp_path, "too fast", optimizer="sgd", lr=5.0)
    at = app("pages/train.py")
    at.session_state["tr_run"] = run_id  # as a started run is watched
    at.run()
    assert not at.exception
    assert any(e.label.startswith(EN["doctor.title"].split("{")[0]) and "(0" not in e.label for e in at.expander)
    assert EN["doctor.lr_too_high.title"] in texts(at)
    assert at.button(key="tr_dx_try_0").label == EN["doctor.try"]
    at.button_group(key="lang").set_value("zh").run()
    assert not at.exception and ZH["doctor.lr_too_high.title"] in texts(at)
    # (the run's own error is the worker's English exception text, shown as stored)
    problems = [p for p in text_problems(at, "zh") if "TrainingDiverged" not in p]
    assert not problems, problems
