"""AppTest tests of the Runs page's comparisons, in English and Chinese: a pinned baseline with best/last
and compare-at-a-step tables, seed groups with a verdict, a sweep, the run actions (clone → tweak →
enqueue, repeat with N seeds), the Train page's sweep panel, and the share link of each view.

The runs are stored directly with made-up metrics (no training), and one fake "running" job holds
the only job slot, so what a test queues stays queued: no worker process is started.

Interactions run in English: AppTest formats a radio's value with the page's format function
in the test's own process, where the page's language is unknown, so a Chinese page cannot be
driven widget by widget. The Chinese tests open each view the way a colleague does, from a
share link, and read what it shows.
"""
from __future__ import annotations

import time

import pytest

from core.i18n import CATALOGUE
from core.runs.groups import group_key
from core.runs.store import RunStore, SQLiteRunStore
from core.safe.share import encode_state
from core.training.config import TrainConfig
from tests.pages.conftest import shown
from tests.pages.test_runs_page import share_params

LANGS = {"en": "English", "zh": "简体中文"}
BASE = TrainConfig(preset="cnn", optimizer="adam", lr=1e-3, scheduler="none", weight_decay=0.0, augment=False,
                   batch_size=64, epochs=2, limit_train=256, limit_test=128)
SWEEP = "s20250101-120000-abcdef"
# Final test accuracies: lr 0.001 and 0.003 clearly apart; seed noise of a few tenths.
ACC = {(0.001, 0): 0.910, (0.001, 1): 0.914, (0.001, 2): 0.912, (0.003, 0): 0.930, (0.003, 1): 0.934,
       (0.003, 2): 0.931}


def add_run(store: RunStore, config: TrainConfig, final: float, name: str, **kw) -> str:
    run_id = store.create_run(config.to_dict(), name=name, status="completed", kind="job", **kw)
    rows = [(s, 1 + (s - 1) // 4, "loss", 2.0 / s, 1000.0 + s) for s in range(1, 9)]
    rows += [(4, 1, "test_acc", final - 0.05, 1004.0), (8, 2, "test_acc", final, 1008.0),
             (4, 1, "test_loss", 0.5, 1004.0), (8, 2, "test_loss", 1 - final, 1008.0)]
    store.log_metrics(run_id, rows)
    store.update_run(run_id, started=1000.0, finished=1010.0, epoch=2, step=8)
    return run_id


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """A lab home with a sweep (lr 0.001 / 0.003 × seeds 0-2), a run of one seed, and the job slot taken."""
    monkeypatch.setenv("PYTORCH_LAB_JOB_CAP", "1")
    monkeypatch.setenv("PYTORCH_LAB_HEARTBEAT_S", "20")  # the fake worker below stays "alive" for 300 s
    store = SQLiteRunStore(tmp_path)
    ids = {key: add_run(store, BASE.replace(lr=key[0], seed=key[1]), acc, f"lr={key[0]:g} seed {key[1]}",
                        sweep=SWEEP) for key, acc in ACC.items()}
    ids["single"] = add_run(store, BASE.replace(lr=0.01), 0.95, "lr=0.01 alone")
    busy = store.create_run(BASE.replace(epochs=9).to_dict(), name="busy", status="running", kind="job")
    store.update_run(busy, heartbeat=time.time(), host=None)
    ids["busy"] = busy
    yield store, ids
    store.close()


def text_of(at) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "success", "warning", "error")
             for e in getattr(at, kind)]
    return shown("\n".join(str(p) for p in parts))


def queued(store: RunStore) -> list[dict]:
    return [r for r in store.runs() if r["status"] == "queued"]


