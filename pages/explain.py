"""Explain: look inside the learner's own model (the current one or a trained run's) on one digit:
every layer's activations, one convolution step's dot product, attributions, two models side by side,
and the penultimate features' map over training."""
import streamlit as st

from core.ml.explain import conv_layers
from pages.ui import explain_views as V
from pages.ui.frame import frame
from pages.ui.text import tr
from pages.ui.widgets import url_choice

frame()

VIEWS = ["overview", "step", "attribution", "compare", "map"]

st.title(tr("explain.title"))
st.write(tr("explain.intro"))
chosen = V.choose_model("xp_model", tr("explain.model"))
if chosen is not None:
    model, spec, source = chosen
    left, right = st.columns([1, 3])
    with left:
        digit = V.read_digit("xp")
    with right:
        view = url_choice(st.segmented_control, tr("explain.view"), VIEWS, "xp_view", "overview",
                          lambda v: tr(f"explain.view.{v}"), required=True)
        if view == "map":
            V.representation_map(source, model, digit)
        elif digit is None:
            st.info(tr("predict.waiting"))
        elif view == "overview":
            V.overview(model, digit.tensor)
        elif view == "step":
            if conv_layers(model):
                V.conv_stepper(model, digit.tensor)
            else:
                st.info(tr("explain.no_conv_step"))
        elif view == "attribution":
            method, layer = V.method_picker("xp", model)
            V.attribution_view(model, digit.tensor, method, layer)
        else:
            V.compare(model, source, digit)
