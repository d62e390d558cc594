"""The Lessons page's pieces: the learner's name, a step with its lab link, an exercise with its input
widget, Check, hints one at a time and the worked solution, and the teacher's view."""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from core.errors import Code, LabError
from core.lessons.checks import Result, answer_text, check
from core.lessons.course import answer_display, hints, lab_target, parsons_lines, solution_ready, solution_text
from core.lessons.schema import LabLink, Lesson, Step
from core.ml.spec import ModelSpec
from core.runs import progress
from pages.ui import learner
from pages.ui.frame import PAGES
from pages.ui.model_state import current_spec
from pages.ui.predict_prompt import clicked
from pages.ui.state import lab_store
from pages.ui.text import lang, tr, tr_error


# --------------------------------------------------------------------------- the learner
def learner_box() -> str | None:
    """The signed-in user, or a name field; returns the learner (None until a valid name is given)."""
    user = learner.signed_in()
    if user:
        st.caption(tr("lessons.signed_in", name=user))
        return user
    name = learner.current()
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    typed = left.text_input(tr("lessons.name"), value=name or "", key="les_name", max_chars=60,
                            placeholder=tr("lessons.name_hint"), help=tr("lessons.name_help"))
    if typed and typed != name:
        problem = learner.set_name(typed)
        if problem is not None:
            st.error(tr_error(problem))
        name = learner.current()
    if name:
        right.download_button(tr("lessons.download"), progress.learner_csv(lab_store(), name),
                              file_name=f"progress-{name}.csv", mime="text/csv", key="les_csv",
                              icon=":material/download:", width="stretch")
        learner.keep_in_url()
    return name


# --------------------------------------------------------------------------- the lab link
def lab_link(link: LabLink, key: str) -> None:
    """"Open in the lab": the right page in the step's state (its URL parameters and a share token), in
    this tab (the session keeps the model for the lesson's checks) or in a new one."""
    page, params = lab_target(link)  # this session keeps its language
    name = learner.current()
    if name and not learner.signed_in():
        params[learner.PARAM] = name
    script = next(p[2] for p in PAGES if p[3] == page)
    title = tr(next(p[1] for p in PAGES if p[3] == page))
    left, right = st.columns([1, 2], vertical_alignment="center")
    if clicked(left, tr("lessons.open_lab", page=title), key, icon=":material/science:"):
        st.session_state["share_restored"] = False  # app.py applies the token (model, Train form) on arrival
        st.switch_page(script, query_params=params)
    _, new_tab = lab_target(link, lang())
    if name and not learner.signed_in():
        new_tab[learner.PARAM] = name
    url = ("" if page == "home" else page) + ("?" + urlencode(new_tab) if new_tab else "")
    right.markdown(f"[{tr('lessons.new_tab')}]({url})")


# --------------------------------------------------------------------------- an exercise
def _vars_note(defs: dict[str, str]) -> None:
    if defs:
        st.caption(tr("lessons.vars"))
        st.code("\n".join(f"{k} = {v}" for k, v in defs.items()), language="python")


