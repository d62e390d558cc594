"""Train page pieces: the config form, the live run watcher, evaluation and the step mode."""
from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from core.errors import Code, LabError
from core.i18n import CATALOGUE, t
from core.lessons.regression import (
    can_run_on,
    fit_figure,
    least_squares,
    regression_report,
    run_on,
    run_on_figure,
    slow_direction,
)
from core.ml.checkpoint import BEST, LAST, CheckpointError, load_checkpoint
from core.ml.data import DATASETS, dataset_info, find_dataset, load_dataset
from core.ml.env import env_facts
from core.ml.modules import build_model
from core.ml.plots import image_grid
from core.ml.spec import ModelSpec, SpecError
from core.ml.zoo import DEFAULT_PRESET, PRESETS, preset_spec
from core.runs.live_feed import WATCHED_METRICS, FeedRequest, LiveFeed
from core.runs.live_feed import run_label as feed_run_label
from core.runs.store import RunRow, check_run_id
from core.runs.trained import (
    as_lab_checkpoint,
    checkpoint_path,
    checkpoint_test_evaluation,
    load_run_evaluation,
    load_run_model,
    model_from_checkpoint,
    model_from_state,
    run_task,
    stored_evaluation,
)
from core.runs.view import (
    confusion_figure,
    evaluate_model,
    summary_rows,
)
from core.safe.budget import setting_name
from core.settings import load_settings
from core.training.batches import load_data
from core.training.config import (
    LOSSES,
    OPTIMIZERS,
    PRECISIONS,
    RECIPES,
    SCHEDULERS,
    TrainConfig,
    field_default,
)
from core.training.precision import available_devices, available_precisions, max_processes, missing_devices
from core.training.trainer import Trainer
from pages.ui import clone, live_http, live_view
from pages.ui import datasets as user_data
from pages.ui.model_state import SPEC_KEY, current_spec
from pages.ui.state import lab_store, seed
from pages.ui.text import lang, plain, tr, tr_error
from pages.ui.train_form import FIELDS, LABELLED
from pages.ui.train_form import RANGES as FORM_RANGES


@st.cache_resource
def _jobs(home: str, url: str, _store, executor: tuple):
    from core.runs.jobs import JobManager, configure_server_threads

    configure_server_threads()  # leave the cores to the training workers
    return JobManager(store=_store)


def job_manager():
    """The lab's job manager, on the lab's store (one per lab home, store URL and executor settings).

    Executor settings that cannot work (an unknown ``PYTORCH_LAB_EXECUTOR``, malformed Ray
    resources) raise their ``ExecutorError``; nothing here asks the cluster anything.
    """
    from core.settings import load_settings

    store = lab_store()
    s = load_settings()
    return _jobs(str(store.home), store.url or "", store, (s.executor, s.ray_address, s.ray_cpus, s.ray_gpus,
                                                           s.ray_resources))


def lab_jobs():
    """``job_manager()`` for a page: settings that cannot work show their translated error and stop the page."""
    from core.runs.executors import ExecutorError

    try:
        return job_manager()
    except ExecutorError as exc:
        st.error(tr_error(exc), icon=":material/hub:")
        st.stop()


def start_error(exc: BaseException) -> str:
    """A failed Start or Resume as the page shows it: an unreachable cluster or store in its own words."""
    from core.runs.executors import ExecutorError
    from core.runs.store import StoreError

    if isinstance(exc, (ExecutorError, StoreError)):
        return tr_error(exc)
    return tr("error.bad_value", reason=exc)


def option_label(field: str, value) -> str:
    """A setting's choice as the form shows it: a translated label for the labelled settings, else the value."""
    key = f"option.{field}.{value}"
    if field == "dataset" and value not in DATASETS:
        return user_data.label(str(value))
    return tr(key) if field in LABELLED and key in CATALOGUE[lang()] else str(value)


def preset_label(key: str) -> str:
    """A preset as the form names it: its tutorial example and class name (``M5 · CNN``), the same in every
    language (the zoo's longer English title is on the Builder and Home pages)."""
    p = PRESETS[key]
    return f"{p.example} · {p.spec.name}" if p.example else p.spec.name


def apply_recipe(name: str) -> None:
    """Fill the form with a tutorial recipe (one click); the form's config is made from it."""
    changes = RECIPES[name]
    s = st.session_state
    s["tr_source"] = "preset"
    for f in ("preset", *FIELDS):
        s[f"tr_{f}"] = changes.get(f, field_default(f))
    _fit_to_machine(notify=False)