def test_pinned_baseline_best_last_and_compare_at_a_step(app, lab, lang="en"):
    _, ids = lab
    T = CATALOGUE[lang]
    at = app("pages/runs.py", lang=LANGS[lang])
    a, b = ids[(0.001, 0)], ids[(0.003, 0)]
    at.multiselect(key="rn_sel").set_value([b]).run()
    at.selectbox(key="rn_base").set_value(b).run()
    at.multiselect(key="rn_sel").set_value([a]).run()  # the baseline stays pinned when it is not selected
    assert not at.exception and not at.error
    table = at.dataframe[1].value  # the runs table, then best/last
    assert list(table["id"]) == [a, b]
    assert {"test_acc best", "test_acc last", "Δ test_acc best", "Δ test_acc last"} <= set(table.columns)
    assert table["Δ test_acc last"].tolist() == pytest.approx([(0.910 - 0.930) * 100, 0.0])  # percentage points
    chart = at.get("plotly_chart")[0].proto.spec
    assert T["runs.compare.baseline_tag"] in chart and '"dash":"dash"' in chart.replace(" ", "")
    at.toggle(key="rn_at_on").set_value(True).run()
    at.slider(key="rn_at_step").set_value(4).run()
    at_table = at.dataframe[2].value
    assert at_table["test_acc"].tolist() == pytest.approx([0.860, 0.880])
    assert at_table["test_loss"].tolist() == [0.5, 0.5]
    assert at_table["Δ test_acc"].tolist() == pytest.approx([-2.0, 0.0])
    assert T["runs.compare.at_title"].format(x=T["runs.x.step"], value=4) in text_of(at)
    assert not at.exception and not at.error
    extras = at.session_state["share_extras"]
    assert extras["base"] == b and extras["at"] == ["step", 4] and extras["runs"] == [a]
    # The link opens the same comparison in a fresh session: selection, baseline, point.
    fresh = app("pages/runs.py", **share_params(at))
    assert fresh.selectbox(key="rn_base").value == b and fresh.toggle(key="rn_at_on").value is True
    assert fresh.slider(key="rn_at_step").value == 4 and fresh.dataframe[2].value["test_acc"].tolist() == \
        pytest.approx([0.860, 0.880])


def test_a_deleted_baseline_says_so(app, lab, lang="en"):
    store, ids = lab
    gone = ids[(0.003, 2)]
    store.delete_run(gone)
    at = app("pages/runs.py", lang=LANGS[lang], s=encode_state({"runs": [ids[(0.001, 0)]], "base": gone}))
    assert not at.exception
    expected = CATALOGUE[lang]["err.runs.baseline_gone"].format(run=gone)
    assert any(shown(w.value) == expected for w in at.warning)
    assert at.selectbox(key="rn_base").value == "" and at.session_state["share_extras"]["base"] is None


def test_seed_groups_band_summary_and_verdict(app, lab, lang="en"):
    store, ids = lab
    T = CATALOGUE[lang]
    ga, gb, single = (group_key(store.run(ids[k])["config"]) for k in ((0.001, 0), (0.003, 0), "single"))
    at = app("pages/runs.py", lang=LANGS[lang])
    at.multiselect(key="rn_sel").set_value([ids[(0.001, 1)], ids[(0.003, 2)]]).run()
    at.button_group(key="rn_view").set_value("groups").run()
    assert at.multiselect(key="rn_groups").value == [ga, gb]  # the groups of the selected runs
    assert not at.exception and not at.error
    spec = at.get("plotly_chart")[0].proto.spec
    assert spec.count('"fill":"toself"') == 2 and "(n=3)" in spec  # a band per group of 3
    table = at.dataframe[1].value
    assert table.iloc[:, 0].tolist() == ["lr=0.001", "lr=0.003"] and table.iloc[:, 1].tolist() == ["0, 1, 2"] * 2
    assert table[T["runs.compare.col.last"].format(metric="test_acc")].tolist() == ["91.20% ± 0.20",
                                                                                     "93.17% ± 0.21"]
    text = text_of(at)
    headline = T["runs.verdict.real"].split("**")[1]
    assert headline in text and "Welch" in text and "p = " in text
    # A group of one: no band, and the verdict says too few seeds.
    at.multiselect(key="rn_groups").set_value([ga, single]).run()
    at.selectbox(key="rn_gmetric").set_value("test_acc").run()
    assert at.get("plotly_chart")[0].proto.spec.count('"fill":"toself"') == 1
    text = text_of(at)
    assert T["runs.verdict.too_few"].split("**")[1] in text
    assert T["runs.groups.single"].format(groups="lr=0.01")[:12] in text
    assert at.session_state["share_extras"]["groups"] == [ga, single]
    fresh = app("pages/runs.py", **share_params(at))
    assert fresh.multiselect(key="rn_groups").value == [ga, single] and not fresh.exception


def test_identical_runs_say_no_difference(app, lab):
    store, _ = lab
    for seed in (0, 1):  # two groups whose every seed ends at exactly the same value
        add_run(store, BASE.replace(lr=0.02, seed=seed), 0.9, f"same a {seed}")
        add_run(store, BASE.replace(lr=0.03, seed=seed), 0.9, f"same b {seed}")
    keys = [group_key(BASE.replace(lr=lr).to_dict()) for lr in (0.02, 0.03)]
    at = app("pages/runs.py", rn_view="groups", s=encode_state({"groups": keys}))
    assert CATALOGUE["en"]["runs.verdict.identical"].split("**")[1] in text_of(at) and not at.exception


