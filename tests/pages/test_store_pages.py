"""The pages on the run store's back ends: the Runs and Train pages on a PostgreSQL store, and a
store that cannot be reached (a clear, translated error within seconds, never a traceback)."""
import socket
import time

import pytest

from core.i18n import CATALOGUE
from core.training.config import recipe
from tests.pages.conftest import shown

EN, ZH = CATALOGUE["en"], CATALOGUE["zh"]


@pytest.mark.slow
@pytest.mark.postgres
def test_runs_and_train_pages_on_a_postgres_store(app, pg_url, tmp_path, monkeypatch):
    """A job trained by a worker process into PostgreSQL shows on the Runs page and the Train page."""
    from core.runs.jobs import JobManager

    monkeypatch.setenv("PYTORCH_LAB_STORE_URL", pg_url)
    jobs = JobManager(tmp_path)  # the page's home (the app fixture's) and the URL from the environment
    assert jobs.store.url == pg_url
    run_id = jobs.start(recipe("r1").replace(epochs=3), name="on postgres")
    assert jobs.wait(run_id, timeout=180) == "completed"
    assert not (tmp_path / "runs.sqlite3").exists()  # nothing went to SQLite

    at = app("pages/runs.py")
    table = at.dataframe[0].value
    assert table["id"].tolist() == [run_id] and table["status"].tolist() == ["completed"]
    at.multiselect(key="rn_sel").set_value([run_id]).run()
    assert not at.exception and not at.error and at.get("plotly_chart")

    train = app("pages/train.py", run=run_id)
    status = shown(train.get("progress")[0].proto.text)
    assert EN["status.completed"] in status and "on postgres" in status and "step 3 of 3" in status
    assert not train.error
    jobs.store.close()


@pytest.fixture
def unreachable(monkeypatch):
    """PYTORCH_LAB_STORE_URL pointing at a port that accepts connections and never answers (the slow case:
    the connect timeout runs out), with a password that must never be shown."""
    pytest.importorskip("psycopg")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    monkeypatch.setenv("PYTORCH_LAB_STORE_URL", f"postgresql://lab:secret@127.0.0.1:{silent.getsockname()[1]}/lab")
    yield
    silent.close()


def test_an_unreachable_store_is_a_translated_error_on_the_pages(app, unreachable):
    t0 = time.monotonic()
    at = app("pages/runs.py")
    seconds = time.monotonic() - t0
    assert len(at.error) == 1, [e.value for e in at.error]
    text = shown(at.error[0].value)
    assert "cannot reach the run store's PostgreSQL at" in text and "lab:***@127.0.0.1" in text
    assert "PYTORCH_LAB_STORE_URL" in text and "secret" not in text
    assert not at.dataframe  # the page stopped where it needed the store
    assert seconds < 30  # two script runs, each waiting out the 3 s connect timeout once
    at.button_group(key="lang").set_value("zh").run()
    assert not at.exception and "无法连接运行记录库所在的 PostgreSQL" in at.error[0].value

    train = app("pages/train.py", run="r20250101-000000-abcdef")
    assert not train.exception and any("cannot reach the run store" in shown(e.value) for e in train.error)
    tensors = app("pages/tensors.py")  # a page that does not need the store works as before
    assert not tensors.exception and not tensors.error


def test_a_bad_store_url_is_a_translated_error_on_the_pages(app, monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_STORE_URL", "mysql://lab@db/lab")
    at = app("pages/runs.py")
    assert len(at.error) == 1 and "must be a PostgreSQL URL" in shown(at.error[0].value)
