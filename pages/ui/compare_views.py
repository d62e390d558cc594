"""The Runs page's honest comparisons: a pinned baseline, best vs last, compare at one step,
seed groups with bands and a verdict, sweeps, and the actions on one run (clone, repeat with
seeds, compare with its parent). The engines are core.runs.compare, groups, stats and sweep.

State a share link carries (``shared_extras``): ``base`` (the pinned baseline's run id), ``at``
([x-axis, point]: where the runs are compared), ``groups`` and ``vs`` (the seed groups shown and
the two compared), ``sweep`` (the sweep shown). Each widget is seeded from them when it has
no state yet, so a link (or a return to the view) shows the same thing again.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.errors import Code, LabError
from core.i18n import t
from core.runs import compare as C
from core.runs import groups as G
from core.runs import sweep as W
from core.runs.stats import SMALL, Verdict, verdict
from core.runs.store import RunRow
from core.runs.view import summary_rows
from pages.ui import clone
from pages.ui import train_views as TV
from pages.ui.navigate import follow, go_to, request_open
from pages.ui.state import lab_store, shared_extras
from pages.ui.text import lang, tr, tr_error
from pages.ui.widgets import url_choice

MAX_GROUPS = 6


def raw(key: str, **values: Any) -> str:
    """UI text for places that show text as it is, not as Markdown (options, column headers, chart text)."""
    return t(key, lang(), **values)



# --------------------------------------------------------------------------- link state
def _seed(key: str, extra: str, valid) -> None:
    """Give widget ``key`` the shared value ``extra`` when it has no state yet and the value is valid."""
    s = st.session_state
    if key not in s:
        value = shared_extras().get(extra)
        if value is not None and valid(value):
            s[key] = value


# --------------------------------------------------------------------------- compare: baseline, best/last, at k
def pinned(chosen: list[RunRow], by_id: dict[str, RunRow]) -> list[RunRow]:
    """The selected runs plus the pinned baseline (it stays in the comparison when not selected).

    A baseline that no longer exists (deleted here or by another session) is said once,
    clearly, and unpinned.
    """
    s = st.session_state
    base = s.get("rn_base") if "rn_base" in s else shared_extras().get("base")
    try:
        run = C.check_baseline(base if isinstance(base, str) else None, list(by_id.values()))
    except LabError as exc:
        st.warning(tr_error(exc))
        s.pop("rn_base", None)
        shared_extras()["base"] = None
        return chosen
    if run is None:
        return chosen
    s["rn_base"] = run["id"]
    return chosen if any(r["id"] == run["id"] for r in chosen) else [*chosen, run]


def compare_controls(chosen: list[RunRow], metrics: dict[str, pd.DataFrame], x: str,
                     names: dict[str, str]) -> tuple[str | None, float | None]:
    """The baseline picker and the compare-at-one-point control; returns (baseline id, point or None)."""
    s = st.session_state
    ids = [r["id"] for r in chosen]
    c = st.columns([3, 2, 3], vertical_alignment="bottom")
    base = c[0].selectbox(tr("runs.compare.baseline"), ["", *ids], key="rn_base",
                          format_func=lambda r: raw("runs.compare.no_baseline") if not r else names.get(r, r),
                          help=tr("runs.compare.baseline_help"))
    shared_extras()["base"] = base or None
    shared = shared_extras().get("at")  # [axis, value] of the link (or of this view, before a view change)
    if not (isinstance(shared, list) and len(shared) == 2 and shared[0] in C.AXES
            and isinstance(shared[1], (int, float)) and not isinstance(shared[1], bool)):
        shared = None
    if "rn_at_on" not in s and shared is not None:
        s["rn_at_on"] = True
    on = c[1].toggle(tr("runs.compare.at_on"), key="rn_at_on", help=tr("runs.compare.at_help"))
    at = None
    if on:
        top = C.extent(metrics, x)
        kind = {"step": int, "epoch": int, "wall": float}[x]
        lo = 1 if x == "epoch" else 0
        hi = kind(max(top, lo))
        key = f"rn_at_{x}"
        if key not in s and shared is not None and shared[0] == x:
            s[key] = min(max(kind(shared[1]), lo), hi)
        if hi > lo:
            at = c[2].slider(tr(f"runs.compare.at.{x}"), lo, hi, key=key,
                             value=s.get(key, hi), step=1 if kind is int else max(0.1, round(hi / 200, 1)))
        else:
            at = hi
            c[2].caption(tr("runs.compare.at_single", x=tr(f"runs.x.{x}"), value=hi))
    shared_extras()["at"] = [x, at] if at is not None else None
    return base or None, at


def marked(fig: go.Figure, base_label: str | None, x: str, at: float | None) -> go.Figure:
    """The overlay chart with the baseline drawn dashed and thick, and the compared point as a line."""
    if base_label:
        tag = raw("runs.compare.baseline_tag")
        for trace in fig.data:
            if trace.name == base_label:
                trace.update(name=f"{base_label} · {tag}", line=dict(dash="dash", width=3))
    if at is not None:
        fig.add_vline(x=at, line=dict(dash="dot", color="gray", width=1.5),
                      annotation=dict(text=f"{raw(f'runs.x.{x}')} {at:g}", yanchor="bottom"))
    return fig


def _columns(table: pd.DataFrame, metric_names: Sequence[str]) -> dict[str, Any]:
    """Column headers in the page's language: ``<metric> best`` / ``<metric> last`` / ``<metric>`` and their
    ``Δ`` columns as numbers (accuracies in percent, the rest with 4 decimals); the id column hidden."""
    config: dict[str, Any] = {"id": None}
    for col in map(str, table.columns):
        if col in ("run", "status", "seed"):
            config[col] = st.column_config.Column(tr(f"runs.compare.col.{col}"))
            continue
        core = col.removeprefix("Δ ")
        metric, _, kind = core.rpartition(" ")
        if kind in ("best", "last") and metric in metric_names:
            label = raw(f"runs.compare.col.{kind}", metric=metric)
        elif core in metric_names:
            metric, label = core, core
        else:
            continue
        if col.startswith("Δ "):  # differences: signed; accuracies in percentage points (see _deltas_in_points)
            fmt = raw("runs.verdict.points", v="%+.2f") if metric.endswith("acc") else "%+.4f"
            config[col] = st.column_config.NumberColumn("Δ " + label, format=fmt)
        else:
            config[col] = st.column_config.NumberColumn(label, format="percent" if metric.endswith("acc") else "%.4f")
    return config


def _deltas_in_points(table: pd.DataFrame) -> pd.DataFrame:
    """Accuracy differences × 100, so a column reads "+1.86 pts" (percentage points), not a relative "1.86%"."""
    cols = [c for c in table.columns if str(c).startswith("Δ ") and str(c).split(" ")[1].endswith("acc")]
    return table.assign(**{c: table[c] * 100 for c in cols}) if cols else table


def summary(chosen: list[RunRow], metrics: dict[str, pd.DataFrame], target: float, metric: str | None,
            base: str | None) -> None:
    """Best and last of every metric per run, time to the target and duration, and the difference of
    the chart's metric to the baseline."""
    names = C.present(metrics)
    if metric and metric not in names:
        names = [metric, *names]
    table = C.best_last_table(chosen, metrics, names)
    extra = summary_rows(chosen, metrics, target)
    table[raw("runs.compare.col.to_target", target=f"{target:.1%}")] = extra[f"s to {target:.1%}"].to_numpy()
    table[tr("runs.compare.col.duration")] = extra["duration s"].to_numpy()
    table["status"] = table["status"].map(lambda v: tr(f"status.{v}"))
    if base and metric:
        table = _deltas_in_points(C.with_deltas(table, base, [f"{metric} best", f"{metric} last"]))
    st.markdown(f"**{tr('runs.compare.best_last')}**")
    with st.container(key="rn_best_last"):  # keyed containers: the browser tests find the tables by class
        st.dataframe(table, hide_index=True, width="stretch", column_config=_columns(table, names))
    if base and metric:
        st.caption(tr("runs.compare.delta_note", metric=Code(metric)))