def test_repeat_with_n_seeds_queues_the_missing_ones(app, lab):
    store, ids = lab
    at = app("pages/runs.py")
    at.multiselect(key="rn_sel").set_value([ids["single"]]).run()
    at.button_group(key="rn_view").set_value("open").run()
    at.number_input(key="rn_nseeds").set_value(3).run()
    at.button(key="rn_repeat").click().run()
    assert not at.exception and not at.error
    new = queued(store)
    assert sorted(r["config"]["seed"] for r in new) == [1, 2]  # seed 0 exists
    assert {r["parent"] for r in new} == {ids["single"]} and {r["config"]["lr"] for r in new} == {0.01}
    assert CATALOGUE["en"]["runs.groups.queued"].format(n=2) in text_of(at)
    at.button(key="rn_repeat").click().run()  # nothing more to queue
    assert len(queued(store)) == 2 and CATALOGUE["en"]["runs.groups.complete"].format(n=3) in text_of(at)
    store.delete_run(ids["single"])  # deleted meanwhile: a clear message, nothing queued
    at.button(key="rn_repeat").click().run()
    assert len(queued(store)) == 2 and ids["single"] in text_of(at)


def test_sweep_view(app, lab, lang="en"):
    T = CATALOGUE[lang]
    at = app("pages/runs.py", lang=LANGS[lang])
    at.button_group(key="rn_view").set_value("sweep").run()
    assert not at.exception and not at.error and at.selectbox(key="rn_sweep").value == SWEEP
    text = text_of(at)
    assert T["runs.sweep.score.test"].split("{metric}")[0] in text  # ranked by the test metric, and says so
    best = next(s.value for s in at.success)
    assert "lr=0.003" in best and "93.17%" in shown(best)
    charts = [c.proto.spec for c in at.get("plotly_chart")]
    assert '"type":"parcoords"' in charts[0].replace(" ", "") and len(charts) == 2  # + test_acc vs lr
    table = at.dataframe[1].value
    assert len(table) == 6 and table["lr"].tolist() == [0.001] * 3 + [0.003] * 3
    assert at.session_state["share_extras"]["sweep"] == SWEEP
    at.button(key="rn_sweep_groups").click().run()  # one click: the sweep as seed groups
    assert at.button_group(key="rn_view").value == "groups" and len(at.multiselect(key="rn_groups").value) == 2
    fresh = app("pages/runs.py", rn_view="sweep", s=encode_state({"sweep": "s-gone"}))
    assert any("s-gone" in shown(w.value) for w in fresh.warning) and not fresh.exception


def test_clone_tweak_enqueue_and_compare_with_the_parent(app, lab, lang="en"):
    store, ids = lab
    T = CATALOGUE[lang]
    parent = ids[(0.001, 1)]
    at = app("pages/runs.py", lang=LANGS[lang])
    at.multiselect(key="rn_sel").set_value([parent]).run()
    at.button_group(key="rn_view").set_value("open").run()
    at.button(key="rn_clone").click().run()
    at.switch_page("pages/train.py").run()  # AppTest follows st.switch_page for one run only
    assert not at.exception and not at.error
    assert at.number_input(key="tr_lr").value == 0.001 and at.selectbox(key="tr_preset").value == "cnn"
    assert T["train.clone.unchanged"] in text_of(at)
    at.number_input(key="tr_lr").set_value(0.002).run()
    text = text_of(at)
    assert "lr 0.001 → 0.002" in text and "limit_train=256" in text  # what changed, what is kept
    css = [h.proto.body for h in at.get("html")]
    assert any(".st-key-tr_lr {" in c and "outline" in c for c in css)  # the changed setting is highlighted
    at.button(key="tr_start").click().run()
    assert not at.exception and not at.error
    (child,) = queued(store)
    assert child["parent"] == parent and child["config"]["lr"] == 0.002
    assert child["config"]["seed"] == 1 and child["config"]["limit_train"] == 256  # the rest is the parent's
    at.button(key="tr_vs_parent").click().run()
    at.switch_page("pages/runs.py").run()
    assert at.multiselect(key="rn_sel").value == [parent, child["id"]]
    assert at.button_group(key="rn_view").value == "compare" and at.selectbox(key="rn_base").value == parent
    assert not at.exception


def test_a_clone_whose_parent_was_deleted_queues_nothing(app, lab):
    store, ids = lab
    parent = ids[(0.003, 1)]
    at = app("pages/runs.py")
    at.multiselect(key="rn_sel").set_value([parent]).run()
    at.button_group(key="rn_view").set_value("open").run()
    at.button(key="rn_clone").click().run()
    at.switch_page("pages/train.py").run()
    store.delete_run(parent)
    at.button(key="tr_start").click().run()
    assert queued(store) == []
    assert any(parent in shown(e.value) for e in at.error) and not at.exception
    # Sharing the clone: a link to the Train page carries the parent (and says when it is gone).
    assert at.session_state["share_extras"]["clone"] == parent
    fresh = app("pages/train.py", s=encode_state({"clone": parent}))
    assert any(parent in shown(e.value) for e in fresh.error) and "tr_clone" not in fresh.session_state


