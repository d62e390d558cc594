"""The lab's current model (a ``ModelSpec`` in session state) and the Builder's layer editor widgets."""
from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from core.errors import LabError
from core.lessons.builder import EDITABLE_TYPES, add_layer, move_layer, parse_input_shape, remove_layer
from core.ml.codegen import function_call
from core.ml.modules import checked_spec
from core.ml.spec import FUNCTIONAL_TYPES, ModelSpec, arg_info
from core.ml.zoo import DEFAULT_PRESET, PRESETS, preset_spec
from pages.ui.text import tr

SPEC_KEY = "current_spec"


def current_spec() -> ModelSpec:
    """The model the Builder built; Train, Profiler and Export use the same one."""
    if SPEC_KEY not in st.session_state:
        st.session_state[SPEC_KEY] = preset_spec(DEFAULT_PRESET)
    return st.session_state[SPEC_KEY]


def set_spec(edited: Callable[[], ModelSpec]) -> bool:
    """Make the spec ``edited()`` makes the current model if it is valid and passes checked_spec
    (caps); else keep the old one, remember why, and return False."""
    try:
        spec = checked_spec(edited())
    except LabError as exc:  # e.g. a 201st layer, or removing a pooling layer makes activations huge
        st.session_state["bld_error"] = exc  # the exception: the page renders it in its language
        return False
    st.session_state[SPEC_KEY] = spec
    st.session_state.pop("bld_error", None)
    # New argument widgets for the new stack: the browser keeps values per key, so reusing a
    # key would carry an old layer's value into the new one. The old keys belong to widgets
    # this run no longer draws, so dropping their state cannot send a stale value back.
    st.session_state["bld_ver"] = st.session_state.get("bld_ver", 0) + 1
    for key in [k for k in st.session_state if str(k).startswith("bld_arg_")]:
        del st.session_state[key]
    return True


def follow_spec(spec: ModelSpec) -> None:
    """Show the current model in the widgets that display it: the input shape box, the JSON box
    and the Preset box. Called before they render, whenever the model is not the one they show.

    Their values are set through their keys, which is what moves the browser's value too. (Deleting
    a key instead leaves the browser showing, and on the next interaction sending back, the old
    value: a 1x28x28 input shape on a model loaded for 5x10 inputs.) A text the user typed that was
    refused stays, since it did not change the model.
    """
    keys = ("bld_shape", "bld_json", "bld_preset")
    # Streamlit drops a widget's state when a run does not draw it (another page was open): then refill it.
    if st.session_state.get("bld_shown") == spec and all(key in st.session_state for key in keys):
        return
    st.session_state["bld_shape"] = ", ".join(map(str, spec.input_shape))
    st.session_state["bld_json"] = spec.to_json()
    preset = next((key for key, p in PRESETS.items() if p.spec == spec), None)
    if preset is not None:
        st.session_state["bld_preset"] = preset
    elif st.session_state.get("bld_preset") not in PRESETS:
        st.session_state["bld_preset"] = DEFAULT_PRESET
    st.session_state["bld_shown"] = spec


def _parse_ints(text: str):
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if parts and all(p.lstrip("-").isdigit() and len(p) < 7 for p in parts):
        return [int(p) for p in parts] if len(parts) > 1 else int(parts[0])
    return text  # refused by the spec's validation with a message naming the argument


def _of_this_stack(version: int, key: str) -> bool:
    """Whether an argument widget's callback belongs to the current stack. A click that loads another
    model can arrive with a value of the old stack's widgets: Streamlit then calls their callbacks after
    the click's own, when their keys are gone and index ``i`` names another model's layer."""
    return version == st.session_state.get("bld_ver", 0) and key in st.session_state


def _on_functional_change(version: int, index: int, key: str) -> None:
    if not _of_this_stack(version, key):
        return
    spec = current_spec()
    layer = spec.layers[index].to_dict()
    layer["functional"] = bool(st.session_state[key])
    if layer["functional"]:
        layer.pop("name", None)  # a call in forward has no attribute, so no name
    layers = [*spec.layers[:index], layer, *spec.layers[index + 1:]]
    _apply(lambda: spec.edit(layers=layers))


def _on_arg_change(version: int, index: int, name: str, key: str, is_text: bool) -> None:
    if not _of_this_stack(version, key):
        return
    spec = current_spec()
    layer = spec.layers[index].to_dict()
    value = st.session_state[key]
    layer["args"] = {**layer["args"], name: _parse_ints(value) if is_text else value}
    layers = [*spec.layers[:index], layer, *spec.layers[index + 1:]]
    _apply(lambda: spec.edit(layers=layers))


def _apply(edited: Callable[[], ModelSpec]) -> None:
    """Make the spec ``edited()`` makes the current one, or keep the old one and remember the refusal."""
    try:
        st.session_state[SPEC_KEY] = checked_spec(edited())
        st.session_state.pop("bld_error", None)
    except LabError as exc:  # a SpecError, or the Builder's own (a shape typed as text)
        st.session_state["bld_error"] = exc