def at_point(chosen: list[RunRow], metrics: dict[str, pd.DataFrame], x: str, at: float | None, smoothing: float,
             metric: str | None, base: str | None) -> None:
    """Every run's metrics at the chosen point, and their difference to the baseline."""
    if at is None:
        return
    names = C.present(metrics, [*([metric] if metric else []), *[n for n in C.COMPARED if n != metric]])
    table = C.at_table(chosen, metrics, names, x, at, smoothing)
    if base:
        table = _deltas_in_points(C.with_deltas(table, base, names))
    st.markdown(f"**{tr('runs.compare.at_title', x=tr(f'runs.x.{x}'), value=f'{at:g}')}**")
    with st.container(key="rn_at_table"):
        st.dataframe(table, hide_index=True, width="stretch", column_config=_columns(table, names))
    st.caption(tr("runs.compare.at_note"))


# --------------------------------------------------------------------------- seed groups
def _group_metrics(groups: Sequence[G.SeedGroup], extra: Sequence[str] = ()) -> dict[str, pd.DataFrame]:
    names = sorted({*G.SUMMARY_METRICS, *extra})
    store = lab_store()
    return {r["id"]: store.metrics(r["id"], names=names) for g in groups for r in g.runs}


def groups_view(runs: list[RunRow], chosen: list[RunRow]) -> None:
    """Seed groups: mean curves with a band, mean ± std of best and final values, a verdict, more seeds."""
    groups = G.seed_groups(runs)
    by_key = {g.key: g for g in groups}
    options = G.group_labels(groups)  # told apart from every group (the picker lists them all)
    s = st.session_state
    _seed("rn_groups", "groups", lambda v: isinstance(v, list))
    if "rn_groups" in s:
        s["rn_groups"] = [k for k in s["rn_groups"] if k in by_key][:MAX_GROUPS]
    else:  # the groups of the selected runs, else the groups that have several runs
        picked = [G.group_key(r["config"]) for r in chosen] or [g.key for g in groups if len(g.runs) > 1]
        s["rn_groups"] = list(dict.fromkeys(picked))[:MAX_GROUPS]
    st.caption(tr("runs.groups.intro"))

    def label(key: str) -> str:
        g = by_key[key]
        return raw("runs.groups.option", label=options[key], n=len(g.runs), done=len(g.completed))

    keys = st.multiselect(tr("runs.groups.pick"), list(by_key), key="rn_groups", format_func=label,
                          max_selections=MAX_GROUPS)
    shared_extras()["groups"] = keys
    if not keys:
        st.info(tr("runs.groups.none"))
        return
    shown = [by_key[k] for k in keys]
    labels = G.group_labels(shown)  # told apart from the groups shown: "lr=0.001" vs "lr=0.003"
    c = st.columns([2, 3, 3, 2])
    metric_options = ["test_acc", "test_loss", "train_acc", "train_loss", "loss"]
    metric = c[0].selectbox(tr("runs.metric"), metric_options, key="rn_gmetric", bind="query-params")
    metrics = _group_metrics(shown, [metric])
    x = url_choice(c[1].radio, tr("runs.x"), ["step", "epoch", "wall"], "rn_x", "step",
                   lambda k: tr(f"runs.x.{k}"), horizontal=True)
    band = url_choice(c[2].radio, tr("runs.groups.band"), list(G.BANDS), "rn_band", "std",
                      lambda k: tr(f"runs.groups.band.{k}"), horizontal=True)
    smooth = c[3].slider(tr("runs.smoothing"), 0.0, 0.99, 0.0, key="rn_gsmooth", bind="query-params")
    frames = {labels[g.key]: [metrics[r["id"]] for r in g.runs] for g in shown}
    with st.container(key="rn_group_chart"):
        st.plotly_chart(G.group_figure(frames, metric, x=x, band=band, smoothing=smooth,
                                       labels={"x": raw(f"runs.x.{x}")}))
    singles = [labels[g.key] for g in shown if len(g.runs) < 2]
    if singles:
        st.caption(tr("runs.groups.single", groups=", ".join(singles)))
    _group_table(shown, labels, metrics)
    if len(shown) >= 2:
        _verdict(shown, labels, metrics, metric)
    _repeat(shown)