def test_train_page_sweep_panel(app, lab, lang="en"):
    store, _ = lab
    T = CATALOGUE[lang]
    at = app("pages/train.py", lang=LANGS[lang])
    at.radio(key="tr_source").set_value("preset").run()
    at.selectbox(key="tr_preset").set_value("cnn").run()
    at.text_input(key="tr_sw_v1").set_value("0.001, 0.003").run()
    at.selectbox(key="tr_sw_f2").set_value("batch_size").run()
    at.text_input(key="tr_sw_v2").set_value("64, 128").run()
    at.number_input(key="tr_sw_seeds").set_value(2).run()
    assert T["train.sweep.preview"].format(n=8, settings=4, seeds=2) in text_of(at)
    at.text_input(key="tr_sw_v2").set_value("64, 128, 256").run()
    at.number_input(key="tr_sw_seeds").set_value(3).run()  # 18 runs: refused, said why
    assert any(CATALOGUE[lang]["err.sweep.too_many"].format(n=18, settings=6, seeds=3, cap=16) == shown(e.value)
               for e in at.error)
    assert at.button(key="tr_sw_go").disabled
    at.text_input(key="tr_sw_v1").set_value("0.001, 20").run()  # out of range: named
    assert any("lr=20" in shown(e.value) for e in at.error)
    at.text_input(key="tr_sw_v1").set_value("0.001, 0.003").run()
    at.text_input(key="tr_sw_v2").set_value("64, 128").run()
    at.number_input(key="tr_sw_seeds").set_value(2).run()
    at.button(key="tr_sw_go").click().run()
    assert not at.exception and not at.error
    runs = queued(store)
    assert len(runs) == 8 and len({r["sweep"] for r in runs}) == 1
    assert sorted({(r["config"]["lr"], r["config"]["batch_size"]) for r in runs}) == [
        (0.001, 64), (0.001, 128), (0.003, 64), (0.003, 128)]
    at.button(key="tr_sw_open").click().run()
    at.switch_page("pages/runs.py").run()
    assert at.button_group(key="rn_view").value == "sweep" and at.selectbox(key="rn_sweep").value == runs[0]["sweep"]
    assert not at.exception


def test_every_view_in_chinese(app, lab):
    """Each view opened from a link in Chinese: its texts are the Chinese ones, nothing fails."""
    store, ids = lab
    zh = CATALOGUE["zh"]
    a, b = ids[(0.001, 0)], ids[(0.003, 0)]
    ga, gb = group_key(store.run(a)["config"]), group_key(store.run(b)["config"])
    lang = LANGS["zh"]
    at = app("pages/runs.py", lang=lang, s=encode_state({"runs": [a], "base": b, "at": ["step", 4]}))
    text = text_of(at)
    assert zh["runs.compare.best_last"] in text
    assert zh["runs.compare.at_title"].format(x=zh["runs.x.step"], value=4) in text
    assert "Δ test_acc last" in at.dataframe[1].value.columns and not at.exception and not at.error
    at = app("pages/runs.py", lang=lang, rn_view="groups", s=encode_state({"groups": [ga, gb]}))
    text = text_of(at)
    assert zh["runs.verdict.real"].split("**")[1] in text and zh["runs.groups.summary"] in text
    assert "93.17% ± 0.21" in at.dataframe[1].value.to_string() and not at.exception
    at = app("pages/runs.py", lang=lang, rn_view="sweep")
    assert zh["runs.sweep.score.test"].split("{metric}")[0] in text_of(at)
    assert shown(at.success[0].value).startswith(zh["runs.sweep.best"].split("{setting}")[0].strip())
    at = app("pages/runs.py", lang=lang, rn_view="open", s=encode_state({"runs": [a]}))
    assert [b.label for b in at.button if b.key == "rn_clone"] == [zh["runs.actions.clone"]] and not at.exception
    train = {"source": "preset", "preset": "cnn", "lr": 0.002, "optimizer": "adam", "scheduler": "none",
             "batch_size": 64, "epochs": 2, "augment": False, "weight_decay": 0.0}
    at = app("pages/train.py", lang=lang, s=encode_state({"clone": a, "train": train}))
    text = text_of(at)
    assert zh["train.clone.changed"] in text and "lr 0.001 → 0.002" in text and not at.exception
    assert any(".st-key-tr_lr {" in h.proto.body for h in at.get("html"))
    assert zh["train.sweep.title"] in [e.label for e in at.expander]
