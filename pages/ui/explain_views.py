"""The pages' pieces for looking inside a model: the attribution method picker and its map (Predict,
Explain), the layer overview, the convolution stepper and the PCA map (Explain)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.express as px
import streamlit as st
import torch
from torch import nn

from core.errors import Code
from core.ml.explain import (
    MAX_OVERVIEW_CHANNELS,
    METHODS,
    ExplainError,
    activations,
    attribute,
    conv_layers,
    conv_step,
)
from pages.ui.text import plain, tr, tr_error
from pages.ui.widgets import url_choice

DEFAULT_METHOD = "smoothgrad"


def method_picker(prefix: str, model: nn.Module) -> tuple[str, str | None]:
    """The attribution method (kept in the URL as ``<prefix>_method``) with its one-line explanation,
    and for Grad-CAM the Conv2d layer (``<prefix>_cam``)."""
    method = url_choice(st.selectbox, tr("explain.method"), list(METHODS), f"{prefix}_method", DEFAULT_METHOD,
                        lambda m: tr(f"explain.method.{m}"))
    st.caption(tr(f"explain.method_help.{method}"))
    layer = None
    if method == "gradcam":
        convs = conv_layers(model)
        if convs:
            modules = dict(model.named_modules())
            layer = url_choice(st.selectbox, tr("explain.cam_layer"), convs, f"{prefix}_cam", convs[-1],
                               lambda name: f"{name} · {modules[name]}")
    return method, layer


def attribution_view(model: nn.Module, x, method: str, layer: str | None) -> None:
    """The Explain page's attribution: what the model's answer for this digit rests on."""
    with torch.inference_mode():
        guess = int(model(x).reshape(1, -1).argmax())
    st.markdown(f"**{tr('explain.attribution', digit=guess)}**")
    attribution_chart(model, x, method, layer, target=guess, height=336)


def attribution_chart(model: nn.Module, x, method: str, layer: str | None, target: int | None = None,
                      height: int = 250) -> None:
    """The attribution map of one input, or the reason there is none (e.g. Grad-CAM without a conv layer)."""
    try:
        amap = attribute(model, x, method, target=target, layer=layer)
    except ExplainError as exc:
        st.info(tr_error(exc))
        return
    st.image(heat(amap, max(2, height // max(amap.shape))))


def heat(values: np.ndarray, factor: int) -> np.ndarray:
    """A [0, 1] map as an RGB picture in the inferno colours (black: nothing, yellow: the most), each
    value a factor × factor block."""
    stops = np.array([px.colors.hex_to_rgb(c) for c in px.colors.sequential.Inferno], np.float32)
    pos = np.clip(values, 0, 1) * (len(stops) - 1)
    low = np.floor(pos).astype(int).clip(0, len(stops) - 2)
    frac = (pos - low)[..., None]
    rgb = stops[low] * (1 - frac) + stops[low + 1] * frac
    block = np.ones((factor, factor, 1), np.float32)
    return np.kron(rgb, block).round().astype(np.uint8)


# --------------------------------------------------------------------------- the model and the digit
@st.cache_resource(max_entries=8, show_spinner=False)
def _run_model(run_id: str, which: str, stamp: float):
    """A trained run's model (best or last checkpoint), shared read-only by sessions."""
    from core.runs.trained import load_run_model
    from pages.ui.state import lab_store

    model, spec, info = load_run_model(lab_store(), run_id, which)
    return model, spec, info


@st.cache_resource(max_entries=4, show_spinner=False)
def _current_model(spec_json: str):
    from core.ml.modules import build_model
    from core.ml.spec import ModelSpec

    return build_model(ModelSpec.from_json(spec_json), seed=0).eval()


def run_model(run_id: str, which: str = "best"):
    """(model, spec, info) of a stored run, cached by its checkpoint file's time. Raises CheckpointError."""
    from core.ml.checkpoint import CheckpointError
    from core.runs.trained import checkpoint_path
    from pages.ui.state import lab_store

    path = checkpoint_path(lab_store(), run_id, which)
    if path is None:
        raise CheckpointError("checkpoint.none_yet", run=Code(run_id))
    return _run_model(run_id, which, path.stat().st_mtime)