def _group_table(shown: Sequence[G.SeedGroup], labels: dict[str, str], metrics: dict[str, pd.DataFrame]) -> None:
    rows = []
    for row in G.group_summary(shown, metrics):
        out = {tr("runs.groups.col.group"): labels[row["key"]],
               tr("runs.groups.col.seeds"): ", ".join(str(v) for v in row["seeds"]),
               tr("runs.groups.col.done"): f"{row['completed']} / {row['runs']}"}
        for key, stats in row.items():
            if key.endswith((" best", " final")):
                name, _, kind = key.rpartition(" ")
                out[raw(f"runs.compare.col.{'last' if kind == 'final' else kind}", metric=name)] = \
                    G.format_stats(stats, name)
        rows.append(out)
    st.markdown(f"**{tr('runs.groups.summary')}**")
    with st.container(key="rn_group_table"):
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(tr("runs.groups.summary_note"))


def _fmt(metric: str, value: float | None, signed: bool = False) -> str:
    if value is None:
        return "—"
    if metric.endswith("acc"):
        return raw("runs.verdict.points", v=f"{100 * value:+.2f}") if signed else f"{100 * value:.2f}%"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _verdict(shown: Sequence[G.SeedGroup], labels: dict[str, str], metrics: dict[str, pd.DataFrame],
             metric: str) -> None:
    """Is the difference between two groups real? A verdict in words, the numbers and the method."""
    keys = [g.key for g in shown]
    vs = shared_extras().get("vs")
    if isinstance(vs, list) and len(vs) == 2:
        for key, value in (("rn_ga", vs[0]), ("rn_gb", vs[1])):
            if key not in st.session_state and value in keys:
                st.session_state[key] = value
    for key, default in (("rn_ga", keys[0]), ("rn_gb", keys[1])):
        if st.session_state.get(key) not in keys:
            st.session_state[key] = default
    st.markdown(f"**{tr('runs.verdict.title', metric=Code(metric))}**")
    c = st.columns(2)
    a = c[0].selectbox(tr("runs.verdict.a"), keys, key="rn_ga", format_func=labels.get)
    b = c[1].selectbox(tr("runs.verdict.b"), keys, key="rn_gb", format_func=labels.get)
    shared_extras()["vs"] = [a, b]
    ga, gb = next(g for g in shown if g.key == a), next(g for g in shown if g.key == b)
    if a == b:
        st.info(tr("runs.verdict.same_group"))
        return
    result = verdict(G.final_values(ga, metrics, metric), G.final_values(gb, metrics, metric), metric)
    names = {"a": labels[a], "b": labels[b]}
    text = verdict_text(result, names)
    box = {"real": st.success, "constant": st.success, "noise": st.info, "identical": st.info}.get(
        result.outcome, st.warning)
    with st.container(key="rn_verdict"):
        box(text)
    st.caption(tr("runs.verdict.method", metric=Code(metric)))


