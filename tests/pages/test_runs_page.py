"""AppTest tests for the Runs page: real tiny runs appear, overlay, diff-only config, manage."""
import shutil

import pytest

from core.i18n import CATALOGUE
from core.training.config import recipe
from tests.pages.conftest import shown

EN = CATALOGUE["en"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory):
    """Two tiny real runs, trained once for the module in a lab home of their own (workers and all)."""
    from core.runs.jobs import JobManager

    home = tmp_path_factory.mktemp("two-runs")
    jobs = JobManager(home)
    ids = [jobs.start(recipe("r1").replace(epochs=10, lr=lr), name=f"r1 lr={lr}") for lr in (0.01, 0.02)]
    for run_id in ids:
        assert jobs.wait(run_id, timeout=120) == "completed"
    jobs.store.close()
    return home, ids


@pytest.fixture
def two_runs(app, tmp_path, trained_home):
    """The module's two runs in this test's own lab home: a copy (the store and the run folders, whose
    paths are relative to the home), so a test that renames or deletes leaves the next one alone."""
    home, ids = trained_home
    shutil.copytree(home, tmp_path, dirs_exist_ok=True)
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
    # In Chinese the statuses (table and selection labels) are translated too.
    at.button_group(key="lang").set_value("zh").run()
    assert not at.exception
    assert set(at.dataframe[0].value["status"]) == {CATALOGUE["zh"]["status.completed"]}
    assert all(CATALOGUE["zh"]["status.completed"] in o for o in at.multiselect(key="rn_sel").options)


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


def share_params(at) -> dict:
    """The sidebar's share link, as query parameters for a fresh AppTest."""
    from urllib.parse import parse_qs, urlparse

    url = at.sidebar.code[0].value
    return {k: v if len(v) > 1 else v[0] for k, v in parse_qs(urlparse(url).query).items()}


def test_share_link_restores_selection_order_view_and_chart_settings(app, two_runs):
    at = app("pages/runs.py")
    picked = [two_runs[1], two_runs[0]]  # the order counts: "open" shows the run picked last
    at.multiselect(key="rn_sel").set_value(picked).run()
    at.radio(key="rn_x").set_value("epoch").run()
    at.slider(key="rn_smooth").set_value(0.5).run()
    at.toggle(key="rn_log").set_value(True).run()
    at.number_input(key="rn_target").set_value(0.9).run()
    at.text_input(key="rn_filter").set_value("lr=0.02").run()  # the table no longer lists one selected run
    assert not at.exception and at.multiselect(key="rn_sel").value == picked
    params = share_params(at)
    assert params["rn_x"] == "epoch" and "s" in params and "rn_view" not in params  # compare: the default view
    # Widgets bound with bind="query-params" are written to the URL by the browser (AppTest has
    # none; tests/e2e/test_share_e2e.py sees them in the link): add them as a browser would.
    metric = at.selectbox(key="rn_metric")
    other = [m for m in metric.options if m != metric.value][-1]
    params.update(rn_smooth="0.5", rn_log="true", rn_target="0.9", rn_filter="lr=0.02", rn_metric=other,
                  rn_diff="false")
    fresh = app("pages/runs.py", **params)
    assert not fresh.exception and not fresh.warning
    assert fresh.multiselect(key="rn_sel").value == picked
    assert fresh.radio(key="rn_x").value == "epoch" and fresh.slider(key="rn_smooth").value == 0.5
    assert fresh.toggle(key="rn_log").value is True and fresh.number_input(key="rn_target").value == 0.9
    assert fresh.text_input(key="rn_filter").value == "lr=0.02" and fresh.selectbox(key="rn_metric").value == other
    assert fresh.toggle(key="rn_diff").value is False and "epochs" in fresh.dataframe[-1].value.index
    assert fresh.get("plotly_chart")
    fresh.button_group(key="rn_view").set_value("open").run()
    assert fresh.query_params["rn_view"] == "open"
    assert shown(fresh.subheader[0].value) == "r1 lr=0.01 (completed)"  # two_runs[0], the last one picked


def test_link_naming_a_missing_run_says_so(app, two_runs):
    from core.safe.share import encode_state

    gone = "r20000101-000000-abcdef"
    at = app("pages/runs.py", s=encode_state({"runs": [gone, two_runs[0]]}))
    assert not at.exception
    assert any(gone in shown(w.value) for w in at.warning)
    assert at.multiselect(key="rn_sel").value == [two_runs[0]]
    at.button_group(key="rn_view").set_value("open").run()  # the notice stays until the selection changes
    assert any(gone in shown(w.value) for w in at.warning) and not at.exception
    at.multiselect(key="rn_sel").set_value(two_runs).run()
    assert not any(gone in shown(w.value) for w in at.warning)


@pytest.mark.parametrize("runs", [5, "r-not-a-list", [1, None, {"id": "x"}], ["x" * 500] * 20])
def test_damaged_run_lists_in_a_link_do_not_crash(app, runs):
    from core.safe.share import encode_state

    at = app("pages/runs.py", s=encode_state({"runs": runs}))
    assert not at.exception and not at.error
    assert at.info[0].value == EN["runs.none"]  # a fresh lab home: no runs
    if isinstance(runs, (int, str)):
        assert any(str(runs) in shown(w.value) for w in at.warning)


def test_manage_a_run_another_session_deleted(app, two_runs, tmp_path):
    from core.runs.store import SQLiteRunStore

    at = app("pages/runs.py")
    at.multiselect(key="rn_sel").set_value(two_runs[:1]).run()
    at.button_group(key="rn_view").set_value("manage").run()
    at.checkbox(key="rn_sure").check().run()
    SQLiteRunStore(tmp_path).delete_run(two_runs[0])  # someone else deletes it between render and click
    at.text_input(key="rn_new_name").set_value("renamed")
    at.button(key="rn_rename").click().run()
    assert not at.exception and two_runs[0] in shown(at.error[0].value)
    assert two_runs[0] not in set(at.dataframe[0].value["id"])


def test_deleting_an_active_run_does_not_wait_for_its_worker(app, tmp_path):
    """Delete on a running run returns at once ("stopping, will be deleted"); the run goes when its worker stops."""
    import os
    import signal

    from core.runs.jobs import JobManager
    from tests.core.runs.test_jobs import cnn, wait_for

    jobs = JobManager(tmp_path, cap=1)
    run_id = jobs.start(cnn(epochs=50), name="long")
    try:
        wait_for(lambda: jobs.status(run_id)["status"] == "running" and jobs.status(run_id)["step"] > 0, timeout=120)
        at = app("pages/runs.py")
        at.multiselect(key="rn_sel").set_value([run_id]).run()
        at.button_group(key="rn_view").set_value("manage").run()
        at.checkbox(key="rn_sure").check().run()
        at.button(key="rn_delete").click().run()
        assert not at.exception and not at.error
        assert at.info[0].value == EN["runs.done.deleting"]
        assert at.multiselect(key="rn_sel").value == []
        # The page returned while the worker was still stopping; once it has, the run is gone.
        wait_for(lambda: jobs.store.get_run(run_id) is None, timeout=120)
        assert not jobs.store.run_dir(run_id).exists()
        at.run()
        assert not at.exception and at.info[0].value == EN["runs.none"]
    finally:
        proc = jobs._procs.get(run_id)
        if proc is not None and proc.poll() is None:  # only if the test failed before the worker stopped
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        jobs.store.close()