def _stored_run(run_id: str) -> bool:
    from core.runs.store import check_run_id
    from pages.ui.state import lab_store

    try:
        return lab_store().get_run(check_run_id(run_id)) is not None
    except ValueError:
        return False


def choose_model(key: str, label: str, default: str | None = None):
    """The current model or a trained classification run: (model, spec, source) or None after a message."""
    from core.ml.checkpoint import CheckpointError
    from core.runs.trained import trained_runs
    from pages.ui.model_state import current_spec
    from pages.ui.state import lab_store

    runs = trained_runs(lab_store(), task="classification")
    names = {r["id"]: f"{r['name'] or r['id']} · {r['status']}" for r in runs}
    options = ["current", *names]
    if default not in options:
        default = options[1] if len(options) > 1 else "current"
    # A link to a run that exists but has no checkpoint yet (queued, or before its first epoch) says so.
    notice = f"{key}__no_checkpoint"
    if key not in st.session_state:
        wanted = st.query_params.get(key)
        st.session_state.pop(notice, None)
        if wanted is not None and wanted not in options and _stored_run(wanted):
            st.session_state[notice] = str(wanted)[:80]
    waiting = st.session_state.get(notice)
    source = url_choice(st.selectbox, label, options, key, default,
                        lambda o: tr("predict.current") if o == "current" else names.get(o, o),
                        keep_default=True, stale=None if waiting else "predict.unknown_run")
    if waiting and source == default:
        st.info(tr("explain.no_checkpoint", run=Code(waiting)))
    elif waiting:  # the user picked another model: the notice has done its work
        del st.session_state[notice]
    if source == "current":
        spec = current_spec()
        model = _current_model(spec.to_json())
        st.caption(tr("explain.untrained"))
    else:
        try:
            model, spec, info = run_model(source)
        except CheckpointError as exc:
            st.error(tr_error(exc))
            return None
        st.caption(tr("predict.loaded", file=info["file"], epoch=info["epoch"]))
    if tuple(spec.input_shape) != (1, 28, 28):
        st.error(tr("predict.wrong_model", shape=list(spec.input_shape)))
        return None
    return model, spec, source


@st.cache_resource(show_spinner=False)
def _bundled():
    from core.ml.data import load_bundled

    return load_bundled()


@dataclass
class Digit:
    tensor: torch.Tensor  # (1, 1, 28, 28), normalized as MNIST
    image: np.ndarray  # (28, 28) in [0, 1]
    label: int | None  # a test digit's true class


def test_digit(index: int) -> Digit:
    from core.ml.data import MNIST_MEAN, MNIST_STD

    data = _bundled()
    image = data.test_images[index].float().numpy() / 255.0
    tensor = torch.from_numpy((image - MNIST_MEAN) / MNIST_STD).float().view(1, 1, 28, 28)
    return Digit(tensor, image, int(data.test_labels[index]))


def read_digit(prefix: str) -> Digit | None:
    """A test digit (its index in the URL) or a drawn one, prepared the MNIST way; None before one is drawn."""
    from core.ml.predict import ImageError, load_image, preprocess

    mode = url_choice(st.segmented_control, tr("explain.input"), ["test", "draw"], f"{prefix}_input", "test",
                      lambda m: tr(f"explain.input.{m}"), required=True)
    if mode == "test":
        count = len(_bundled().test_images)
        index = st.number_input(tr("explain.test_index", last=count - 1), 0, count - 1, 0, key=f"{prefix}_digit",
                                bind="query-params")
        digit = test_digit(int(index))
        st.image(_upscale(digit.image, 6), caption=tr("explain.test_label", label=digit.label))
        return digit
    from streamlit_drawable_canvas import st_canvas

    canvas = st_canvas(stroke_width=14, stroke_color="#FFFFFF", background_color="#000000", height=196, width=196,
                       drawing_mode="freedraw", key=f"{prefix}_canvas", return_image_data=True)
    st.caption(tr("predict.draw_hint"))
    try:
        grey = load_image(canvas.image_bytes) if canvas.image_bytes else None
    except (ImageError, ValueError) as exc:
        st.error(tr("predict.bad_image", reason=exc))
        return None
    if grey is None:
        return None
    prepared = preprocess(grey)
    if prepared.empty:
        return None
    st.image(_upscale(prepared.image, 4), caption=tr("predict.seen"))
    return Digit(prepared.tensor, prepared.image, None)