def verdict_text(v: Verdict, names: dict[str, str]) -> str:
    """The verdict in the page's language, with the numbers behind it."""
    m = Code(v.metric)
    a, b = names["a"], names["b"]
    mean_a, mean_b = _fmt(v.metric, v.a.mean), _fmt(v.metric, v.b.mean)
    if v.outcome == "empty":
        return tr("runs.verdict.empty", group=a if not v.a.n else b)
    if v.outcome == "too_few":
        return tr("runs.verdict.too_few", group=a if v.a.n < 2 else b, a=a, b=b, mean_a=mean_a, mean_b=mean_b,
                  metric=m)
    better = names[v.better] if v.better else ""
    if v.outcome == "identical":
        return tr("runs.verdict.identical", metric=m, value=mean_a, n=v.a.n + v.b.n)
    if v.outcome == "constant":
        return tr("runs.verdict.constant", metric=m, a=a, b=b, mean_a=mean_a, mean_b=mean_b, better=better)
    assert v.test is not None
    numbers = tr("runs.verdict.numbers", a=a, b=b, mean_a=mean_a, mean_b=mean_b, sd_a=_fmt(v.metric, v.a.std),
                 sd_b=_fmt(v.metric, v.b.std), n_a=v.a.n, n_b=v.b.n, diff=_fmt(v.metric, v.diff, True),
                 lo=_fmt(v.metric, v.test.ci[0], True), hi=_fmt(v.metric, v.test.ci[1], True),
                 t=f"{v.test.t:.2f}", df=f"{v.test.df:.1f}", p=f"{v.test.p:.3g}")
    key = "runs.verdict.real" if v.outcome == "real" else "runs.verdict.noise"
    text = tr(key, metric=m, better=better, a=a, b=b) + " " + numbers
    if v.outcome == "noise" and v.few_seeds:
        text += " " + tr("runs.verdict.few", n=min(v.a.n, v.b.n), small=SMALL)
    return text