def apply_config(config: dict) -> None:
    """Fill the form with a stored run's config: its preset, or its own model as the current model."""
    s = st.session_state
    spec = config.get("model_spec")
    if spec is not None:
        try:
            parsed = ModelSpec.parse(spec)
        except SpecError:
            return
        current = s.get(SPEC_KEY)
        if current is not None and current != parsed and current != preset_spec(DEFAULT_PRESET):
            s["tr_form_notice"] = ("train.link_model_kept", {})
            return  # the learner's own model stays; the form stays as it was
        s[SPEC_KEY] = parsed
        s["tr_source"] = "current"
    else:
        s["tr_source"] = "preset"
        s["tr_preset"] = config.get("preset", field_default("preset"))
    for f in FIELDS:
        value = config.get(f, field_default(f))
        lo_hi = FORM_RANGES.get(f)
        if lo_hi is not None and not lo_hi[0] <= value <= lo_hi[1]:
            value = field_default(f)  # outside the form's range: the widget would clamp it silently
        s[f"tr_{f}"] = float(value) if lo_hi is not None and isinstance(lo_hi[0], float) else value


def form_from_run_link() -> None:
    """A link to a run (``/train?run=<id>``) opened in a new session shows that run's config in the form
    (once, before the form is first drawn; a share link's own form values win)."""
    s = st.session_state
    if s.get("tr_link_applied") or "tr_dataset" in s:
        return
    s["tr_link_applied"] = True
    wanted = str(st.query_params.get("run") or "").split(",")[0].strip()
    try:
        run = lab_store().get_run(check_run_id(wanted)) if wanted else None
    except ValueError:
        return  # the page says so where it reads the link
    if run is not None:
        apply_config(run["config"])


def _fit_to_machine(notify: bool = True) -> None:
    """Device, precision and processes the form holds, brought to what this machine offers (a link or
    a recipe may ask for more); says what changed."""
    s = st.session_state
    changes = []
    if s.get("tr_device") not in available_devices():
        changes.append(("device", s.get("tr_device"), "auto"))
        s["tr_device"] = "auto"
    if s.get("tr_precision") not in available_precisions(s["tr_device"]):
        changes.append(("precision", s.get("tr_precision"), "fp32"))
        s["tr_precision"] = "fp32"
    most = max_processes(s["tr_device"])
    if not isinstance(s.get("tr_processes"), int) or not 1 <= s["tr_processes"] <= most:
        changes.append(("processes", s.get("tr_processes"), most))
        s["tr_processes"] = most if isinstance(s.get("tr_processes"), int) and s["tr_processes"] > most else 1
    if changes and notify:
        text = ", ".join(f"{f}: {a} → {b}" for f, a, b in changes)
        s["tr_form_notice"] = ("train.not_here_changed", {"changes": text})


def _not_here_text(device: str) -> str:
    """Why some choices are missing on this machine, in one line (empty when nothing is)."""
    reasons = [tr(f"train.why.{d}") for d in missing_devices()]
    reasons += [tr(f"train.why.{p}") for p in PRECISIONS if p not in available_precisions(device)]
    return tr("train.not_here", items="; ".join(reasons)) if reasons else ""