# --------------------------------------------------------------------------- pictures
def _upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """A grey [0, 1] image as uint8, each pixel a factor × factor block (crisp in the browser)."""
    big = np.kron(np.clip(image, 0, 1), np.ones((factor, factor), np.float32))
    return (big * 255).round().astype(np.uint8)


def _unit(values: np.ndarray) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    return (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)


def mosaic(values: np.ndarray, tile: int = 48, cols: int = 16) -> np.ndarray:
    """An activation as one grey picture: (C, H, W) channels tiled (each scaled to [0, 1], a black gap
    between), or a vector / matrix as a strip."""
    if values.ndim == 3:
        chans = values[:MAX_OVERVIEW_CHANNELS]
        c, h, w = chans.shape
        factor = max(1, tile // max(h, w))
        cols = min(cols, c)
        rows = -(-c // cols)
        gap = 2
        out = np.zeros((rows * (h * factor + gap), cols * (w * factor + gap)), np.uint8)
        for i, chan in enumerate(chans):
            r, k = divmod(i, cols)
            top, left = r * (h * factor + gap), k * (w * factor + gap)
            out[top:top + h * factor, left:left + w * factor] = _upscale(_unit(chan), factor)
        return out
    flat = values.reshape(-1) if values.ndim != 2 else values
    if flat.ndim == 1:
        width = min(64, len(flat))
        flat = np.pad(flat, (0, -len(flat) % width)).reshape(-1, width)
    factor = max(2, min(12, 768 // max(1, flat.shape[1])))
    return _upscale(_unit(flat), factor)


def _framed(image: np.ndarray, factor: int, boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    """A [0, 1] map upscaled to RGB with red boxes (top, left, bottom, right in map pixels; may overhang)."""
    grey = _upscale(image, factor)
    rgb = np.stack([grey] * 3, axis=-1)
    h, w = grey.shape
    for top, left, bottom, right in boxes:
        t, lft = max(0, top * factor), max(0, left * factor)
        b, rgt = min(h, bottom * factor) - 1, min(w, right * factor) - 1
        for y in (t, b):
            rgb[y, lft:rgt + 1] = (255, 60, 60)
        for x in (lft, rgt):
            rgb[t:b + 1, x] = (255, 60, 60)
    return rgb


# --------------------------------------------------------------------------- overview
def prediction_line(logits: torch.Tensor, label: int | None) -> str:
    probs = torch.softmax(logits[0], dim=0)
    guess = int(probs.argmax())
    text = tr("explain.prediction", digit=guess, p=100 * float(probs[guess]))
    return text + (" · " + tr("explain.test_label", label=label) if label is not None else "")


def overview(model: nn.Module, x: torch.Tensor, label: int | None = None, tile: int = 44) -> None:
    """Every layer's output for the digit, one picture a layer (the first 32 channels of a feature map)."""
    acts, logits = activations(model, x)
    st.markdown(f"**{prediction_line(logits, label)}**")
    st.caption(tr("explain.overview_help", n=MAX_OVERVIEW_CHANNELS))
    for act in acts:
        shown = min(act.shape[0], MAX_OVERVIEW_CHANNELS) if len(act.shape) == 3 else None
        extra = tr("explain.first_channels", n=shown) if shown is not None and shown < act.shape[0] else ""
        st.markdown(f"`{act.name}` {act.kind} · {' × '.join(map(str, act.shape))} {extra}")
        st.image(mosaic(act.values, tile=tile))


# --------------------------------------------------------------------------- convolution stepper
def _step_to(key: str, value: int) -> None:
    st.session_state[key] = value


def _grid(values: np.ndarray) -> str:
    """A small matrix as a Markdown table of numbers."""
    head = "| " + " | ".join(" " for _ in range(values.shape[1])) + " |"
    rule = "|" + "---:|" * values.shape[1]
    rows = ["| " + " | ".join(f"{v:.3f}" for v in row) + " |" for row in values]
    return "\n".join([head, rule, *rows])


def channel_picker(peaks: np.ndarray, key: str) -> int | None:
    """The layer's output channels as a grid of squares (colour: each one's strongest activation for this
    digit); a click on one returns its number, once (a later rerun keeps the number box's own choice)."""
    import plotly.graph_objects as go

    cols = min(32, len(peaks))
    index = np.arange(len(peaks))
    fig = go.Figure(go.Scatter(
        x=index % cols, y=index // cols, mode="markers", customdata=index,
        marker=dict(symbol="square", size=16, color=peaks, colorscale="Viridis", line=dict(width=0)),
        text=[tr("explain.channel_hover", n=int(i)) for i in index], hovertemplate="%{text}<extra></extra>"))
    fig.update_layout(height=40 + 22 * (-(-len(peaks) // cols)), margin=dict(l=0, r=0, t=4, b=4),
                      xaxis=dict(visible=False, range=[-0.6, cols - 0.4]),
                      yaxis=dict(visible=False, autorange="reversed"), clickmode="event+select", dragmode=False)
    st.caption(tr("explain.channel_click"))
    event = st.plotly_chart(fig, key=key, on_select="rerun", selection_mode="points",
                            config={"displayModeBar": False})
    points = getattr(getattr(event, "selection", None), "points", None) or []
    picked = int(points[0]["customdata"]) if points and points[0].get("customdata") is not None else None
    seen = f"{key}_seen"
    if picked == st.session_state.get(seen):
        return None
    st.session_state[seen] = picked
    return picked


def conv_stepper(model: nn.Module, x: torch.Tensor) -> None:
    """Pick a Conv2d layer and an output channel, then step the kernel over the input one position at a time."""
    modules = dict(model.named_modules())
    convs = conv_layers(model)
    c = st.columns([2, 1])
    layer = url_choice(c[0].selectbox, tr("explain.layer"), convs, "xp_layer", convs[0],
                       lambda n: f"{n} · {modules[n]}")
    conv = modules[layer]
    channel_key = f"xp_channel_{layer}"
    probe = conv_step(model, x, layer, 0, 0, 0)
    clicked = channel_picker(probe.channel_peaks, f"xp_chpick_{layer}")
    if clicked is not None:
        st.session_state[channel_key] = clicked  # before the number box is drawn: it shows the click
    channel = int(c[1].number_input(tr("explain.channel", last=conv.out_channels - 1), 0, conv.out_channels - 1, 0,
                                    key=channel_key))
    if channel:
        probe = conv_step(model, x, layer, channel, 0, 0)
    count = probe.out_h * probe.out_w
    key = f"xp_pos_{layer}"
    if not isinstance(st.session_state.get(key), int) or not 0 <= st.session_state[key] < count:
        st.session_state[key] = 0
    now = st.session_state[key]
    b = st.columns([1, 1, 4])
    b[0].button(tr("explain.prev"), key="xp_prev", on_click=_step_to, args=(key, max(0, now - 1)),
                disabled=now == 0, width="stretch")
    b[1].button(tr("explain.next"), key="xp_next", on_click=_step_to, args=(key, min(count - 1, now + 1)),
                disabled=now == count - 1, width="stretch", type="primary")
    position = b[2].slider(tr("explain.position", last=count - 1), 0, count - 1, key=key, label_visibility="collapsed")
    row, col = divmod(int(position), probe.out_w)
    step = conv_step(model, x, layer, channel, row, col) if (row, col) != (0, 0) else probe
    first, last = step.in_channels
    st.markdown(tr("explain.step_where", row=row, col=col, h=step.out_h, w=step.out_w, channel=channel,
                   first=first, last=last - 1))
    pics = st.columns(3)
    in_factor = max(2, 196 // max(step.input_map.shape))
    pics[0].image(_framed(_unit(step.input_map), in_factor, [step.box]),
                  caption=tr("explain.pic_input", channel=first))
    k = step.kernel[0]
    pics[1].image(_upscale(_unit(k), max(8, 120 // max(k.shape))), caption=tr("explain.pic_kernel", channel=first))
    out_factor = max(2, 196 // max(step.output_map.shape))
    pics[2].image(_framed(_unit(step.output_map), out_factor, [(row, col, row + 1, col + 1)]),
                  caption=tr("explain.pic_output", channel=channel))
    products = step.products
    if len(products) == 1:
        st.markdown(tr("explain.patch_times_kernel"))
        cells = [[f"{p:.2f}×{w:.2f}" for p, w in zip(prow, wrow, strict=True)]
                 for prow, wrow in zip(step.patch[0], step.kernel[0], strict=True)]
        st.markdown("\n".join(["| " + " | ".join(" " for _ in cells[0]) + " |", "|" + "---:|" * len(cells[0]),
                               *("| " + " | ".join(row_cells) + " |" for row_cells in cells)]))
    else:
        sums = products.reshape(len(products), -1).sum(axis=1)
        shown = min(8, len(sums))
        st.markdown(tr("explain.per_channel", n=len(sums), shown=shown))
        st.markdown("| " + " | ".join(f"{first + i}" for i in range(shown)) + " | … |\n|" + "---:|" * (shown + 1)
                    + "\n| " + " | ".join(f"{s:.3f}" for s in sums[:shown]) + " | " +
                    (f"{sums[shown:].sum():.3f}" if len(sums) > shown else "0") + " |")
        with st.expander(tr("explain.first_channel_terms", channel=first)):
            st.markdown(tr("explain.patch"))
            st.markdown(_grid(step.patch[0]))
            st.markdown(tr("explain.kernel"))
            st.markdown(_grid(step.kernel[0]))
    dot = step.value - step.bias
    st.markdown(tr("explain.dot", terms=products.size, dot=dot, bias=step.bias, value=step.value,
                   model=step.model_value))
    if step.after:
        chain = " → ".join(tr("explain.after_item", layer=Code(name), kind=kind, value=value)
                           for name, kind, value in step.after)
        st.markdown(tr("explain.after") + " " + chain)
    else:
        st.caption(tr("explain.no_after"))


# --------------------------------------------------------------------------- two models side by side
def compare(model: nn.Module, source: str, digit: Digit) -> None:
    """The same digit through a second model (another run, or the current model) next to the first."""
    from core.runs.trained import trained_runs
    from pages.ui.state import lab_store

    runs = trained_runs(lab_store(), task="classification")
    titles = {r["id"]: r["name"] or r["id"] for r in runs}
    others = [r["id"] for r in runs if r["id"] != source]
    other = choose_model("xp_other", tr("explain.other"), default=others[0] if others else "current")
    if other is None:
        return
    if other[2] == source:
        st.info(tr("explain.compare_same"))
    method, layer = method_picker("xp", model)
    cols = st.columns(2)
    for col, (m, name, src) in zip(cols, [(model, "A", source), (other[0], "B", other[2])], strict=True):
        with col:
            st.markdown(f"**{name}** · " + (tr("predict.current") if src == "current" else plain(titles.get(src, src))))
            cam = layer if layer in conv_layers(m) else None
            attribution_chart(m, digit.tensor, method, cam, height=220)
            overview(m, digit.tensor, digit.label, tile=28)


# --------------------------------------------------------------------------- the map over training
@st.cache_resource(max_entries=2, show_spinner=False)
def _dataset(name: str):
    from core.ml.data import load_dataset
    from core.settings import load_settings

    return load_dataset(name, load_settings())


def representation_map(source: str, model: nn.Module, digit: Digit | None) -> None:
    """The run's test digits' penultimate features on a 2-D PCA map, one frame per epoch (a slider),
    coloured by class; a selected point shows its digit, prediction and attribution; the digit lands on
    the last frame."""
    import plotly.graph_objects as go

    from core.errors import LabError
    from core.ml.checkpoint import CheckpointError
    from core.ml.explain import penultimate_and_logits, project
    from core.runs.representation import load_representation
    from core.runs.store import StoreError
    from pages.ui.state import lab_store

    if source == "current":
        st.info(tr("explain.map_needs_run"))
        return
    try:
        found = load_representation(lab_store(), source)
    except StoreError as exc:
        st.error(tr_error(exc))
        return
    if found is None:
        st.info(tr("explain.map_empty"))
        return
    epochs, coords, labels, preds = found["epochs"], found["coords"], found["labels"], found["preds"]
    drawn = None
    if digit is not None:
        try:
            last_model = run_model(source, "last")[0]
            feats, _ = penultimate_and_logits(last_model, digit.tensor)
            drawn = project(feats, found["means"][-1], found["components"][-1])[0]
        except (CheckpointError, LabError):
            drawn = None
    classes = sorted({int(v) for v in labels})
    palette = px.colors.qualitative.D3 if len(classes) <= 10 else px.colors.qualitative.Alphabet

    def traces(e: int) -> list:
        out = []
        for i, c in enumerate(classes):
            mask = labels == c
            out.append(go.Scattergl(x=coords[e][mask, 0], y=coords[e][mask, 1], mode="markers", name=str(c),
                                    customdata=np.flatnonzero(mask),
                                    marker=dict(size=6, color=palette[i % len(palette)]),
                                    hovertemplate=f"{tr('explain.map_class')} {c}<extra></extra>"))
        last = e == len(epochs) - 1 and drawn is not None
        out.append(go.Scattergl(x=[drawn[0]] if last else [], y=[drawn[1]] if last else [], mode="markers",
                                name=tr("explain.map_yours"), hoverinfo="skip",
                                marker=dict(size=18, symbol="star", color="black", line=dict(color="white", width=1))))
        return out

    final = len(epochs) - 1
    lo, hi = coords[..., 0].min(), coords[..., 0].max()
    lo_y, hi_y = coords[..., 1].min(), coords[..., 1].max()
    fig = go.Figure(data=traces(final),
                    frames=[go.Frame(data=traces(e), name=str(int(ep))) for e, ep in enumerate(epochs)])
    fig.update_layout(
        height=520, margin=dict(l=0, r=0, t=10, b=0), legend_title_text=tr("explain.map_class"),
        xaxis=dict(range=[lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)], title="PC 1"),
        yaxis=dict(range=[lo_y - 0.05 * (hi_y - lo_y), hi_y + 0.05 * (hi_y - lo_y)], title="PC 2"),
        sliders=[dict(active=final, currentvalue=dict(prefix=tr("explain.map_epoch") + " "), pad=dict(t=40),
                      steps=[dict(method="animate", label=str(int(ep)),
                                  args=[[str(int(ep))], dict(mode="immediate", frame=dict(duration=0, redraw=True),
                                                             transition=dict(duration=0))])
                             for ep in epochs])])
    st.caption(tr("explain.map_help", n=len(labels), epochs=len(epochs),
                  share=100 * float(found["explained"][-1].sum())))
    event = st.plotly_chart(fig, key="xp_map", on_select="rerun", selection_mode="points")
    points = (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) else \
        getattr(getattr(event, "selection", None), "points", [])
    if points and points[0].get("customdata") is not None:
        picked = points[0]["customdata"]
        st.session_state["xp_map_point"] = int(picked[0] if isinstance(picked, list) else picked)
    if drawn is None and digit is not None:
        st.caption(tr("explain.map_no_drawn"))
    point = st.session_state.get("xp_map_point")
    if not isinstance(point, int) or not 0 <= point < len(labels):
        st.caption(tr("explain.map_pick"))
        return
    index = int(found["indices"][point])
    from core.runs.trained import trained_runs

    run = next((r for r in trained_runs(lab_store()) if r["id"] == source), None)
    name = str((run or {}).get("config", {}).get("dataset", "digits8k"))
    try:
        data = _dataset(name)
    except LabError as exc:
        st.error(tr_error(exc))
        return
    from core.ml.data import MNIST_MEAN, MNIST_STD

    image = data.test_images[index].float().numpy() / 255.0
    tensor = torch.from_numpy((image - MNIST_MEAN) / MNIST_STD).float().view(1, 1, 28, 28)
    c = st.columns([1, 2])
    c[0].image(_upscale(image, 5), caption=tr("explain.map_point", index=index, label=int(labels[point]),
                                             pred=int(preds[-1][point]), epoch=int(epochs[-1])))
    with c[1]:
        st.markdown(tr("explain.map_point_attr"))
        attribution_chart(model, tensor, DEFAULT_METHOD, None, height=200)
