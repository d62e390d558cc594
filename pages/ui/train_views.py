"""Train page pieces: the config form, the live run watcher, evaluation and the step mode."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.ml.checkpoint import BEST, LAST, CheckpointError, load_checkpoint
from core.ml.data import DATASETS
from core.ml.env import env_facts
from core.ml.plots import image_grid
from core.ml.zoo import PRESETS
from core.runs.store import RunRow
from core.runs.trained import checkpoint_path, load_run_model, model_from_checkpoint
from core.runs.view import (
    MetricsFollower,
    confusion_figure,
    curves_figure,
    evaluate_model,
    progress,
    summary_rows,
    total_steps,
)
from core.training.batches import load_data
from core.training.config import (
    DEVICES,
    LOSSES,
    OPTIMIZERS,
    PRECISIONS,
    RECIPES,
    SCHEDULERS,
    TrainConfig,
    field_default,
)
from core.training.trainer import Trainer
from pages.ui.model_state import current_spec
from pages.ui.state import lab_store, seed
from pages.ui.text import plain, tr
from pages.ui.train_form import FIELDS
from pages.ui.train_form import RANGES as FORM_RANGES


@st.cache_resource
def _jobs(home: str, url: str, _store):
    from core.runs.jobs import JobManager, configure_server_threads

    configure_server_threads()  # leave the cores to the training workers
    return JobManager(store=_store)


def lab_jobs():
    """The lab's job manager, on the lab's store (one per lab home and store URL)."""
    store = lab_store()
    return _jobs(str(store.home), store.url or "", store)


def apply_recipe(name: str) -> None:
    """Fill the form with a tutorial recipe (one click); the form's config is made from it."""
    changes = RECIPES[name]
    s = st.session_state
    s["tr_source"] = "preset"
    for f in ("preset", *FIELDS):
        s[f"tr_{f}"] = changes.get(f, field_default(f))


def form() -> TrainConfig | None:
    """The trainer config widgets; returns a validated config or None (after showing why)."""
    s = st.session_state
    for f in FIELDS:
        s.setdefault(f"tr_{f}", field_default(f))
    s.setdefault("tr_preset", field_default("preset"))
    c = st.columns([1, 2, 2])
    source = c[0].radio(tr("train.model"), ["current", "preset"], key="tr_source",
                        format_func=lambda k: tr(f"train.model.{k}"))
    c[1].selectbox(tr("train.preset"), [k for k, p in PRESETS.items() if p.task != "shapes"],
                   key="tr_preset", disabled=source != "preset", format_func=lambda k: PRESETS[k].title)
    c[2].selectbox(tr("train.dataset"), list(DATASETS), key="tr_dataset")
    c = st.columns(4)
    c[0].selectbox(tr("train.optimizer"), OPTIMIZERS, key="tr_optimizer")
    c[1].number_input(tr("train.lr"), *FORM_RANGES["lr"], format="%.5f", key="tr_lr")
    c[2].selectbox(tr("train.scheduler"), SCHEDULERS, key="tr_scheduler")
    c[3].selectbox(tr("train.loss"), LOSSES, key="tr_loss")
    c = st.columns(4)
    c[0].number_input(tr("train.batch"), *FORM_RANGES["batch_size"], key="tr_batch_size")
    c[1].number_input(tr("train.epochs"), *FORM_RANGES["epochs"], key="tr_epochs")
    c[2].selectbox(tr("train.device"), DEVICES, key="tr_device")
    c[3].selectbox(tr("train.precision"), PRECISIONS, key="tr_precision")
    with st.expander(tr("train.more")):
        c = st.columns(4)
        c[0].checkbox(tr("train.augment"), key="tr_augment")
        c[1].number_input("momentum", *FORM_RANGES["momentum"], key="tr_momentum")
        c[2].number_input("weight_decay", *FORM_RANGES["weight_decay"], format="%.5f", key="tr_weight_decay")
        c[3].number_input("label_smoothing", *FORM_RANGES["label_smoothing"], key="tr_label_smoothing")
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
        if ab:
            reduced = fastest_reduced()
            first = start(config.replace(precision="fp32"), f"{name or 'A/B'} fp32")
            second = start(config.replace(precision=reduced), f"{name or 'A/B'} {reduced}")
            s["tr_watch"] = f"{first},{second}"
        else:
            s["tr_watch"] = start(config, name)
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
    return [("session", session)] + ([("learner", learner)] if learner else [])