def form() -> TrainConfig | None:
    """The trainer config widgets; returns a validated config or None (after showing why)."""
    s = st.session_state
    for f in FIELDS:
        s.setdefault(f"tr_{f}", field_default(f))
    s.setdefault("tr_preset", field_default("preset"))
    _fit_to_machine()
    if notice := s.pop("tr_form_notice", None):
        st.info(tr(notice[0], **notice[1]))
    c = st.columns([1, 2, 2])
    source = c[0].radio(tr("train.model"), ["current", "preset"], key="tr_source",
                        format_func=lambda k: tr(f"train.model.{k}"))
    c[1].selectbox(tr("train.preset"), [k for k, p in PRESETS.items() if p.task != "shapes"],
                   key="tr_preset", disabled=source != "preset", format_func=preset_label)
    c[2].selectbox(tr("train.dataset"), list(DATASETS) + user_data.visible(), key="tr_dataset",
                   format_func=lambda v: option_label("dataset", v), on_change=user_data.fit_train_form)
    c = st.columns(4)
    c[0].selectbox(tr("train.optimizer"), OPTIMIZERS, key="tr_optimizer",
                   format_func=lambda v: option_label("optimizer", v))
    c[1].number_input(tr("train.lr"), *FORM_RANGES["lr"], format="%.5f", key="tr_lr")
    c[2].selectbox(tr("train.scheduler"), SCHEDULERS, key="tr_scheduler",
                   format_func=lambda v: option_label("scheduler", v))
    c[3].selectbox(tr("train.loss"), LOSSES, key="tr_loss", format_func=lambda v: option_label("loss", v))
    c = st.columns(4)
    c[0].number_input(tr("train.batch"), *FORM_RANGES["batch_size"], key="tr_batch_size")
    c[1].number_input(tr("train.accum"), *FORM_RANGES["accum_steps"], key="tr_accum_steps",
                      help=tr("train.accum_help"))
    c[2].number_input(tr("train.epochs"), *FORM_RANGES["epochs"], key="tr_epochs")
    c[3].selectbox(tr("train.processes"), list(range(1, max_processes(s["tr_device"]) + 1)), key="tr_processes",
                   help=tr("train.processes_help"))
    c = st.columns(4)
    c[0].selectbox(tr("train.device"), available_devices(), key="tr_device",
                   format_func=lambda v: option_label("device", v))
    c[1].selectbox(tr("train.precision"), available_precisions(s["tr_device"]), key="tr_precision")
    if why := _not_here_text(s["tr_device"]):
        c[2].caption(why)
    with st.expander(tr("train.more")):
        c = st.columns(4)
        c[0].checkbox(tr("train.augment"), key="tr_augment")
        c[1].number_input("momentum", *FORM_RANGES["momentum"], key="tr_momentum")
        c[2].number_input("weight_decay", *FORM_RANGES["weight_decay"], format="%.5f", key="tr_weight_decay")
        c[3].number_input("label_smoothing", *FORM_RANGES["label_smoothing"], key="tr_label_smoothing")
        c = st.columns(4)
        c[0].number_input("val_size", *FORM_RANGES["val_size"], key="tr_val_size", help=tr("train.val_size_help"))
        c[1].number_input("ema", *FORM_RANGES["ema"], format="%.4f", key="tr_ema", help=tr("train.ema_help"))
        c[2].checkbox(tr("train.tta"), key="tr_tta", help=tr("train.tta_help"))
        c[3].checkbox(tr("train.drop_last"), key="tr_drop_last")
    try:
        return config_from_state()
    except ValueError as exc:
        st.error(tr("error.bad_value", reason=exc))
        return None


def config_from_state() -> TrainConfig:
    """The validated config the form's widgets hold (also used by the buttons' callbacks).

    Validated once per change of the form: the same values give back the config made from them
    (a Start click and the rerun after it validate nothing new)."""
    s = st.session_state
    values = {f: s.get(f"tr_{f}", field_default(f)) for f in FIELDS}
    if s.get("tr_source", "current") == "current":
        values.update(model_spec=current_spec(), preset=field_default("preset"))
    else:
        values.update(preset=s.get("tr_preset", field_default("preset")))
    values["seed"] = seed()
    values = clone.values(values)  # a clone keeps its parent's settings the form does not show
    made = s.get("tr_config")
    if made is not None and made[0] == values:
        return made[1]
    config = TrainConfig(**values)
    s["tr_config"] = (values, config)
    return config


def on_start(ab: bool = False) -> None:
    """Start button callback: one run, or the fp32 / reduced-precision pair."""
    s = st.session_state
    try:
        config = config_from_state()
        name = s.get("tr_name", "")
        parent = clone.parent_for_start()  # a clone's parent, checked: deleted meanwhile, nothing is queued
        if ab:
            reduced = fastest_reduced()
            first = start(config.replace(precision="fp32"), f"{name or 'A/B'} fp32", parent)
            second = start(config.replace(precision=reduced), f"{name or 'A/B'} {reduced}", parent)
            s["tr_watch"] = f"{first},{second}"
        else:
            s["tr_watch"] = start(config, name, parent)
        s.pop("tr_start_error", None)
    except ValueError as exc:
        s["tr_start_error"] = exc


def on_stop(run_id: str) -> None:
    lab_jobs().stop(run_id)


def owners() -> list[tuple[str, str]]:
    """Who a run started here counts against for the queue cap: this session, and its learner if named."""
    from uuid import uuid4

    from pages.ui.learner import current

    session = st.session_state.setdefault("lab_session_id", uuid4().hex)
    learner = current()
    if learner is None and load_settings().learner_jobs > 0:  # a classroom: runs are started for a learner
        raise LabError("classroom.name_needed", setting=setting_name("learner_jobs"))
    return [("session", session)] + ([("learner", learner)] if learner else [])


def on_resume(run_id: str) -> None:
    try:
        lab_jobs().resume(run_id, owners=owners())
        # The watcher fragment's refresh rate was fixed when the run was stopped: rerun the page.
        st.session_state["tr_full_rerun"] = True
    except ValueError as exc:
        st.session_state["tr_start_error"] = exc


