"""AppTest: the Lessons page. Every exercise kind answered right and wrong, hints, the worked solution,
bad input (a clear message, never a traceback), the lab link, resume, the teacher's view, Chinese."""
from __future__ import annotations

import json

import torch

from core.i18n import CATALOGUE
from core.ml.zoo import preset_spec
from core.runs import progress
from core.runs.store import SQLiteRunStore
from tests.pages.conftest import shown

EN, ZH = CATALOGUE["en"], CATALOGUE["zh"]
L1, L2, L3 = "tensors_autograd", "modules_training", "data_cnn"


def lessons(app, learner: str | None = "Ann", **params):
    if learner:
        params["learner"] = learner
    return app("pages/lessons.py", **params)


def goto(at, lesson: str, step: str):
    if at.selectbox(key="les_lesson").value != lesson:
        at.selectbox(key="les_lesson").set_value(lesson).run()
    at.selectbox(key="les_step").set_value(step).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def answer(at, lesson: str, exercise: str, value, widget: str = "text_input"):
    key = f"les_in_{lesson}_{exercise}"
    getattr(at, widget)(key=key).set_value(value)
    at.button(key=f"{key}_check").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def errors(at) -> list[str]:
    return [shown(e.value) for e in at.error]


def assert_error(at, text: str) -> None:
    found = errors(at)
    assert any(text in e for e in found), found


def successes(at) -> list[str]:
    return [shown(s.value) for s in at.success]


def test_number_wrong_hint_right_and_progress(app):
    at = lessons(app)
    assert at.title[0].value == EN["lessons.title"]
    answer(at, L1, "mean_ab", "3.35")
    assert_error(at, "lower than what PyTorch computes")
    at.button(key=f"les_in_{L1}_mean_ab_hint").click().run()
    assert any(EN["lessons.hint_n"].format(n=1) in shown(i.value) for i in at.info)
    truth = (torch.tensor([[1.0, 2, 3], [4, 5, 6]]) + torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])).mean()
    answer(at, L1, "mean_ab", f"{truth.item():.4f}")
    assert EN["lessons.right"] in successes(at)
    assert at.get("progress")[0].value == round(100 / len(at.selectbox(key="les_step").options))
    answer(at, L1, "mean_ab", "three point eight")  # bad input: said, not raised
    assert_error(at, "is not a number")


def test_shape_and_error_answers(app):
    at = goto(lessons(app), L1, "broadcast")
    answer(at, L1, "broadcast_shape", "5, 1, 4")
    assert_error(at, "size of dimension(s) 1 is not")
    truth = tuple((torch.zeros(5, 1, 4) + torch.zeros(3, 1)).shape)
    answer(at, L1, "broadcast_shape", str(truth))
    assert EN["lessons.right"] in successes(at)
    goto(at, L1, "view")
    answer(at, L1, "view_after_transpose", "6, 4")
    assert_error(at, "accept this operation at all")
    answer(at, L1, "view_after_transpose", "error")
    assert EN["lessons.right"] in successes(at)
    answer(at, L1, "view_after_transpose", "six by four")
    assert_error(at, "is not a shape")


def test_choice_and_fix_by_choice(app):
    at = goto(lessons(app), L1, "detach")
    answer(at, L1, "detach_flag", "yes", "radio")
    assert_error(at, EN["err.lessons.wrong.choice"])
    truth = (torch.tensor([1.0, 2.0], requires_grad=True) * 2).detach().requires_grad
    answer(at, L1, "detach_flag", "yes" if truth else "no", "radio")
    assert EN["lessons.right"] in successes(at)
    goto(at, L1, "accumulate")
    answer(at, L1, "fix_accumulate", "retain", "radio")
    assert any("retain_graph keeps the graph" in shown(i.value) for i in at.info)  # the option's own why
    answer(at, L1, "fix_accumulate", "zero", "radio")
    assert EN["lessons.right"] in successes(at)