def answer_input(ex: Any, key: str) -> Any:
    """The input widget for the exercise's kind; returns the answer as the checker takes it."""
    kind = ex.kind if ex.kind != "fix" else {"choice": "choice", "expression": "expression", "model": "model"}[ex.via]
    if ex.kind == "fix":
        st.code(ex.buggy.strip("\n"), language="python")
    if kind in ("number", "shape"):
        return st.text_input(tr(f"lessons.answer.{kind}"), key=key, max_chars=300,
                             placeholder=tr(f"lessons.answer.{kind}_hint"))
    if kind == "choice":
        ids = [o.id for o in ex.options]
        labels = {o.id: o.text.get(lang()) for o in ex.options}
        return st.radio(tr("lessons.answer.choice"), ids, index=None, key=key, format_func=labels.__getitem__)
    if kind == "expression":
        _vars_note(ex.vars)
        return st.text_input(tr("lessons.answer.expression"), key=key, max_chars=500,
                             placeholder=tr("lessons.answer.expression_hint"))
    if kind == "model":
        sources = {s: tr(f"lessons.answer.model.{s}") for s in ("current", "json")}
        source = st.radio(tr("lessons.answer.model_source"), list(sources), horizontal=True, key=f"{key}_src",
                          format_func=sources.__getitem__)
        if source == "current":
            spec = current_spec()
            st.caption(tr("lessons.answer.model_current", name=spec.name, n=len(spec.layers)))
            return spec
        start = getattr(ex, "broken", None) or getattr(ex, "start", None) or getattr(ex, "reference", None)
        default = _spec(start).to_json() if start is not None else ""
        return st.text_area(tr("lessons.answer.model_json"), value=default, key=f"{key}_json", height=200)
    if kind == "parsons":
        lines = dict(parsons_lines(ex))
        picked = st.multiselect(tr("lessons.answer.parsons"), list(lines), key=key,
                                format_func=lambda i: lines[i].strip(), placeholder=tr("lessons.answer.parsons_hint"))
        if picked:
            st.code("\n".join(lines[i] for i in picked), language="python")
        return picked
    if kind == "training":
        runs = [r for r in lab_store().runs() if r["config"].get("dataset") == ex.goal.dataset]
        if not runs:
            st.info(tr("lessons.answer.no_runs", dataset=ex.goal.dataset))
            return None
        names = {r["id"]: " · ".join([r["name"] or r["id"], tr(f"status.{r['status']}"), r["id"]]) for r in runs}
        return st.selectbox(tr("lessons.answer.run"), list(names), key=key, format_func=names.__getitem__)
    raise LabError("lessons.unknown_kind", kind=ex.kind)


def _spec(model: Any) -> ModelSpec:
    from core.lessons.probes import resolve_model

    return resolve_model(model)


def _result_key(lesson: Lesson, ex: Any) -> str:
    return f"les_res_{lesson.id}_{ex.id}"


def _check(lesson: Lesson, step: Step, ex: Any, answer: Any, name: str) -> None:
    key = _result_key(lesson, ex)
    store = lab_store()
    try:
        if answer is None or (isinstance(answer, str) and not answer.strip()):
            raise LabError("lessons.empty_answer")
        result = check(ex, answer, store=store)
    except LabError as exc:
        st.session_state[key] = exc
        return
    st.session_state[key] = result
    shown = json.dumps(answer, separators=(",", ":")) if isinstance(answer, dict) else answer
    progress.record(store, name, lesson.id, ex.id, "answer", answer_text(shown), result.correct)
    if result.correct:
        progress.complete_step(store, name, lesson.id, step.id)


def _feedback(ex: Any, outcome: Result | LabError, answer: Any) -> None:
    if isinstance(outcome, LabError):
        st.error(tr("lessons.cannot_check", reason=outcome))
        return
    if outcome.correct:
        st.success(tr("lessons.right"))
    else:
        st.error(tr_error(outcome.feedback) if outcome.feedback is not None else tr("lessons.wrong"))
        option = next((o for o in getattr(ex, "options", []) if o.id == answer), None)
        if option is not None and option.why is not None:
            st.info(option.why.get(lang()))
    if outcome.got and len(outcome.got) <= 300 and ex.kind not in ("choice",) and getattr(ex, "via", "") != "choice":
        st.caption(tr("lessons.got", value=Code(outcome.got)))


def exercise_block(lesson: Lesson, step: Step, ex: Any, name: str | None) -> None:
    """The exercise: prompt, input, Check, hints one at a time, the worked solution after N tries."""
    with st.container(border=True):
        st.markdown(f":material/edit_note: **{tr('lessons.exercise')}**  \n{ex.prompt.get(lang())}")
        if name is None:
            st.info(tr("lessons.need_name"))
            return
        store = lab_store()
        state = progress.items(store, name, lesson.id).get(ex.id, progress.ItemState())
        key = f"les_in_{lesson.id}_{ex.id}"
        answer = answer_input(ex, key)
        cols = st.columns(3)
        if clicked(cols[0], tr("lessons.check"), f"{key}_check", type="primary", width="stretch"):
            _check(lesson, step, ex, answer, name)
            state = progress.items(store, name, lesson.id).get(ex.id, progress.ItemState())
        more = state.hints < len(ex.hints)
        if clicked(cols[1], tr("lessons.hint", n=min(state.hints + 1, len(ex.hints)), total=len(ex.hints)),
                   f"{key}_hint", disabled=not more, width="stretch"):
            progress.record(store, name, lesson.id, ex.id, "hint")
            state.hints += 1
        ready = state.solved or solution_ready(ex, state.wrong)
        if clicked(cols[2], tr("lessons.show_solution"), f"{key}_sol", disabled=not ready or state.solution,
                   width="stretch", help=None if ready else tr("lessons.solution_after", n=ex.tries)):
            progress.record(store, name, lesson.id, ex.id, "solution")
            state.solution = True
        outcome = st.session_state.get(_result_key(lesson, ex))
        if outcome is not None:
            _feedback(ex, outcome, answer)
        elif state.solved:
            st.success(tr("lessons.solved_before"))
        for i, text in enumerate(hints(ex, state.hints, lang()), 1):
            st.info(tr("lessons.hint_n", n=i) + " " + text)
        if state.solution:
            st.markdown(f"**{tr('lessons.solution')}**  \n{solution_text(ex, lang())}")
            _, code = answer_display(ex, lang())
            if code:
                st.code(code, language="json" if code.lstrip().startswith("{") else "python")
        st.caption(tr("lessons.tries", wrong=state.wrong, n=ex.tries) if not state.solved else tr("lessons.done"))