def start(config: TrainConfig, name: str = "", parent: str | None = None) -> str:
    """Queue a run (a callback's work: errors, an unreachable cluster included, are raised to the caller)."""
    return job_manager().start(config, name=name, parent=parent, owners=owners())


def fastest_reduced() -> str | None:
    facts = env_facts()
    if facts.cuda_available:
        return "fp16"
    return "bf16" if facts.fast_bf16 else None


@st.cache_resource
def _feed(key: str, _store, _jobs) -> LiveFeed:
    feed = LiveFeed(_store, tick=_jobs.tick, cap=lambda: _jobs.cap, learner_jobs=lambda: load_settings().learner_jobs)
    live_http.register(key, feed)
    return feed


def live_feed() -> tuple[str, LiveFeed]:
    """The process-wide live feed of this lab (its home and store URL) and its name in the feed's URL:
    every watcher's charts come from it (core.runs.live_feed), served by pages.ui.live_http."""
    store = lab_store()
    key = live_http.lab_key(str(store.home), store.url or "")
    return key, _feed(key, store, lab_jobs())


def run_label(run: RunRow) -> str:
    """A run as charts and status lines name it (core.runs.live_feed.run_label in the page's language)."""
    return feed_run_label(run, lang())


def watch(run_ids: list[str], key: str = "tr") -> None:
    """Status, progress with ETA and the charts of one run (or an A/B pair), from the shared live feed.

    While a run is queued or running, a component polls the feed each second (pages.ui.live_view): a
    watcher costs the server a lookup, not a rerun of its page. A finished run is drawn once with
    Streamlit's own elements. The A/B summary table is redrawn when the feed says the page changed
    (a new evaluation, a status)."""
    store = lab_store()
    lab_jobs().tick()
    runs = [store.get_run(r) for r in run_ids]
    runs = [r for r in runs if r is not None]
    if not runs:
        st.warning(tr("train.no_run"))
        return
    name, feed = live_feed()
    smooth = round(float(st.session_state.get("tr_smooth", 0.6)), 2)
    request = FeedRequest(tuple(r["id"] for r in runs), lang(), smooth)
    view = feed.view(request)
    if any(r["status"] in ("queued", "running") for r in runs):
        # When the feed's page signature moves on (a status, a checkpoint, an evaluation, a new finding of
        # the doctor), the component's trigger reruns the whole page once (see _full_rerun).
        live_view.show(name, list(request.run_ids), request.lang, smooth, view.sig, t("train.live_failed", lang()),
                       f"{key}_live", on_change=_full_rerun)
    else:
        for line in view.lines:
            st.progress(line.fraction, text=plain(line.text))
            if line.error:
                st.error(plain(line.error))
        if view.waiting or view.figures is None:
            st.caption(view.waiting)
        else:
            for names in (("loss", "acc"), ("lr", "speed")):
                for col, chart in zip(st.columns(2), names, strict=True):
                    # A Figure made once per view for every session (Streamlit would validate the feed's dict
                    # on each draw, and rejects one without traces: a run that ended before its first metric).
                    col.plotly_chart(feed.figure(request, chart), key=f"{key}_c_{chart}")
    if len(runs) == 2:  # the A/B pair's table (its runs' rows from the feed's shared readers)
        summary_table(runs, {r["id"]: feed.charts.metrics(store, r, WATCHED_METRICS)[0] for r in runs})


def learner_line() -> None:
    """Who this session's runs are started for: the signed-in user or the learner's name; in a classroom
    (``PYTORCH_LAB_LEARNER_JOBS`` set) a field asks for the name while there is none."""
    from pages.ui import learner

    name = learner.current()
    if name:
        st.caption(tr("train.learner", name=name))
        learner.keep_in_url()
        return
    if load_settings().learner_jobs <= 0:
        return
    typed = st.text_input(tr("lessons.name"), key="tr_learner", max_chars=60, placeholder=tr("lessons.name_hint"),
                          help=tr("train.learner_help", n=load_settings().learner_jobs))
    if typed:
        problem = learner.set_name(typed)
        if problem is not None:
            st.error(tr_error(problem))
        else:
            st.caption(tr("train.learner", name=learner.current()))


def numbers_shown(frame: pd.DataFrame, formats: dict[str, str]) -> pd.DataFrame:
    """Number columns as the table shows them: formatted, and "—" where a value does not apply (a regression
    run has no accuracy, a queued run no duration yet). Streamlit draws a missing number as "None"."""
    def one(value, fmt: str) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "—"
        return format(value, fmt)

    return frame.assign(**{c: [one(v, f) for v in frame[c]] for c, f in formats.items() if c in frame})