def test_expression_right_wrong_and_hostile(app):
    at = goto(lessons(app), L1, "permute")
    answer(at, L1, "reverse_dims", "x.view(4, 3, 2)")
    assert_error(at, "values differ")
    answer(at, L1, "reverse_dims", "x.transpose(0, 2)")  # not the reference's text, the same tensor
    assert EN["lessons.right"] in successes(at)
    answer(at, L1, "reverse_dims", "__import__('os').system('id')")
    assert_error(at, "refused") and not at.exception
    goto(at, L1, "nan")
    answer(at, L1, "fix_log_softmax", "log(softmax(z, dim=1))")
    assert_error(at, "inf or NaN")
    answer(at, L1, "fix_log_softmax", "z - logsumexp(z, dim=1, keepdim=True)")
    assert EN["lessons.right"] in successes(at)


def test_model_from_the_builder_or_json(app):
    at = goto(lessons(app), L2, "build_mlp")
    key = f"les_in_{L2}_build_mlp"
    at.session_state["current_spec"] = preset_spec("neural_net")
    at.button(key=f"{key}_check").click().run()
    assert_error(at, "241 parameters")
    at.session_state["current_spec"] = preset_spec("mlp_sequential")
    at.button(key=f"{key}_check").click().run()
    assert EN["lessons.right"] in successes(at)
    at.radio(key=f"{key}_src").set_value("json").run()
    at.text_area(key=f"{key}_json").set_value("{not json").run()
    at.button(key=f"{key}_check").click().run()
    assert any("cannot be checked" in e and "not valid JSON" in e for e in errors(at))
    spec = preset_spec("neural_net").to_dict()
    spec["layers"][-1]["args"]["out_features"] = 2
    at.text_area(key=f"{key}_json").set_value(json.dumps(spec)).run()
    at.button(key=f"{key}_check").click().run()
    assert_error(at, "outputs shape [2] per sample")


def test_parsons_order(app):
    at = goto(lessons(app), L2, "loop")
    key = f"les_in_{L2}_parsons_loop"
    at.button(key=f"{key}_check").click().run()
    assert_error(at, EN["err.lessons.parsons.empty"])  # nothing picked: said, not raised
    answer(at, L2, "parsons_loop", ["loop", "out", "loss", "back", "zero", "step"], "multiselect")
    assert_error(at, "The first 4 line(s) are in a right order")
    answer(at, L2, "parsons_loop", ["loop", "zero", "out", "loss", "back_out", "step"], "multiselect")
    assert_error(at, "do not belong")
    answer(at, L2, "parsons_loop", ["loop", "out", "loss", "back", "step", "zero"], "multiselect")
    assert EN["lessons.right"] in successes(at)


def _train(home, lr: float) -> str:
    from core.runs.worker import train_run
    from core.training.config import recipe
    from core.training.trainer import Trainer

    store = SQLiteRunStore(home)
    config = recipe("r1").replace(lr=lr).validate()
    run_id = store.create_run(config.to_dict(), name=f"R1 lr {lr}", status="running")
    store.finish_run(run_id, train_run(Trainer(config), store, run_id))
    store.close()
    return run_id


def test_training_challenge_from_the_run_store(app, tmp_path):
    at = goto(lessons(app), L2, "train_r1")
    assert any("No run on linear yet" in shown(i.value) for i in at.info)
    slow, good = _train(tmp_path, 0.01), _train(tmp_path, 0.1)  # real training into the page's run store
    at.run()
    key = f"les_in_{L2}_train_r1_goal"
    at.selectbox(key=key).set_value(slow)
    at.button(key=f"{key}_check").click().run()
    assert any("test_loss within 100 epoch(s)" in e and "at most 0.01" in e for e in errors(at)), errors(at)
    answer(at, L2, "train_r1_goal", good, "selectbox")
    assert EN["lessons.right"] in successes(at)


def test_solution_after_three_wrong_tries(app):
    at = goto(lessons(app), L1, "grad")
    key = f"les_in_{L1}_grad_cubic"
    assert at.button(key=f"{key}_sol").disabled
    for wrong in ("18", "12", "8"):
        answer(at, L1, "grad_cubic", wrong)
    assert not at.button(key=f"{key}_sol").disabled
    at.button(key=f"{key}_sol").click().run()
    x = torch.tensor(2.0, requires_grad=True)
    (x**3 + 5 * x).backward()
    text = " ".join(shown(m.value) for m in at.markdown)
    assert EN["lessons.solution"] in text and f"{int(x.grad.item())}" in text
    kinds = [r["kind"] for r in progress.attempts(SQLiteRunStore(_home(at)), "Ann").to_dict("records")]
    assert kinds.count("answer") == 3 and "solution" in kinds