# --------------------------------------------------------------------------- the teacher
def _wrong_text(pairs: list[tuple[str, int]]) -> str:
    return " · ".join(f"{answer} ({n})" for answer, n in pairs)


def teacher_view(lesson: Lesson) -> None:
    store = lab_store()
    st.caption(tr("lessons.teacher.caption"))
    stats = progress.item_stats(store, lesson.id)
    by_item = {(r.item, r.kind): r for r in stats.itertuples()}
    rows = []
    for n, step in enumerate(lesson.steps, 1):
        for item, kind in ((step.predict, "prediction"), (step.exercise, "answer")):
            if item is None:
                continue
            found = by_item.get((item.id, kind))
            rows.append({tr("lessons.teacher.step"): n, tr("lessons.teacher.item"): item.id,
                         tr("lessons.teacher.kind"): tr(f"lessons.kind.{item.kind}") if kind == "answer"
                         else tr("lessons.kind.prediction"),
                         tr("lessons.teacher.tried"): found.tried if found else 0,
                         tr("lessons.teacher.right"): found.right if found else 0,
                         tr("lessons.teacher.wrong"): _wrong_text(found.wrong_answers) if found else ""})
    st.markdown(f"**{tr('lessons.teacher.items')}**")
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.markdown(f"**{tr('lessons.teacher.learners')}**")
    summary = progress.learner_summary(store, lesson.id)
    if summary.empty:
        st.info(tr("lessons.teacher.nobody"))
    else:
        total = len(lesson.steps)
        frame = pd.DataFrame({
            tr("lessons.teacher.learner"): summary["learner"],
            tr("lessons.teacher.progress"): summary["steps"] / total,
            tr("lessons.teacher.steps"): summary["steps"].map(lambda n: f"{n} / {total}"),
            tr("lessons.teacher.solved"): summary["solved"].map(lambda n: f"{n} / {len(lesson.exercises)}"),
            tr("lessons.teacher.predictions"): summary["predictions"],
            tr("lessons.teacher.last"): summary["last"],
        })
        st.dataframe(frame, hide_index=True, width="stretch", column_config={
            tr("lessons.teacher.progress"): st.column_config.ProgressColumn(min_value=0.0, max_value=1.0,
                                                                            format="percent")})
    page = progress.item_stats(store, progress.LAB)
    if not page.empty:
        st.markdown(f"**{tr('lessons.teacher.pages')}**")
        st.dataframe(pd.DataFrame({tr("lessons.teacher.item"): page["item"], tr("lessons.teacher.tried"): page["tried"],
                                   tr("lessons.teacher.right"): page["right"],
                                   tr("lessons.teacher.wrong"): page["wrong_answers"].map(_wrong_text)}),
                     hide_index=True, width="stretch")
    st.download_button(tr("lessons.teacher.download"), progress.attempts(store).to_csv(index=False),
                       file_name="lessons-progress.csv", mime="text/csv", key="les_teacher_csv",
                       icon=":material/download:")


def step_caption(lesson: Lesson, index: int) -> str:
    """A step's label: its number and title (stable, so the step choice keeps its value)."""
    return f"{index + 1}. {lesson.steps[index].title.get(lang())}"