def summary_table(runs: list[RunRow], metrics: dict, target: float = 0.98) -> None:
    """summary_rows as a table in the page's language (headers and statuses translated)."""
    frame = summary_rows(runs, metrics, target)
    target_col = next(c for c in frame.columns if c.startswith("s to "))
    frame = numbers_shown(frame, {"val acc": ".1%", "best acc": ".1%", "last acc": ".1%", "min test loss": ".4f",
                                  target_col: ".1f", "duration s": ".1f"})
    # Table headers are plain text (t, not tr: nothing is Markdown-escaped there).
    names = {c: t(f"runs.sum.{c}", lang()) for c in frame.columns if c != target_col}
    names[target_col] = t("runs.sum.to_target", lang(), target=f"{target:.1%}")
    frame = frame.assign(status=frame["status"].map(lambda v: t(f"status.{v}", lang()))).rename(columns=names)
    st.dataframe(frame, hide_index=True, width="stretch")


def _full_rerun() -> None:
    st.session_state["tr_full_rerun"] = True


def controls(run_id: str) -> None:
    store = lab_store()
    run = store.get_run(run_id)
    if run is None:
        return
    c = st.columns(4)
    c[0].button(tr("train.stop"), key="tr_stop", disabled=run["status"] not in ("queued", "running"),
                on_click=on_stop, args=(run_id,))
    c[1].button(tr("train.resume"), key="tr_resume", disabled=run["status"] not in ("stopped", "failed"),
                on_click=on_resume, args=(run_id,))
    # the log refreshes each second while shown: the page reruns to set the fragment's timer
    # (the worker's output; a Ray job's logs come from Ray)
    if st.toggle(tr("train.log"), key="tr_log", on_change=_full_rerun):
        tail = lab_jobs().log_tail(run_id, 6000).strip()
        st.code(tail[-6000:] if tail else tr("train.log_empty"), language=None)
    for col, which in ((c[2], BEST), (c[3], LAST)):
        path = checkpoint_path(store, run_id, "best" if which == BEST else "last")
        if path is not None and path.name == which:
            # The file is read when the button is clicked, not on every refresh of the live view
            # (a checkpoint is megabytes; the watcher redraws every second).
            col.download_button(tr("train.download", file=which), path.read_bytes, file_name=f"{run_id}-{which}",
                                mime="application/octet-stream", key=f"tr_dl_{which}")


@st.cache_data(max_entries=16, show_spinner=False)
def _evaluation(run_id: str, stamp: float, dataset: str) -> dict:
    # The weights' moving average and test-time augmentation, as the run scored its test split: kept by
    # the worker when the run ended (core.runs.trained.save_evaluation), else evaluated here under the budget.
    store = lab_store()
    kept = stored_evaluation(store, run_id)
    if kept is not None and dataset_info(dataset).image:
        from core.settings import load_settings

        split = load_dataset(dataset, load_settings())  # the digits are shown rescaled: the raw pixels do
        images = split.test_images
        return {**kept, "x": images.unsqueeze(1) if images.dim() == 3 else images, "y": split.test_labels}
    model, x, y = load_run_evaluation(store, run_id)
    info = find_dataset(dataset)
    classes = info.outputs if info is not None and info.task == "classification" else 10
    return {**evaluate_model(model, x, y, classes=classes), "x": x, "y": y}


@st.cache_data(max_entries=16, show_spinner=False)
def _regression(run_id: str, stamp: float, dataset: str) -> dict:
    """The final model of a regression run (last.pt: what the run ended with) on its test split."""
    model, _spec, info = load_run_model(lab_store(), run_id, "last")
    data = load_data(TrainConfig.model_construct(dataset=dataset))
    return {"report": regression_report(model, data.test_x, data.test_y), "x": data.test_x, "y": data.test_y,
            "epoch": info["epoch"], "train_x": data.train_x, "train_y": data.train_y}


def evaluation(run: RunRow, prefix: str = "tr") -> None:
    """A finished run on its test split: confusion matrix, per-class accuracy and misclassified digits of a
    classification run; loss, MAE and the fitted line of a regression run. ``prefix`` keeps the
    widget keys of two evaluations on one page apart."""
    if checkpoint_path(lab_store(), run["id"]) is None:
        st.caption(tr("train.no_checkpoint"))
        return
    task = run_task(run)
    try:
        if task == "regression":
            regression_evaluation(run, prefix)
            return
        if task != "classification":
            return
        result = _evaluation(run["id"], float(run.get("finished") or 0), run["config"]["dataset"])
    except (CheckpointError, ValueError) as exc:
        st.error(tr("error.bad_value", reason=exc))
        return
    info = find_dataset(run["config"]["dataset"])
    show_evaluation(result, prefix, list(info.classes) if info is not None and info.user else None)