def _home(at):
    from core.settings import load_settings

    return load_settings().home


def test_prediction_in_a_step_is_kept(app):
    at = lessons(app)
    key = f"les_pp_{L1}_dtype_of_ints"
    at.button(key=f"{key}__go").click().run()
    assert_error(at, EN["err.lessons.empty_answer"])
    at.radio(key=f"{key}__in").set_value("int32")
    at.button(key=f"{key}__go").click().run()
    assert any(EN["pp.off"] in shown(w.value) for w in at.warning)
    assert "`torch.int64`" in " ".join(m.value for m in at.markdown)  # PyTorch's answer, next to the guess
    stats = progress.item_stats(SQLiteRunStore(_home(at)), L1)
    assert stats.to_dict("records")[0]["wrong_answers"] == [("int32", 1)]


def test_lab_link_opens_the_page_in_its_state_and_lessons_resume(app):
    at = goto(lessons(app), L1, "broadcast")
    at.button(key=f"les_lab_{L1}_broadcast").click().run()
    assert at.title[0].value == EN["tensors.title"]
    assert at.text_input(key="ten_ba").value == "5, 1, 4" and at.text_input(key="ten_bb").value == "3, 1"
    at.switch_page("pages/lessons.py").run()
    goto(at, L2, "linear")
    at.button(key=f"les_lab_{L2}_linear").click().run()  # a model travels in the share token
    assert at.title[0].value == EN["builder.title"] and at.session_state["current_spec"].name == "LinearModel"
    again = lessons(app)  # a new session of the same learner: resumes where Ann was
    assert again.selectbox(key="les_lesson").value == L2 and again.selectbox(key="les_step").value == "linear"


def test_names_are_checked_and_needed(app):
    at = lessons(app, learner=None)
    assert any(EN["lessons.need_name"] in shown(i.value) for i in at.info)
    at.text_input(key="les_name").set_value("<script>alert(1)</script>").run()
    assert_error(at, "a learner name has 1 to 40") and not at.exception
    at.text_input(key="les_name").set_value("Grace").run()
    assert not errors(at) and at.query_params["learner"] in ("Grace", ["Grace"])
    assert not any(EN["lessons.need_name"] in shown(i.value) for i in at.info)


def test_teacher_view_counts_tries_and_wrong_answers(app):
    at = lessons(app, learner="Teacher")
    store = SQLiteRunStore(_home(at))
    for who, ans, ok in [("ann", "3.35", False), ("ann", "3.85", True), ("bob", "3.35", False)]:
        progress.record(store, who, L1, "mean_ab", "answer", ans, ok)
    progress.complete_step(store, "ann", L1, "create")
    at.button_group(key="les_view").set_value("teacher").run()
    assert not at.exception
    items = at.dataframe[0].value
    row = items[items[EN["lessons.teacher.item"]] == "mean_ab"].iloc[0]
    assert row[EN["lessons.teacher.tried"]] == 2 and row[EN["lessons.teacher.right"]] == 1
    assert row[EN["lessons.teacher.wrong"]] == "3.35 (2)"
    people = at.dataframe[1].value
    ann = people[people[EN["lessons.teacher.learner"]] == "ann"].iloc[0]
    assert ann[EN["lessons.teacher.steps"]] == "1 / 11" and ann[EN["lessons.teacher.solved"]].startswith("1 /")


def test_chinese_page(app):
    at = lessons(app, lang="简体中文")
    assert at.title[0].value == ZH["lessons.title"]
    assert at.subheader[0].value == "1. 从列表创建张量"
    answer(at, L1, "mean_ab", "3.35")
    assert_error(at, "比 PyTorch 算出的结果小")
    answer(at, L1, "mean_ab", "abc")
    assert_error(at, "不是数") and not at.exception
