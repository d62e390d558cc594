"""Runs: every run in one table; manage runs; overlay and compare selected runs; open one run."""
import pandas as pd
import streamlit as st

from core.i18n import t
from core.ml.data import DATASETS
from core.ml.zoo import PRESETS
from core.runs.view import config_table, curves_figure, runs_table
from core.training.config import DEVICES
from core.training.internals import PREFIX as INTERNALS
from pages.ui import compare_views as C
from pages.ui import internals_views as I
from pages.ui import train_views as W
from pages.ui.frame import frame
from pages.ui.navigate import apply_requests
from pages.ui.state import lab_store, shared_extras
from pages.ui.text import lang, plain, tr
from pages.ui.train_form import LABELLED
from pages.ui.widgets import url_choice

frame()


def manage(action: str, run_id: str) -> None:
    """Rename / tag / delete callbacks; messages go to the next run of the page."""
    s, store = st.session_state, lab_store()
    try:
        if action == "rename":
            store.rename_run(run_id, s["rn_new_name"])
        elif action == "tags":
            store.set_tags(run_id, [t.strip() for t in s["rn_new_tags"].split(",") if t.strip()])
        elif action == "delete":
            # Never waits: an active run is stopped by its worker and deleted when that has ended.
            if not W.lab_jobs().delete(run_id):
                action = "deleting"
            s["rn_sel"] = [r for r in s.get("rn_sel", []) if r != run_id]
        s["rn_msg"] = ("info" if action == "deleting" else "success", tr(f"runs.done.{action}"))
    except KeyError as exc:  # deleted meanwhile, by another session
        s["rn_msg"] = ("error", tr("error.bad_value", reason=exc.args[0] if exc.args else run_id))
    except ValueError as exc:
        s["rn_msg"] = ("error", tr("error.bad_value", reason=exc))


st.title(tr("runs.title"))
st.write(tr("runs.intro"))
W.lab_jobs().tick()
apply_requests()  # one click elsewhere ("compare with its parent", a sweep's runs) picks runs and a view
runs = lab_store().runs()
known = {r["id"] for r in runs}
# The browser keeps the selection as the labels it was shown ("name (status)"). A run renamed or
# finished since then comes back as its old label, which is mapped to its id here; format_func
# must never see an unknown value (Streamlit re-serializes the old selection with it).
seen_labels = {label: run_id for label, run_id in st.session_state.get("rn_labels", {}).items() if run_id in known}
if any(r not in known and r in seen_labels for r in st.session_state.get("rn_sel", [])):
    st.session_state["rn_sel"] = list(dict.fromkeys(seen_labels.get(r, r) for r in st.session_state["rn_sel"]))
if "rn_sel" not in st.session_state and shared_extras().get("runs"):  # selection from a share link
    shared = shared_extras()["runs"]
    wanted = [r for r in shared if isinstance(r, str)][:8] if isinstance(shared, list) else [str(shared)]
    st.session_state["rn_unknown"] = [r for r in wanted if r not in known]
    st.session_state["rn_sel"] = [r for r in wanted if r in known]
elif any(r not in known for r in st.session_state.get("rn_sel", [])):  # deleted meanwhile, here or elsewhere
    st.session_state["rn_sel"] = [r for r in st.session_state["rn_sel"] if r in known]
if st.session_state.get("rn_unknown"):  # shown until the selection changes
    st.warning(tr("runs.unknown", runs=", ".join(st.session_state["rn_unknown"])[:200]))
if msg := st.session_state.pop("rn_msg", None):
    getattr(st, msg[0])(msg[1])
if not runs:
    st.info(tr("runs.none"))