def show_evaluation(result: dict, prefix: str = "tr", names: list[str] | None = None) -> None:
    classes = names if names and len(names) == len(result["per_class"]) else \
        [str(i) for i in range(len(result["per_class"]))]
    st.metric(tr("train.test_acc"), f"{100 * result['accuracy']:.2f}%")
    c = st.columns([3, 2])
    c[0].plotly_chart(confusion_figure(result["confusion"], classes, {"x": tr("train.pred"), "y": tr("train.true")}),
                      key=f"{prefix}_conf")
    c[1].dataframe(pd.DataFrame({tr("train.class"): classes, tr("train.accuracy"): result["per_class"]}),
                   hide_index=True, column_config={tr("train.accuracy"): st.column_config.ProgressColumn(
                       min_value=0.0, max_value=1.0, format="percent")}, key=f"{prefix}_per_class")
    wrong = result["wrong"][:24]
    if len(wrong) and result["x"].dim() in (3, 4):  # images (a table's rows are not drawn)
        st.markdown(f"**{tr('train.wrong', n=len(result['wrong']))}**")
        x = result["x"][wrong].float()
        x = (x - x.amin()) / (x.amax() - x.amin() + 1e-8)
        titles = [f"{int(result['y'][i])}→{int(result['pred'][i])} {result['confidence'][i]:.0%}" for i in wrong]
        st.plotly_chart(image_grid(x, titles, cols=8, size=80), key=f"{prefix}_wrong",
                        config={"displayModeBar": False})


def regression_evaluation(run: RunRow, prefix: str = "tr") -> None:
    """A regression run's own metrics (MSE, MAE; w and b of a Linear(1, 1)), the fitted line against the
    points and, for R1, why w is not 2 yet and a button that runs the tutorial's loop on until it is."""
    res = _regression(run["id"], float(run.get("finished") or 0), run["config"]["dataset"])
    rep, x, y = res["report"], res["x"], res["y"]
    line = rep["line"]
    m = st.columns(4)
    m[0].metric(tr("train.mse"), f"{rep['mse']:.4f}")
    m[1].metric(tr("train.mae"), f"{rep['mae']:.4f}")
    if line is not None:
        m[2].metric("w", f"{line[0]:.4f}")
        m[3].metric("b", f"{line[1]:.4f}")
    labels = {k: t(f"train.fit.{k}", lang()) for k in ("data", "fit", "ideal", "true", "pred")}
    st.plotly_chart(fit_figure(x, y, rep["pred"], labels, line), key=f"{prefix}_fit")
    if line is None or x.ndim != 2 or x.shape[1] != 1:
        return
    w, b = line
    target, target_b = least_squares(x, y)
    lr = float(run["config"].get("lr") or 0.0)
    if abs(w - target) >= RUN_ON_TOL:
        slow = slow_direction(x, lr)
        st.markdown(tr("train.r1.not_yet", epochs=res["epoch"], w=w, b=b, target=target, tol=RUN_ON_TOL))
        st.markdown(tr("train.r1.why", n=len(x), w=w, best_b=target_b + slow["mean_x"] * (target - w),
                       curvature=slow["curvature"], lr=lr, pct=100 * slow["per_epoch"]))
    else:
        st.markdown(tr("train.r1.there", epochs=res["epoch"], w=w, target=target, tol=RUN_ON_TOL))
    probe = build_model(TrainConfig.model_of(run["config"]), seed=0)
    if abs(w - target) >= RUN_ON_TOL and can_run_on(run["config"], probe, len(res["train_x"])):
        st.button(tr("train.r1.run_on", target=target, tol=RUN_ON_TOL), key=f"{prefix}_run_on",
                  on_click=_run_on, args=(run["id"], prefix, int(res["epoch"] or 0)))
    result = st.session_state.get(f"{prefix}_run_on_result")
    if result and result[0] == run["id"]:
        done = result[1]
        key = "train.r1.reached" if done["reached"] else "train.r1.not_reached"
        (st.success if done["reached"] else st.warning)(tr(key, more=done["more"], epochs=done["epochs"], w=done["w"],
                                                          b=done["b"], loss=done["loss"], tol=RUN_ON_TOL,
                                                          target=done["target"]))
        st.plotly_chart(run_on_figure(done, {"target": t("train.fit.target", lang(), target=f"{done['target']:.4g}"),
                                             "epoch": t("runs.x.epoch", lang())}), key=f"{prefix}_run_on_chart")


RUN_ON_TOL = 0.01  # R1: "until |w - 2| < 0.01"