def _repeat(shown: Sequence[G.SeedGroup]) -> None:
    c = st.columns([1, 2, 3], vertical_alignment="bottom")
    n = c[0].number_input(tr("runs.groups.n_seeds"), 2, G.MAX_SEEDS, 3, key="rn_gseeds")
    c[1].button(tr("runs.groups.repeat_all"), key="rn_grepeat", on_click=on_repeat,
                args=([g.runs[0]["id"] for g in shown], int(n)), width="stretch")
    c[2].caption(tr("runs.groups.repeat_help"))


def on_repeat(run_ids: list[str], n: int) -> None:
    """Queue the missing seeds of each run's group (callback); the message goes to the next run."""
    queued: list[str] = []
    try:
        for run_id in run_ids:
            queued += G.queue_seeds(TV.lab_jobs(), run_id, n)
    except (LabError, ValueError) as exc:
        st.session_state["rn_msg"] = ("error", tr("error.bad_value", reason=exc))
        return
    msg = tr("runs.groups.queued", n=len(queued)) if queued else tr("runs.groups.complete", n=n)
    st.session_state["rn_msg"] = ("success" if queued else "info", msg)


# --------------------------------------------------------------------------- sweeps
def sweep_view(runs: list[RunRow]) -> None:
    """A sweep: its best setting, parallel coordinates, metric against each setting, its runs."""
    found = W.sweeps(runs)
    if not found:
        st.info(tr("runs.sweep.none"))
        return
    _seed("rn_sweep", "sweep", lambda v: v in found)
    if st.session_state.get("rn_sweep") not in found:
        wanted = shared_extras().get("sweep")
        if isinstance(wanted, str) and wanted not in found and "rn_sweep" not in st.session_state:
            st.warning(tr("runs.sweep.unknown", sweep=wanted[:64]))
        st.session_state["rn_sweep"] = next(iter(found))

    def label(sweep_id: str) -> str:
        members = found[sweep_id]
        fields = ", ".join(W.swept_fields(members)) or "—"
        done = sum(r["status"] in ("completed", "stopped", "failed") for r in members)
        return raw("runs.sweep.option", sweep=sweep_id, fields=fields, n=len(members), done=done)

    sweep_id = st.selectbox(tr("runs.sweep.pick"), list(found), key="rn_sweep", format_func=label)
    shared_extras()["sweep"] = sweep_id
    active = any(r["status"] in ("queued", "running") for r in found[sweep_id])

    @st.fragment(run_every=2.0 if active else None)
    def body() -> None:
        members = [r for r in lab_store().runs() if r.get("sweep") == sweep_id]
        if not members:
            st.warning(tr("runs.sweep.unknown", sweep=sweep_id))
            return
        _sweep_body(sweep_id, members)
        if active and not any(r["status"] in ("queued", "running") for r in members):
            st.rerun()  # all ended: draw once more without polling

    body()
    # Outside the live part: a click reruns the whole page, which then shows the view asked for.
    members = found[sweep_id]
    keys = list(dict.fromkeys(G.group_key(r["config"]) for r in members))
    c = st.columns(2)
    c[0].button(tr("runs.sweep.as_groups"), key="rn_sweep_groups", width="stretch", on_click=request_open,
                args=("groups",), kwargs=dict(groups=keys[:MAX_GROUPS]))
    c[1].button(tr("runs.sweep.compare"), key="rn_sweep_compare", width="stretch", on_click=request_open,
                args=("compare",), kwargs=dict(runs=[r["id"] for r in members][:8]))