def layer_editor(spec: ModelSpec, index: int) -> None:
    """Argument widgets for one top-level layer; each change updates the current spec."""
    layer = spec.layers[index]
    kind = layer.type
    if kind == "Sequential":
        st.info(tr("builder.sequential_json"))
        return
    version = st.session_state.get("bld_ver", 0)
    if kind in FUNCTIONAL_TYPES:
        key = f"bld_arg_{version}_{index}_{kind}_functional"
        st.checkbox(tr("builder.functional"), value=layer.functional, key=key, help=tr("builder.functional_help"),
                    on_change=_on_functional_change, args=(version, index, key))
    schema = arg_info(kind)
    if not schema:
        st.caption(tr("builder.no_args", kind=kind))
        return
    given = layer.args.model_dump(mode="json")
    cols = st.columns(min(4, len(schema)))
    for i, (name, arg) in enumerate(schema.items()):
        value = given.get(name, arg.default)
        key = f"bld_arg_{version}_{index}_{kind}_{name}"
        is_text = arg.kind == "ints" and (isinstance(value, list) or value is None)
        common = dict(key=key, on_change=_on_arg_change, args=(version, index, name, key, is_text))
        with cols[i % len(cols)]:
            if arg.kind == "bool":
                st.checkbox(name, value=bool(value), **common)
            elif arg.kind == "choice":
                labels = {v: tr(f"builder.choice.{v}") for v in arg.choices}
                st.selectbox(name, list(arg.choices), index=list(arg.choices).index(value),
                             format_func=labels.__getitem__, **common)
            elif arg.kind == "float":
                st.number_input(name, min_value=float(arg.lo), max_value=float(arg.hi), value=float(value),
                                step=0.05, **common)
            elif is_text:
                shown = "" if value is None else ", ".join(map(str, value))
                st.text_input(name, value=shown, help=tr("builder.ints_help"), **common)
            else:
                st.number_input(name, min_value=int(arg.lo), max_value=int(arg.hi), value=int(value), step=1,
                                **common)


def _select(index: int) -> None:
    # Setting the widget's own key is what moves the browser's selection too.
    st.session_state["bld_sel"] = index


def _add(kind_key: str, position) -> None:
    spec = current_spec()
    if set_spec(lambda: add_layer(spec, st.session_state[kind_key], position)):
        _select(len(spec.layers) if position is None else position)


def _move(index: int, offset: int) -> None:
    if set_spec(lambda: move_layer(current_spec(), index, offset)):
        _select(index + offset)


def _remove(index: int) -> None:
    if set_spec(lambda: remove_layer(current_spec(), index)):
        _select(max(0, index - 1))


def layer_choice(spec: ModelSpec) -> int | None:
    """The 'layer to edit' selectbox; its value survives reruns and follows add/move/remove."""
    n = len(spec.layers)
    if not n:
        return None
    if not isinstance(st.session_state.get("bld_sel"), int) or not 0 <= st.session_state["bld_sel"] < n:
        st.session_state["bld_sel"] = n - 1 if st.session_state.get("bld_sel", 0) else 0
    return st.selectbox(tr("builder.edit"), range(n), key="bld_sel",
                        format_func=lambda i: f"{i}: " + (function_call(spec.layers[i]) if spec.layers[i].functional
                                                          else " ".join(filter(None, (spec.layers[i].name,
                                                                                      spec.layers[i].type)))))


def stack_controls(spec: ModelSpec, index: int | None) -> None:
    """Add / move / remove buttons under the layer list."""
    cols = st.columns([2, 1, 1, 1, 1])
    cols[0].selectbox(tr("builder.add_type"), EDITABLE_TYPES, key="bld_add_type", label_visibility="collapsed")
    position = None if index is None else index + 1
    cols[1].button(tr("builder.add"), key="bld_add", width="stretch", type="primary", on_click=_add,
                   args=("bld_add_type", position))
    last = len(spec.layers) - 1
    cols[2].button(tr("builder.up"), key="bld_up", width="stretch", disabled=index is None or index == 0,
                   on_click=_move, args=(index, -1))
    cols[3].button(tr("builder.down"), key="bld_down", width="stretch", disabled=index is None or index == last,
                   on_click=_move, args=(index, 1))
    cols[4].button(tr("builder.remove"), key="bld_remove", width="stretch", disabled=index is None,
                   on_click=_remove, args=(index,))


def load_spec(spec: ModelSpec) -> None:
    if set_spec(lambda: spec):
        _select(0)


def apply_json(key: str) -> None:
    if set_spec(lambda: ModelSpec.from_json(st.session_state[key])):
        _select(0)


def set_input_shape(key: str) -> None:
    _apply(lambda: current_spec().edit(input_shape=parse_input_shape(st.session_state[key])))


def pick_model(key: str):
    """'current model' or a trained run: returns (model, spec, name) or None after an error message."""
    from core.ml.checkpoint import CheckpointError
    from core.ml.modules import build_model
    from core.runs.trained import load_run_model, trained_runs
    from pages.ui.state import lab_store
    from pages.ui.widgets import url_choice

    runs = trained_runs(lab_store())
    names = {r["id"]: f"{r['name'] or r['id']} · {r['status']}" for r in runs}
    source = url_choice(st.selectbox, tr("tools.model"), ["current", *list(names)], key, "current",
                        lambda o: tr("predict.current") if o == "current" else names.get(o, o),
                        stale="predict.unknown_run")  # e.g. ?ex_model=../../etc/passwd is said to be ignored
    if source == "current":
        spec = current_spec()
        return build_model(spec, seed=0).eval(), spec, spec.name
    try:
        model, spec, _ = load_run_model(lab_store(), source)
    except CheckpointError as exc:
        st.error(tr("error.bad_value", reason=exc))
        return None
    return model, spec, f"{spec.name}_{source}"
