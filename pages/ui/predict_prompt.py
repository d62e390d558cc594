"""Predict, then reveal: a small widget that asks for a prediction before the result shows, then shows
PyTorch's result next to it, the gap and a one-line explanation. Usable on any page and inside a lesson;
a prediction is kept in the learner's progress when the learner has given a name.

    predict_prompt("tensors_broadcast", key="ten_pp")              # a prompt of core/lessons/prompts.toml
    predict_prompt(step.predict, key=..., lesson=lesson.id)         # a lesson step's own prompt
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import streamlit as st

from core.errors import LabError, code_span
from core.runs.progress import LAB
from pages.ui import learner
from pages.ui.state import lab_store
from pages.ui.text import lang, tr, tr_error

if TYPE_CHECKING:  # the lesson engine is imported when a prompt is shown, not with every page
    from core.lessons.prompts import Reveal
    from core.lessons.schema import Prompt


def clicked(target: Any, label: str, key: str, **kwargs: Any) -> bool:
    """A button (on ``target``: ``st`` or a column) that reports its click through a flag set by its
    callback, so the click counts in the run it starts whatever else reruns the script."""
    flag = f"{key}__clicked"
    target.button(label, key=key, on_click=st.session_state.__setitem__, args=(flag, True), **kwargs)
    return bool(st.session_state.pop(flag, False))


def _record(prompt: Prompt, lesson: str, prediction: Any, result: Reveal) -> None:
    from core.runs import progress

    name = learner.current()
    if name:
        progress.record(lab_store(), name, lesson, prompt.id, "prediction", prediction, result.correct)


def _input(prompt: Prompt, key: str, disabled: bool) -> Any:
    from core.lessons.prompts import option_label

    if prompt.answer == "choice":
        labels = {o.id: option_label(prompt, o.id, lang()) for o in prompt.options}
        return st.radio(tr("pp.your_choice"), list(labels), index=None, key=key, disabled=disabled,
                        format_func=labels.__getitem__)
    label = tr("pp.your_number" if prompt.answer == "number" else "pp.your_shape")
    return st.text_input(label, key=key, disabled=disabled, max_chars=200,
                         placeholder=tr("pp.number_hint" if prompt.answer == "number" else "pp.shape_hint"))


def show_reveal(result: Reveal) -> None:
    """The prediction next to the real result, the gap and the explanation."""
    cols = st.columns(3)
    shown = (lambda t: t) if result.gap is None else code_span  # a choice's options are lab-written Markdown
    cols[0].markdown(f"**{tr('pp.yours')}**  \n{shown(result.predicted)}")
    cols[1].markdown(f"**{tr('pp.actual')}**  \n{shown(result.actual)}")
    if result.gap is not None:
        cols[2].markdown(f"**{tr('pp.gap')}**  \n{code_span(result.gap)}")
    (st.success if result.correct else st.warning)(tr("pp.right" if result.correct else "pp.off"))
    st.markdown(result.explain)
    if result.chart:
        import pandas as pd

        st.line_chart(pd.DataFrame(result.chart), x_label=tr("pp.chart_x"), y_label=tr("pp.chart_y"))


def predict_prompt(prompt: Prompt | str, *, key: str, lesson: str = LAB,
                   overrides: dict[str, Any] | None = None, boxed: bool = True) -> Reveal | None:
    """Ask ``prompt``'s question; after the learner commits, reveal PyTorch's result (returned)."""
    from core.lessons.prompts import page_prompt, question, reveal

    if isinstance(prompt, str):
        prompt = page_prompt(prompt)
    done_key, error_key = f"{key}__reveal", f"{key}__error"
    box = st.container(border=True) if boxed else st.container()
    with box:
        st.markdown(f":material/psychology: **{tr('pp.title')}**")
        try:
            st.markdown(question(prompt, lang(), overrides))
        except LabError as exc:
            st.error(tr_error(exc))
            return None
        result: Reveal | None = st.session_state.get(done_key)
        value = _input(prompt, f"{key}__in", disabled=result is not None)
        if result is None:
            if clicked(st, tr("pp.commit"), f"{key}__go", type="primary"):
                try:
                    if value in (None, ""):
                        raise LabError("lessons.empty_answer")
                    result = reveal(prompt, value, lang(), overrides)
                except LabError as exc:
                    st.session_state[error_key] = exc
                else:
                    st.session_state.pop(error_key, None)
                    st.session_state[done_key] = result
                    _record(prompt, lesson, value, result)
            if error_key in st.session_state:
                st.error(tr_error(st.session_state[error_key]))
            if result is None:
                if not learner.current():
                    st.caption(tr("pp.anonymous"))
                return None
        show_reveal(result)
        if clicked(st, tr("pp.again"), f"{key}__again"):
            st.session_state.pop(done_key, None)
            st.session_state.pop(f"{key}__in", None)
            st.rerun()
    return result


def page_prompt_box(prompt_id: str, key: str, overrides: dict[str, Any] | None = None) -> None:
    """A page's prompt in a collapsed expander (the page's own view is unchanged), the learner kept in the URL.

    The prompt is built only while the expander is open (its state is tracked under ``<key>__open``), so a
    page that nobody predicts on pays nothing for it, neither the lesson engine's import nor its probes.
    """
    learner.keep_in_url()
    box = st.expander(tr("pp.expander"), icon=":material/psychology:", key=f"{key}__open", on_change="rerun")
    if box.open:
        with box:
            predict_prompt(prompt_id, key=key, overrides=overrides, boxed=False)