def on_resume(run_id: str) -> None:
    try:
        lab_jobs().resume(run_id, owners=owners())
        # The watcher fragment's refresh rate was fixed when the run was stopped: rerun the page.
        st.session_state["tr_full_rerun"] = True
    except ValueError as exc:
        st.session_state["tr_start_error"] = exc


def start(config: TrainConfig, name: str = "") -> str:
    return lab_jobs().start(config, name=name, owners=owners())


def fastest_reduced() -> str | None:
    facts = env_facts()
    if facts.cuda_available:
        return "fp16"
    return "bf16" if facts.fast_bf16 else None


# What the live view draws (and the A/B summary reads); other metrics stay in the store.
WATCHED_METRICS = ("loss", "lr", "samples_per_s", "test_acc", "test_loss")


def watch(run_ids: list[str]) -> None:
    """Status, progress with ETA and live charts of one run (or an A/B pair), refreshed every second."""
    store = lab_store()
    lab_jobs().poll()
    runs = [store.get_run(r) for r in run_ids]
    runs = [r for r in runs if r is not None]
    if not runs:
        st.warning(tr("train.no_run"))
        return
    # Each run's metrics are followed incrementally (only new rows are read each second).
    followers = st.session_state.setdefault("tr_followers", {})
    for stale in set(followers) - {r["id"] for r in runs}:
        del followers[stale]
    metrics = {}
    for run in runs:
        label = f"{run['name'] or run['id']} ({run.get('precision') or run['config'].get('precision')})"
        follower = followers.setdefault(run["id"], MetricsFollower(run["id"], WATCHED_METRICS))
        metrics[label] = follower.update(store, run.get("started"))
        steps = total_steps(run["config"])
        p = progress(run, steps, metrics[label])
        eta = f" · ETA {p['eta_s']:.0f} s" if p["eta_s"] is not None else ""
        st.progress(p["fraction"], text=tr("train.status", run=label, status=tr(f"status.{run['status']}"),
                                          step=p["step"], total=p["total"] or "?") + eta)
        if run.get("error"):
            st.error(plain(run["error"]))
    smooth = st.session_state.get("tr_smooth", 0.6)
    c = st.columns(2)
    c[0].plotly_chart(curves_figure(metrics, "loss", smoothing=smooth, labels={"y": tr("train.chart.loss")}),
                      key="tr_c_loss")
    acc = "test_acc" if any((m["name"] == "test_acc").any() for m in metrics.values()) else "test_loss"
    c[1].plotly_chart(curves_figure(metrics, acc, x="epoch", labels={"y": tr(f"train.chart.{acc}")}),
                      key="tr_c_acc")
    c = st.columns(2)
    c[0].plotly_chart(curves_figure(metrics, "lr", height=240, labels={"y": "lr"}), key="tr_c_lr")
    c[1].plotly_chart(curves_figure(metrics, "samples_per_s", smoothing=0.8, height=240,
                                      labels={"y": tr("train.chart.speed")}), key="tr_c_speed")
    if len(runs) == 2:
        by_run = {r["id"]: metrics[k] for r, k in zip(runs, metrics, strict=False)}
        st.dataframe(summary_rows(runs, by_run), hide_index=True)


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
    for col, which in ((c[2], BEST), (c[3], LAST)):
        path = checkpoint_path(store, run_id, "best" if which == BEST else "last")
        if path is not None and path.name == which:
            # The file is read when the button is clicked, not on every refresh of the live view
            # (a checkpoint is megabytes; the watcher redraws every second).
            col.download_button(tr("train.download", file=which), path.read_bytes, file_name=f"{run_id}-{which}",
                                mime="application/octet-stream", key=f"tr_dl_{which}")