def _run_on(run_id: str, prefix: str, start_epoch: int) -> None:
    """Continue the run's last state with the tutorial's loop (run_on), in this session: R1 is 2 weights."""
    s = st.session_state
    try:
        run = lab_store().run(run_id)
        path = checkpoint_path(lab_store(), run_id, "last")
        if path is None:
            raise CheckpointError("checkpoint.none_yet", run=run_id)
        ckpt = load_checkpoint(path)
        model, _spec = model_from_checkpoint(ckpt)
        data = load_data(TrainConfig.model_construct(dataset=run["config"]["dataset"]))
        s[f"{prefix}_run_on_result"] = (run_id, run_on(model, run["config"], ckpt.get("optimizer_state_dict"),
                                                       data.train_x, data.train_y, start_epoch, tol=RUN_ON_TOL))
    except (CheckpointError, ValueError, KeyError) as exc:
        s["tr_start_error"] = exc


def uploaded_checkpoint() -> None:
    """Evaluate or resume from an uploaded checkpoint (weights_only=True, size-capped): the lab's own, or
    the tutorials' plain dict (epoch, model_state_dict, optimizer_state_dict, loss) once the learner
    has said which model it belongs to."""
    upload = st.file_uploader(tr("train.upload"), type=["pt", "pth"], key="tr_upload", help=tr("train.upload_help"))
    if upload is None:
        return
    resumable: dict | None = None
    try:
        ckpt = load_checkpoint(upload.getvalue())
        if isinstance(ckpt.get("config"), dict):
            _model, spec = model_from_checkpoint(ckpt)  # checks the weights fit the model
            config = TrainConfig.from_stored(ckpt["config"])
            resumable = ckpt
        else:
            model, spec, config = _tutorial_model(ckpt)
    except (CheckpointError, ValueError) as exc:
        st.error(tr("train.bad_checkpoint", reason=exc))
        return
    st.success(tr("train.checkpoint_ok", name=spec.name, epoch=ckpt.get("epoch"), loss=ckpt.get("loss") or 0))
    why_not = None
    if resumable is None:
        try:
            resumable = as_lab_checkpoint(ckpt, config)
        except CheckpointError as exc:
            why_not = exc
    c = st.columns(2)
    evaluate = c[0].toggle(tr("train.evaluate"), key="tr_up_eval",
                           disabled=config.dataset_info.task != "classification")
    c[1].button(tr("train.resume_upload"), key="tr_up_resume", on_click=_resume_upload,
                args=(resumable, config, upload.name), disabled=resumable is None)
    if why_not is not None:
        st.warning(tr("train.cannot_resume", reason=why_not))
    if evaluate:
        try:  # EMA weights and TTA, as the run scored its test split; sized and timed by the request budget
            if isinstance(ckpt.get("config"), dict):
                scored, x, y = checkpoint_test_evaluation(ckpt)
            else:  # the tutorials' checkpoint: its plain weights on the chosen config's test split
                data = load_data(config)
                scored, x, y = model, data.test_x, data.test_y
            result = evaluate_model(scored, x, y)
        except ValueError as exc:
            st.error(tr("error.bad_value", reason=exc))
            return
        show_evaluation({**result, "x": x, "y": y}, prefix="tr_up")

def _tutorial_model(ckpt: dict):
    """A checkpoint without the lab's config: the learner picks its model (the current one or a preset);
    the weights load when names and shapes fit. The config is the form's, with that model and a dataset
    it fits."""
    st.info(tr("train.tutorial_checkpoint"))
    options = ["current", *[k for k, p in PRESETS.items() if p.task != "shapes"]]
    choice = st.selectbox(tr("train.checkpoint_model"), options, key="tr_up_model",
                          format_func=lambda k: tr("train.model.current") if k == "current" else preset_label(k))
    spec = current_spec() if choice == "current" else preset_spec(choice)
    model = model_from_state(ckpt, spec)
    try:
        base = config_from_state()
    except ValueError:
        base = TrainConfig()
    model_fields = {"model_spec": spec, "preset": field_default("preset")} if choice == "current" else \
        {"model_spec": None, "preset": choice}
    fitting = [base.dataset] + [k for k, d in DATASETS.items()
                                if k != base.dataset and d.input_shape == spec.input_shape]
    for dataset in fitting:
        info = dataset_info(dataset)
        try:
            config = base.replace(dataset=dataset, **model_fields, **({} if info.image else {"augment": False}),
                                  **({} if base.resolved_loss in _losses_of(info.task) else {"loss": "auto"}),
                                  **({} if info.task == "classification" else {"label_smoothing": 0.0}))
            return model, spec, config
        except ValueError:
            continue
    raise CheckpointError("trained.no_dataset", model=Code(spec.name), shape=Code(str(list(spec.input_shape))))