else:
    text = st.text_input(tr("runs.filter"), key="rn_filter", bind="query-params", placeholder=tr("runs.filter_hint"))
    table = runs_table(runs)
    if text:
        table = table[table.apply(lambda r: text.lower() in f"{r['name']} {r['tags']} {r['id']}".lower(), axis=1)]
    # Headers, statuses and datasets in the page's language; the frame keeps core's stable column names.
    columns = {c: st.column_config.Column(tr(f"runs.col.{c}")) for c in table.columns}
    shown = W.numbers_shown(table, {"val acc": ".1%", "best acc": ".1%", "last acc": ".1%", "test loss": ".4f",
                                    "duration s": ".1f"})
    shown = shown.assign(status=table["status"].map(lambda v: tr(f"status.{v}")),
                         dataset=table["dataset"].map(lambda v: W.option_label("dataset", v) if v in DATASETS else v),
                         device=table["device"].map(lambda v: W.option_label("device", v) if v in DEVICES else v),
                         model=table["model"].map(lambda v: W.preset_label(v) if v in PRESETS else v))
    st.dataframe(shown, hide_index=True, width="stretch", column_config=columns)
    names = {r["id"]: f"{r['name'] or r['id']} ({tr('status.' + r['status'])})" for r in runs}
    st.session_state["rn_labels"] = {**seen_labels, **{label: run_id for run_id, label in names.items()}}
    picked = [r for r in st.session_state.get("rn_sel", []) if r in known]
    if picked and [names[r] for r in picked] != st.session_state.get("rn_shown"):  # a selected run's label changed:
        st.session_state["rn_sel"] = picked  # set it again, so the browser shows the new labels
    st.session_state["rn_shown"] = [names[r] for r in picked]
    # The filter narrows the table; runs already selected (say, from a link) stay selectable.
    options = list(table["id"]) + [r for r in st.session_state.get("rn_sel", []) if r not in set(table["id"])]
    selected = st.multiselect(tr("runs.select"), options, key="rn_sel", format_func=lambda r: names.get(r, str(r)),
                              max_selections=8,
                              on_change=lambda: st.session_state.pop("rn_unknown", None))
    shared_extras()["runs"] = selected
    by_id = {r["id"]: r for r in runs}
    chosen = [by_id[r] for r in selected if r in by_id]  # in selection order: "open" shows the last one picked
    view = url_choice(st.segmented_control, tr("runs.view"), ["compare", "groups", "sweep", "open", "manage"],
                      "rn_view", "compare", lambda v: tr(f"runs.view.{v}"), required=True)
    if view == "groups":
        C.groups_view(runs, chosen)
    elif view == "sweep":
        C.sweep_view(runs)
    elif not chosen:
        st.info(tr("runs.pick"))
    elif view == "compare":
        chosen = C.pinned(chosen, by_id)  # a pinned baseline stays in the comparison
        metrics = {r["id"]: lab_store().metrics(r["id"]) for r in chosen}
        # The training internals (internals/<layer>/<stat>) have their own charts in a run's details.
        available = sorted({n for m in metrics.values() for n in m["name"].unique()
                            if not str(n).startswith(INTERNALS)})
        c = st.columns([2, 3, 2, 1])  # the x-axis radio needs room for its three options on one line
        # Accuracy when a selected run has it, else the test loss (regression runs), else the first metric.
        default = next((m for m in ("test_acc", "test_loss") if m in available), available[0] if available else None)
        metric = c[0].selectbox(tr("runs.metric"), available, index=available.index(default) if default else 0,
                                key="rn_metric", bind="query-params")
        x = url_choice(c[1].radio, tr("runs.x"), ["step", "epoch", "wall"], "rn_x", "step",
                       lambda k: tr(f"runs.x.{k}"), horizontal=True)
        smooth = c[2].slider(tr("runs.smoothing"), 0.0, 0.99, 0.0, key="rn_smooth", bind="query-params")
        log_y = c[3].toggle(tr("runs.log"), key="rn_log", bind="query-params")
        labelled = {names[r["id"]]: metrics[r["id"]] for r in chosen}
        base, at = C.compare_controls(chosen, metrics, x, names)
        if metric:
            axes = {"x": t(f"runs.x.{x}", lang()), "y": metric}  # plotly shows plain text: no Markdown escapes
            fig = curves_figure(labelled, metric, x=x, smoothing=smooth, log_y=log_y, height=420, labels=axes)
            st.plotly_chart(C.marked(fig, names.get(base or ""), x, at), key="rn_chart")
        target = st.number_input(tr("runs.target"), 0.0, 1.0, 0.98, step=0.005, format="%.3f", key="rn_target",
                                 bind="query-params")
        C.summary(chosen, metrics, target, metric, base)  # best and last of each metric, Δ to the baseline
        C.at_point(chosen, metrics, x, at, smooth, metric, base)
        diff = st.toggle(tr("runs.only_diff"), key="rn_diff", value=len(chosen) > 1, bind="query-params")
        configs = config_table(chosen, only_differences=diff)
        for field in LABELLED:  # choices as the form shows them; setting names stay as in the config
            if field in configs.index:
                configs.loc[field] = [W.option_label(field, v) if v != "—" else v for v in configs.loc[field]]
        st.dataframe(configs, width="stretch")
        csv = pd.concat(metrics.values()).to_csv(index=False).encode() if metrics else b""
        st.download_button(tr("runs.csv"), csv, file_name="metrics.csv", mime="text/csv", key="rn_csv")
    elif view == "open":
        run = chosen[-1]
        st.subheader(plain(names[run["id"]]))  # a run name is user text: shown literally

        active = run["status"] in ("queued", "running")

        # No timer: the live charts poll the shared feed (pages.ui.live_view) and ask for a rerun when the
        # page around them changes; the worker's log, while shown, refreshes each second.
        @st.fragment(run_every=1.0 if active and st.session_state.get("tr_log") else None)
        def live() -> None:
            if st.session_state.pop("tr_full_rerun", False):
                st.rerun()
            W.controls(run["id"])
            W.watch([run["id"]], key="rn")
            if active and (lab_store().get_run(run["id"]) or {}).get("status") not in ("queued", "running"):
                st.rerun()  # the run ended: rerun the page to show the evaluation

        live()
        C.run_actions(run, by_id)  # clone → tweak → enqueue, repeat with N seeds, compare with its parent
        I.panels(run, "rn", run["status"] in ("queued", "running"))  # internals over time, the training doctor
        with st.expander(tr("runs.config")):
            st.json(run["config"])
        if run["status"] in ("completed", "stopped"):
            W.evaluation(run, prefix="rn")
    else:
        run = chosen[-1]
        st.subheader(plain(names[run["id"]]))  # a run name is user text: shown literally
        c = st.columns([3, 1])
        c[0].text_input(tr("runs.new_name"), run["name"], key="rn_new_name", max_chars=60)
        c[1].button(tr("runs.rename"), key="rn_rename", on_click=manage, args=("rename", run["id"]), width="stretch")
        c = st.columns([3, 1])
        c[0].text_input(tr("runs.new_tags"), ", ".join(run.get("tags") or []), key="rn_new_tags", max_chars=200)
        c[1].button(tr("runs.tag"), key="rn_tag", on_click=manage, args=("tags", run["id"]), width="stretch")
        sure = st.checkbox(tr("runs.confirm", run=names[run["id"]]), key="rn_sure")
        st.button(tr("runs.delete"), key="rn_delete", disabled=not sure, type="primary",
                  on_click=manage, args=("delete", run["id"]))
