"""Lessons: the four tutorials as guided steps that open the lab, ask for predictions, check answers
against real PyTorch and remember the learner's progress; and a teacher's view of everyone's."""
import streamlit as st

from core.errors import LabError
from core.lessons.course import course
from core.runs import progress
from pages.ui.frame import frame
from pages.ui.lesson_views import exercise_block, lab_link, learner_box, step_caption, teacher_view
from pages.ui.predict_prompt import predict_prompt
from pages.ui.state import lab_store
from pages.ui.text import lang, tr, tr_error
from pages.ui.widgets import url_choice

frame()
st.title(tr("lessons.title"))
st.write(tr("lessons.intro"))
try:
    lessons = course()
except LabError as exc:  # a teacher's broken lesson file: say which, never a traceback
    st.error(tr_error(exc))
    st.stop()

before = st.session_state.get("learner_name")
name = learner_box()
if name != before:  # a learner just gave their name: resume where they left off
    for key in ("les_lesson", "les_step"):
        st.session_state.pop(key, None)
        if key in st.query_params:
            del st.query_params[key]
store = lab_store()

# Labels are made now, in this run's language (a format function must not read the session later).
views = {v: tr(f"lessons.view.{v}") for v in ("learn", "teacher")}
view = url_choice(st.segmented_control, tr("lessons.view"), list(views), "les_view", "learn", views.__getitem__,
                  required=True)
resume = progress.last_lesson(store, name) if name else None
titles = {x.id: f"{x.order}. {x.title.get(lang())}" for x in lessons.lessons}
lesson_id = url_choice(st.selectbox, tr("lessons.lesson"), lessons.ids, "les_lesson",
                       resume if resume in lessons.ids else lessons.ids[0], titles.__getitem__)
lesson = lessons.lesson(lesson_id)
st.caption(lesson.summary.get(lang()))

if view == "teacher":
    teacher_view(lesson)
else:
    ids = [s.id for s in lesson.steps]
    done = progress.completed_steps(store, name, lesson.id) & set(ids) if name else set()
    bar = st.empty()  # drawn last: an answer checked in this run counts at once
    saved = progress.position(store, name, lesson.id) if name else None
    captions = {s: step_caption(lesson, i) for i, s in enumerate(ids)}
    step_id = url_choice(st.selectbox, tr("lessons.step"), ids, "les_step",
                         ids[saved] if saved is not None and 0 <= saved < len(ids) else ids[0], captions.__getitem__)
    index = ids.index(step_id)
    if name and saved != index:
        progress.set_position(store, name, lesson.id, index)
    step = lesson.steps[index]

    st.subheader(("✓ " if step.id in done else "") + step_caption(lesson, index))
    st.markdown(step.text.get(lang()))
    if step.lab is not None:
        lab_link(step.lab, key=f"les_lab_{lesson.id}_{step.id}")
    if step.predict is not None:
        predict_prompt(step.predict, key=f"les_pp_{lesson.id}_{step.predict.id}", lesson=lesson.id)
    if step.exercise is not None:
        exercise_block(lesson, step, step.exercise, name)

    def go(to: int) -> None:
        if name and step.exercise is None and to > index:  # a step with nothing to answer is done when left
            progress.complete_step(lab_store(), name, lesson.id, step.id)
        st.session_state["les_step"] = ids[to]

    if name:
        done = progress.completed_steps(store, name, lesson.id) & set(ids)
    bar.progress(len(done) / len(ids), text=tr("lessons.progress", done=len(done), total=len(ids)))
    prev, _, nxt = st.columns([1, 2, 1])
    prev.button(tr("lessons.prev"), key="les_prev", disabled=index == 0, on_click=go, args=(index - 1,),
                icon=":material/arrow_back:", width="stretch")
    nxt.button(tr("lessons.next"), key="les_next", disabled=index == len(ids) - 1, on_click=go, args=(index + 1,),
               icon=":material/arrow_forward:", width="stretch")