def _losses_of(task: str) -> tuple[str, ...]:
    from core.training.config import CLASSIFICATION_LOSSES, REGRESSION_LOSSES

    return CLASSIFICATION_LOSSES if task == "classification" else REGRESSION_LOSSES


def _resume_upload(ckpt: dict, config: TrainConfig, filename: str) -> None:
    """A new run from an uploaded checkpoint: stored as its last.pt, then resumed as a job."""
    from core.ml.checkpoint import save_checkpoint

    store = lab_store()
    try:
        lab_jobs().check_start(config, owners())  # the queue and disk caps, before any file is written
    except ValueError as exc:
        st.session_state["tr_start_error"] = exc
        return
    run_id = store.create_run(config.to_dict(), name=f"resumed {filename}"[:60], status="stopped", kind="job")
    save_checkpoint(ckpt, store.run_dir(run_id, create=True) / LAST)
    try:
        lab_jobs().resume(run_id, owners=owners())
    except ValueError as exc:
        st.session_state["tr_start_error"] = exc
        return
    st.session_state["tr_watch"] = run_id


def _step_reset(config: TrainConfig) -> None:
    s = st.session_state
    try:
        # The page's own trainer: one process, on the CPU, in fp32 (the background run is for the rest).
        on_cpu = config if (config.device, config.precision, config.processes) == ("cpu", "fp32", 1) else \
            config.replace(device="cpu", precision="fp32", processes=1)
        s["tr_step_trainer"] = Trainer(on_cpu)
        s["tr_step_key"], s["tr_step_result"] = config.to_json(), None
        s.pop("tr_step_error", None)
    except ValueError as exc:
        s["tr_step_error"] = exc


def _step_one() -> None:
    from core.lessons.stepmode import teaching_step

    s = st.session_state
    try:
        s["tr_step_result"] = teaching_step(s["tr_step_trainer"])
    except ValueError as exc:  # LabErrors (a finished trainer, a diverged loss): shown in the page's language
        s["tr_step_error"] = exc


def step_mode(config: TrainConfig) -> None:
    """The in-page trainer: each click does one optimizer step and shows what changed."""
    key = config.to_json()
    s = st.session_state
    if s.get("tr_step_key") != key:  # a new config: a fresh trainer
        _step_reset(config)
    if s.get("tr_step_error"):
        st.error(tr("error.bad_value", reason=s.pop("tr_step_error")))
    if "tr_step_trainer" not in s:
        return
    trainer = s["tr_step_trainer"]
    c = st.columns([1, 1, 3])
    c[0].button(tr("train.step_one"), key="tr_step_one", type="primary", on_click=_step_one,
                disabled=trainer.finished)
    c[1].button(tr("train.step_reset"), key="tr_step_reset", on_click=_step_reset, args=(config,))
    c[2].caption(tr("train.step_caption", step=trainer.global_step, epoch=trainer.epoch + 1,
                    batch=trainer.batch, batches=trainer.batches_per_epoch))
    result = s.get("tr_step_result")
    if not result:
        return
    m = st.columns(3)
    m[0].metric(tr("train.loss_before"), f"{result['loss_before']:.4f}")
    m[1].metric(tr("train.loss_after"), f"{result['loss_after']:.4f}",
                f"{result['loss_after'] - result['loss_before']:+.4f}", delta_color="inverse")
    m[2].metric("lr", f"{result['record']['lr']:.2e}")
    if result["x"].ndim == 4:
        titles = [str(int(v)) for v in result["y"]]
        x = result["x"].float()
        st.plotly_chart(image_grid((x - x.amin()) / (x.amax() - x.amin() + 1e-8), titles, cols=8, size=70),
                        key="tr_step_batch", config={"displayModeBar": False})
    c = st.columns(2)
    # Column headers in the page's language (core's frames keep stable English names).
    head = {k: t(f"train.step_col.{k}", lang()) for k in STEP_COLUMNS}
    c[0].dataframe(result["layers"], hide_index=True, column_config={
        k: st.column_config.NumberColumn(head[k], format="%.2e") if k != "layer" else st.column_config.Column(head[k])
        for k in result["layers"].columns})
    if "predictions" in result:
        c[1].dataframe(result["predictions"], hide_index=True, column_config={
            k: st.column_config.ProgressColumn(head[k], min_value=0.0, max_value=1.0, format="%.2f")
            if k.startswith("p(") else st.column_config.Column(head[k]) for k in result["predictions"].columns})


STEP_COLUMNS = ("layer", "grad norm", "update norm", "update / weight", "label", "before", "after", "p(label) before",
                "p(label) after")
