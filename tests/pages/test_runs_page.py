"""AppTest tests for the Runs page: real tiny runs appear, overlay, diff-only config, manage."""
import pytest

from core.train import recipe

pytestmark = pytest.mark.slow


@pytest.fixture
def two_runs(app, tmp_path):
    from core.jobs import JobManager

    jobs = JobManager(tmp_path)
    ids = [jobs.start(recipe("r1").replace(epochs=10, lr=lr), name=f"r1 lr={lr}") for lr in (0.01, 0.02)]
    for run_id in ids:
        assert jobs.wait(run_id, timeout=120) == "completed"
    return ids


def test_runs_table_overlay_and_diff(app, two_runs):
    at = app("pages/runs.py")
    assert not at.exception
    table = at.dataframe[0].value
    assert set(two_runs) <= set(table["id"]) and set(table["status"]) == {"completed"}
    at.multiselect(key="rn_sel").set_value(two_runs).run()
    assert not at.exception and not at.error
    chart = at.get("plotly_chart")
    assert chart, "no overlay chart"
    config = at.dataframe[-1].value
    assert list(config.index) == ["lr"]  # only the differing setting
    at.toggle(key="rn_diff").set_value(False).run()
    assert "epochs" in at.dataframe[-1].value.index
    assert at.session_state["share_extras"]["runs"] == two_runs


def test_manage_rename_tag_delete(app, two_runs):
    at = app("pages/runs.py")
    at.multiselect(key="rn_sel").set_value(two_runs[:1]).run()
    at.button_group(key="rn_view").set_value("manage").run()
    at.text_input(key="rn_new_name").set_value("renamed").run()
    at.button(key="rn_rename").click().run()
    at.text_input(key="rn_new_tags").set_value("a, b").run()
    at.button(key="rn_tag").click().run()
    table = at.dataframe[0].value.set_index("id")
    assert table.loc[two_runs[0], "name"] == "renamed" and table.loc[two_runs[0], "tags"] == "a, b"
    at.checkbox(key="rn_sure").check().run()
    at.button(key="rn_delete").click().run()
    assert two_runs[0] not in set(at.dataframe[0].value["id"])
    assert not at.exception


def test_open_a_run(app, two_runs):
    at = app("pages/runs.py")
    at.multiselect(key="rn_sel").set_value(two_runs[1:]).run()
    at.button_group(key="rn_view").set_value("open").run()
    assert not at.exception and not at.error
    assert "completed" in at.get("progress")[0].proto.text
