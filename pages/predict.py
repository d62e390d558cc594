"""Predict: draw or upload a digit, see what a trained model (or the current one) makes of it."""
import plotly.express as px
import streamlit as st
import torch

from core.ml.checkpoint import CheckpointError
from core.ml.modules import build_model
from core.ml.onnx_view import OnnxModel, fits, predict_one
from core.ml.plots import image_grid
from core.ml.predict import ImageError, feature_maps, load_image, predict, preprocess
from core.runs.trained import load_run_model, trained_runs
from pages.ui.explain_views import attribution_chart, method_picker
from pages.ui.frame import frame
from pages.ui.model_state import current_spec
from pages.ui.onnx_panel import opened as opened_onnx
from pages.ui.state import lab_store
from pages.ui.text import tr
from pages.ui.widgets import url_choice

frame()


@st.cache_resource(max_entries=8, show_spinner=False)
def run_model(run_id: str, stamp: float):
    """A trained run's model, shared read-only by sessions (inference and input gradients only)."""
    model, spec, info = load_run_model(lab_store(), run_id)
    return model, spec, info


def choose_model():
    """(model, spec) of the chosen source, or None after showing why it can't be used."""
    runs = trained_runs(lab_store(), task="classification")  # a regression run cannot read digits
    onnx = opened_onnx()
    onnx_fits = onnx is not None and fits(onnx, (1, 28, 28), 10)
    options = ["current"] + (["onnx"] if onnx_fits else []) + [r["id"] for r in runs]
    names = {r["id"]: f"{r['name'] or r['id']} · {r['status']}" for r in runs}
    names["onnx"] = tr("predict.onnx")
    # The default is the newest run, which changes as runs are trained: keep the choice in the URL
    # so a shared link shows this run later too; a run the link names that is gone says so.
    source = url_choice(st.selectbox, tr("predict.source"), options, "pr_run", options[1] if runs else "current",
                        lambda o: tr("predict.current") if o == "current" else names.get(o, o),
                        keep_default=True, stale="predict.unknown_run")
    if source == "onnx" and onnx is not None:
        st.caption(tr("predict.onnx_note"))
        return onnx, None
    if source == "current":
        spec = current_spec()
        model = build_model(spec, seed=0).eval()
        st.warning(tr("predict.untrained") if not runs else tr("predict.current_note"))
    else:
        run = next(r for r in runs if r["id"] == source)
        try:
            model, spec, info = run_model(source, float(run.get("finished") or run.get("heartbeat") or 0))
        except CheckpointError as exc:
            st.error(tr("error.bad_value", reason=exc))
            return None
        st.caption(tr("predict.loaded", file=info["file"], epoch=info["epoch"]))
    if spec.input_shape != (1, 28, 28):
        st.error(tr("predict.wrong_model", shape=list(spec.input_shape)))
        return None
    return model, spec


def read_input():
    """The grey image from the canvas or an upload, or None."""
    mode = url_choice(st.segmented_control, tr("predict.input"), ["draw", "upload"], "pr_input", "draw",
                      lambda m: tr(f"predict.input.{m}"), required=True)
    try:
        if mode == "draw":
            from streamlit_drawable_canvas import st_canvas

            canvas = st_canvas(stroke_width=18, stroke_color="#FFFFFF", background_color="#000000", height=280,
                               width=280, drawing_mode="freedraw", key="pr_canvas", return_image_data=True)
            st.caption(tr("predict.draw_hint"))
            png = canvas.image_bytes  # the browser sends a PNG: decoded under the same caps as an upload
            return load_image(png) if png else None
        upload = st.file_uploader(tr("predict.upload"), type=["png", "jpg", "jpeg", "gif", "bmp", "webp"],
                                  key="pr_upload", help=tr("predict.upload_help"))
        return load_image(upload.getvalue()) if upload is not None else None
    except (ImageError, ValueError) as exc:
        st.error(tr("predict.bad_image", reason=exc))
        return None


def show_prediction(model, grey) -> None:
    if grey is None:
        st.info(tr("predict.waiting"))
        return
    prepared = preprocess(grey)
    if prepared.empty:
        st.info(tr("predict.empty"))
        return
    onnx = isinstance(model, OnnxModel)
    result = predict_one(model, prepared.tensor) if onnx else predict(model, prepared.tensor)
    classes = [str(i) for i in range(len(result["probs"]))]
    st.metric(tr("predict.answer"), classes[result["label"]])
    if not onnx:
        st.caption(tr("predict.confidence", p=100 * result["confidence"], ms=result["latency_ms"]))
    fig = px.bar(x=classes, y=result["probs"], labels={"x": tr("predict.class"), "y": tr("predict.prob")})
    fig.update_layout(height=260, margin=dict(l=0, r=0, t=10, b=0), yaxis_range=[0, 1])
    st.plotly_chart(fig, key="pr_probs")
    if onnx:  # no gradients or layers to look into: the input it saw
        st.markdown(f"**{tr('predict.seen')}**" + (f" ({tr('predict.inverted')})" if prepared.inverted else ""))
        st.plotly_chart(image_grid(torch.from_numpy(prepared.image)[None], [""], cols=1, size=220),
                        key="pr_seen", config={"displayModeBar": False})
        return
    method, layer = method_picker("pr", model)
    views = st.columns(2)
    with views[0]:
        st.markdown(f"**{tr('predict.seen')}**" + (f" ({tr('predict.inverted')})" if prepared.inverted else ""))
        st.plotly_chart(image_grid(torch.from_numpy(prepared.image)[None], [""], cols=1, size=220),
                        key="pr_seen", config={"displayModeBar": False})
    with views[1]:
        st.markdown(f"**{tr('explain.attribution', digit=classes[result['label']])}**")
        attribution_chart(model, prepared.tensor, method, layer, target=result["label"])
    for name, fmap in feature_maps(model, prepared.tensor):
        t = torch.from_numpy(fmap)
        lo, hi = t.amin(dim=(1, 2), keepdim=True), t.amax(dim=(1, 2), keepdim=True)
        st.markdown(f"**{tr('predict.maps')}** · " + tr("predict.map_caption", name=name, n=len(fmap),
                                                       h=fmap.shape[1], w=fmap.shape[2]))
        st.plotly_chart(image_grid((t - lo) / (hi - lo + 1e-8), [str(i) for i in range(len(fmap))], cols=8,
                                   size=60), key=f"pr_map_{name}", config={"displayModeBar": False})


st.title(tr("predict.title"))
st.write(tr("predict.intro"))
chosen = choose_model()
if chosen is not None:
    left, right = st.columns([1, 2])
    with left:
        grey = read_input()
    with right:
        show_prediction(chosen[0], grey)