@st.cache_data(max_entries=16, show_spinner=False)
def _evaluation(run_id: str, stamp: float, dataset: str) -> dict:
    model, _spec, _ = load_run_model(lab_store(), run_id)
    data = load_data(TrainConfig(dataset=dataset))
    return {**evaluate_model(model, data.test_x, data.test_y), "x": data.test_x, "y": data.test_y}


def evaluation(run: RunRow) -> None:
    """Confusion matrix, per-class accuracy and misclassified digits of a finished classification run."""
    if DATASETS[run["config"]["dataset"]].task != "classification" or checkpoint_path(lab_store(), run["id"]) is None:
        return
    try:
        result = _evaluation(run["id"], float(run.get("finished") or 0), run["config"]["dataset"])
    except (CheckpointError, ValueError) as exc:
        st.error(tr("error.bad_value", reason=exc))
        return
    show_evaluation(result)


def show_evaluation(result: dict) -> None:
    classes = [str(i) for i in range(len(result["per_class"]))]
    st.metric(tr("train.test_acc"), f"{100 * result['accuracy']:.2f}%")
    c = st.columns([3, 2])
    c[0].plotly_chart(confusion_figure(result["confusion"], classes, {"x": tr("train.pred"), "y": tr("train.true")}),
                      key="tr_conf")
    c[1].dataframe(pd.DataFrame({tr("train.class"): classes, tr("train.accuracy"): result["per_class"]}),
                   hide_index=True, column_config={tr("train.accuracy"): st.column_config.ProgressColumn(
                       min_value=0.0, max_value=1.0, format="percent")})
    wrong = result["wrong"][:24]
    if len(wrong):
        st.markdown(f"**{tr('train.wrong', n=len(result['wrong']))}**")
        x = result["x"][wrong].float()
        x = (x - x.amin()) / (x.amax() - x.amin() + 1e-8)
        titles = [f"{int(result['y'][i])}→{int(result['pred'][i])} {result['confidence'][i]:.0%}" for i in wrong]
        st.plotly_chart(image_grid(x, titles, cols=8, size=80), key="tr_wrong", config={"displayModeBar": False})


def uploaded_checkpoint() -> None:
    """Evaluate or resume from an uploaded checkpoint (weights_only=True, size-capped)."""
    upload = st.file_uploader(tr("train.upload"), type=["pt", "pth"], key="tr_upload", help=tr("train.upload_help"))
    if upload is None:
        return
    try:
        ckpt = load_checkpoint(upload.getvalue())
        model, spec = model_from_checkpoint(ckpt)
        config = TrainConfig.from_dict(ckpt["config"])
    except (CheckpointError, ValueError) as exc:
        st.error(tr("train.bad_checkpoint", reason=exc))
        return
    st.success(tr("train.checkpoint_ok", name=spec.name, epoch=ckpt.get("epoch"), loss=ckpt.get("loss") or 0))
    c = st.columns(2)
    evaluate = c[0].toggle(tr("train.evaluate"), key="tr_up_eval",
                           disabled=DATASETS[config.dataset].task != "classification")
    c[1].button(tr("train.resume_upload"), key="tr_up_resume", on_click=_resume_upload,
                args=(ckpt, config, upload.name))
    if evaluate:
        data = load_data(config)
        try:  # sized and timed by the request budget: a model too wide or too slow is refused with why
            result = evaluate_model(model, data.test_x, data.test_y)
        except ValueError as exc:
            st.error(tr("error.bad_value", reason=exc))
            return
        show_evaluation({**result, "x": data.test_x, "y": data.test_y})


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
    lab_jobs().resume(run_id, owners=owners())
    st.session_state["tr_watch"] = run_id


def _step_reset(config: TrainConfig) -> None:
    s = st.session_state
    try:
        on_cpu = config if (config.device, config.precision) == ("cpu", "fp32") else config.replace(
            device="cpu", precision="fp32")
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
    except ValueError as exc:
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
    c[0].dataframe(result["layers"], hide_index=True, column_config={
        k: st.column_config.NumberColumn(format="%.2e") for k in ("grad norm", "update norm", "update / weight")})
    if "predictions" in result:
        c[1].dataframe(result["predictions"], hide_index=True, column_config={
            k: st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.2f")
            for k in ("p(label) before", "p(label) after")})