def _sweep_body(sweep_id: str, members: list[RunRow]) -> None:
    TV.lab_jobs().tick()
    store = lab_store()
    metrics = {r["id"]: store.metrics(r["id"], names=[*W.SCORES, "train_acc", "train_loss"]) for r in members}
    params = W.swept_fields(members)
    score = W.score_metric(metrics)
    done = sum(r["status"] in ("completed", "stopped", "failed") for r in members)
    st.progress(done / len(members), text=tr("runs.sweep.progress", done=done, n=len(members)))
    table = W.sweep_table(members, metrics, params, score)
    if score is None:
        st.info(tr("runs.sweep.waiting"))
    else:
        st.caption(tr(f"runs.sweep.score.{'val' if score.startswith('val') else 'test'}", metric=Code(score)))
        best = W.best_setting(table, params, score)
        if best is not None:
            spread = f" ± {_fmt(score, best.std).rstrip('%')}" if best.std is not None else ""
            with st.container(key="rn_sweep_best"):
                st.success(tr("runs.sweep.best", setting=Code(W.setting_text(best.setting)), metric=Code(score),
                              value=_fmt(score, best.mean) + spread, n=best.n))
        finished = table[table["final"].notna()]
        if len(finished) and params:
            with st.container(key="rn_sweep_parcoords"):
                st.plotly_chart(W.parallel_figure(table, params, score))
            cols = st.columns(len(params))
            for col, param in zip(cols, params, strict=True):
                col.plotly_chart(W.param_figure(table, param, score), key=f"rn_sweep_param_{param}")
        elif not params:
            st.caption(tr("runs.sweep.no_params"))
    shown = table.assign(status=table["status"].map(lambda v: tr(f"status.{v}")))
    config: dict[str, Any] = {"id": None, "run": st.column_config.Column(tr("runs.compare.col.run")),
                              "status": st.column_config.Column(tr("runs.compare.col.status")),
                              "seed": st.column_config.Column(tr("runs.compare.col.seed"))}
    if score:
        fmt = "percent" if score.endswith("acc") else "%.4f"
        config["final"] = st.column_config.NumberColumn(raw("runs.compare.col.last", metric=score), format=fmt)
        config["best"] = st.column_config.NumberColumn(raw("runs.compare.col.best", metric=score), format=fmt)
    with st.container(key="rn_sweep_table"):
        st.dataframe(shown, hide_index=True, width="stretch", column_config=config,
                     height=min(35 * (len(shown) + 1) + 3, 640))  # a sweep has at most 16 runs: show them all


# --------------------------------------------------------------------------- one run's actions
def _clone(run_id: str) -> None:
    clone.request(run_id)
    go_to("pages/train.py")


def run_actions(run: RunRow, by_id: dict[str, RunRow]) -> None:
    """Clone → tweak → enqueue, repeat with N seeds, and (for a clone) compare with its parent."""
    follow()
    c = st.columns([2, 1, 2, 2], vertical_alignment="bottom")
    c[0].button(tr("runs.actions.clone"), key="rn_clone", icon=":material/content_copy:", width="stretch",
                help=tr("runs.actions.clone_help"), on_click=_clone, args=(run["id"],))
    n = c[1].number_input(tr("runs.groups.n_seeds"), 2, G.MAX_SEEDS, 3, key="rn_nseeds")
    c[2].button(tr("runs.actions.repeat", n=int(n)), key="rn_repeat", on_click=on_repeat, args=([run["id"]], int(n)),
                width="stretch", help=tr("runs.actions.repeat_help"))
    parent = run.get("parent")
    if parent:
        if parent in by_id:
            c[3].button(tr("runs.actions.vs_parent"), key="rn_vs_parent", width="stretch",
                        icon=":material/compare_arrows:", on_click=request_open, args=("compare",),
                        kwargs=dict(runs=[parent, run["id"]], base=parent))
            st.caption(tr("runs.actions.parent", run=by_id[parent]["name"] or parent))
        else:
            st.caption(tr("runs.actions.parent_gone", run=parent))
