"""`python -m core.lessons check`: the shipped course is valid and proven; a broken one is named and fails."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import LabError
from core.lessons.course import course, load_course
from core.lessons.prompts import page_prompts
from core.lessons.prove import prove_course, text_problem, texts
from core.lessons.schema import KINDS, Text, load_lesson

ROOT = Path(__file__).resolve().parents[3]


def run_check(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTORCH_LAB_DOWNLOAD": "0"}
    return subprocess.run([sys.executable, "-m", "core.lessons", "check", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1200)


@pytest.mark.slow
def test_the_course_is_proven_by_the_check_command():
    """The real command on the shipped course: every exercise proven (training challenges on regression
    data and small image subsets are trained for real; the full MNIST one is left to CI's `check`)."""
    done = run_check("--json", "--train", "quick")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert set(report) >= {"lessons", "exercises", "kinds", "failures"}
    assert report["failures"] == []
    assert report["lessons"] >= 4 and report["exercises"] >= 40
    assert sum(report["kinds"].values()) == report["exercises"]
    assert set(report["kinds"]) == set(KINDS)  # every kind is used
    assert report["prompts"] >= 5 + 1
    # Only the MNIST challenge needs a full training run; quick mode says so instead of failing.
    assert {s["exercise"] for s in report["skipped"]} <= {"train_mnist_goal"}


def test_every_lesson_has_enough_exercises_in_order():
    lessons = course().lessons
    assert [lesson.tutorial for lesson in lessons] == [1, 2, 3, 4]
    for lesson in lessons:
        assert len(lesson.exercises) >= 8, lesson.id
        assert len({ex.kind for ex in lesson.exercises}) >= 4, lesson.id


def test_no_english_in_the_chinese_lesson_text():
    """Every zh field has Chinese characters and no English sentence outside backticks (code spans and
    text that is only code are allowed); no en field has Chinese."""
    problems = []
    for lesson in course().lessons:
        problems += [f"{lesson.id}: {p}" for field, text in texts(lesson) if (p := text_problem(field, text))]
    for prompt in page_prompts().values():
        problems += [f"{prompt.id}: {p}" for field, text in texts(prompt) if (p := text_problem(field, text))]
    assert not problems, problems
    assert sum(1 for lesson in course().lessons for _ in texts(lesson)) > 300


def test_the_text_rule_catches_english_and_missing_chinese():
    assert text_problem("t", Text(en="Add the numbers.", zh="把这些数加起来。")) is None
    assert text_problem("t", Text(en="x", zh="调用 `loss.backward()` 之后")) is None
    assert text_problem("t", Text(en="x", zh="`torch.int64`")) is None  # only code
    assert "English" in text_problem("t", Text(en="x", zh="把它们 add the numbers 加起来"))
    assert "no Chinese" in text_problem("t", Text(en="x", zh="Add the numbers."))
    assert "Chinese characters" in text_problem("t", Text(en="加起来", zh="加起来"))


BROKEN = '''
id = "broken"
order = 1
tutorial = 1
title = { en = "Broken", zh = "有错的课" }
summary = { en = "A lesson with mistakes.", zh = "一节有错误的课。" }

[[steps]]
id = "one"
title = { en = "One", zh = "第一步" }
text = { en = "Some text.", zh = "一些文字。" }

[steps.exercise]
id = "mean"
kind = "number"
prompt = { en = "What is the mean?", zh = "平均值是多少？" }
hints = [{ en = "Add and divide.", zh = "先加再除。" }]
solution = { en = "It is {answer}.", zh = "答案是 {answer}。" }
compute = { probe = "expr", args = { expr = "tensor([1., 2., 3.]).mean()" } }
wrong = ["2.0", "3"]
'''


def test_a_wrong_answer_that_passes_fails_the_check(tmp_path):
    (tmp_path / "01_broken.toml").write_text(BROKEN)
    done = run_check("--json", "--folder", str(tmp_path), "--train", "none", "--no-prompts")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["lessons"] == 1 and report["exercises"] == 1 and report["kinds"] == {"number": 1}
    assert report["failures"] == [{"file": "01_broken.toml", "exercise": "mean",
                                   "reason": "the wrong answer '2.0' passes the check"}]


def test_a_schema_error_names_the_file_the_exercise_and_the_field(tmp_path):
    bad = BROKEN.replace('probe = "expr"', 'probe = "exprr"')
    path = tmp_path / "02_bad.toml"
    path.write_text(bad)
    with pytest.raises(LabError) as caught:
        load_lesson(path)
    err = caught.value
    assert err.code == "lessons.invalid"
    assert err.params["file"] == "02_bad.toml" and err.params["exercise"] == "mean"
    assert err.params["field"] == "steps[0].exercise.compute"
    assert "unknown probe 'exprr'" in err.params["reason"]
    assert "02_bad.toml" in err.message("zh") and "练习" in err.message("zh")
    report = prove_course(tmp_path, train="none", prompts_file=None)
    assert report["failures"][0]["file"] == "02_bad.toml" and report["failures"][0]["exercise"] == "mean"


def test_missing_language_and_hostile_expression_are_refused(tmp_path):
    path = tmp_path / "03.toml"
    path.write_text(BROKEN.replace('zh = "平均值是多少？"', 'zh = ""'))
    with pytest.raises(LabError) as caught:
        load_lesson(path)
    assert caught.value.params["field"] == "steps[0].exercise.prompt.zh"
    path.write_text(BROKEN.replace("tensor([1., 2., 3.]).mean()", "__import__('os').system('id')"))
    with pytest.raises(LabError) as caught:
        load_lesson(path)
    assert caught.value.params["exercise"] == "mean" and "refused" in caught.value.params["reason"]
    path.write_text(BROKEN.replace('kind = "number"', 'kind = "essay"'))
    with pytest.raises(LabError) as caught:
        load_lesson(path)
    assert caught.value.params["field"].startswith("steps[0].exercise")
    path.write_text("id = [unclosed")
    with pytest.raises(LabError) as caught:
        load_lesson(path)
    assert caught.value.code == "lessons.bad_toml"


def test_duplicate_lesson_ids_are_refused(tmp_path):
    (tmp_path / "01_a.toml").write_text(BROKEN)
    (tmp_path / "02_b.toml").write_text(BROKEN)
    with pytest.raises(LabError) as caught:
        load_course(tmp_path)
    assert caught.value.code == "lessons.duplicate_lesson"
