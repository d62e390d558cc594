"""The run store, against every back end (``store_url``: SQLite, and PostgreSQL marked ``postgres``),
plus each back end's own schema details and the checkpoint files."""
import io
import os
import sqlite3
import threading
import time

import pytest
import torch

from core.ml import checkpoint as C
from core.runs.store import (
    METRIC_COLUMNS,
    MIGRATIONS,
    RUN_COLUMNS,
    SCHEMA_VERSION,
    MetricRow,
    RunRow,
    RunStore,
    SQLiteRunStore,
    StoreError,
    StoreUnavailable,
    check_run_id,
    masked_url,
    new_run_id,
    open_store,
    pid_alive,
    retrying,
)


@pytest.fixture
def store(tmp_path, store_url):
    s = open_store(home=tmp_path / "home", url=store_url)
    yield s
    s.close()


def reopen(store: RunStore) -> RunStore:
    """Another store object on the same data (another process's view)."""
    return open_store(home=store.home, url=store.url or "")


def raw_sql(store_url: str, home, statements: list[str], query: str | None = None) -> list[tuple]:
    """Run SQL outside the store (to build an old or a future schema, or to look at the tables)."""
    if not store_url:
        home.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(home / "runs.sqlite3")
        try:
            for sql in statements:
                conn.execute(sql)
            conn.commit()
            return conn.execute(query).fetchall() if query else []
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(store_url, autocommit=True) as conn:
        for sql in statements:
            conn.execute(sql)
        return conn.execute(query).fetchall() if query else []


def migrations_of(store_url: str) -> list[list[str]]:
    if not store_url:
        return MIGRATIONS
    from core.runs.stores.postgres import MIGRATIONS as PG

    return PG


def run_columns(store_url: str, home) -> list[str]:
    if not store_url:
        return [r[1] for r in raw_sql("", home, [], "PRAGMA table_info(runs)")]
    return [r[0] for r in raw_sql(store_url, home, [], "SELECT column_name FROM information_schema.columns "
                                                        "WHERE table_name = 'runs' ORDER BY ordinal_position")]


# --------------------------------------------------------------------------- run ids
def test_run_ids_are_generated_unique_and_valid():
    ids = {new_run_id() for _ in range(50)}
    assert len(ids) == 50
    for rid in ids:
        assert check_run_id(rid) == rid


@pytest.mark.parametrize("bad", ["", "../etc", "a/b", "..", ".hidden", "a" * 65, "x y", None, 5, "run\n", "-x"])
def test_bad_run_ids_are_refused(bad, store):
    with pytest.raises(ValueError, match="invalid run id"):
        check_run_id(bad)
    with pytest.raises(ValueError):
        store.run_dir(bad)


# --------------------------------------------------------------------------- schema
def test_both_back_ends_have_the_same_schema_versions():
    pytest.importorskip("psycopg")
    from core.runs.stores.postgres import MIGRATIONS as PG

    assert len(PG) == len(MIGRATIONS) == SCHEMA_VERSION


def test_schema_wal_and_integrity(tmp_path):
    store = SQLiteRunStore(tmp_path / "home")
    assert store.schema_version == SCHEMA_VERSION == len(MIGRATIONS)
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    store.close()


def test_schema_and_integrity(store):
    assert store.schema_version == SCHEMA_VERSION
    assert store.integrity_check() == "ok"
    # Reopening an up-to-date store runs no migration and keeps the data.
    rid = store.create_run({"a": 1})
    again = reopen(store)
    assert again.schema_version == SCHEMA_VERSION and again.get_run(rid)["config"] == {"a": 1}
    again.close()


def test_migrates_an_old_schema(tmp_path, store_url):
    home = tmp_path / "old"
    raw_sql(store_url, home, ["CREATE TABLE schema_version (version INTEGER NOT NULL)",
                              "INSERT INTO schema_version VALUES (1)", *migrations_of(store_url)[0],
                              "INSERT INTO runs (id, name, created, status, config) "
                              "VALUES ('old1', 'x', 1.0, 'completed', '{}')"])
    s = open_store(home=home, url=store_url)
    assert s.schema_version == SCHEMA_VERSION
    run = s.get_run("old1")
    assert run["kind"] == "cli" and run["stop_requested"] is False and run["status"] == "completed"
    assert run["delete_requested"] is False  # migration 3
    assert s.integrity_check() == "ok"
    s.close()


def test_rows_have_their_documented_shapes(store, store_url):
    """A run is a RunRow (every table column, flags as bools, JSON parsed); metric rows are MetricRows."""
    rid = store.create_run({"lr": 0.1}, tags=["t"])
    run = store.run(rid)
    assert list(run) == list(RunRow.__annotations__) == RUN_COLUMNS
    assert run_columns(store_url, store.home) == RUN_COLUMNS
    assert run["stop_requested"] is False and run["delete_requested"] is False and run["tags"] == ["t"]
    assert store.runs() == [run] and list(store.list_runs().columns) == RUN_COLUMNS
    store.log_metrics(rid, [(1, 1, "loss", 0.5), {"step": 2, "epoch": 1, "name": "loss", "value": 0.4, "wall": 7.0}])
    frame = store.metrics(rid)
    assert list(frame.columns) == list(MetricRow.__annotations__) == METRIC_COLUMNS
    assert frame.to_dict("records")[1] == {"run_id": rid, "step": 2, "epoch": 1, "name": "loss", "value": 0.4,
                                           "wall": 7.0}
    assert isinstance(run["created"], float) and isinstance(run["epoch"], int)


def test_delete_or_mark_and_delete_marked(store):
    finished = store.create_run({}, kind="job", status="completed")
    queued = store.create_run({}, kind="job")
    running = store.create_run({}, kind="job", status="running")
    launched = store.create_run({}, kind="job")
    store.update_run(launched, launched=1.0)
    for rid in (finished, queued, running, launched):
        (store.run_dir(rid, create=True) / "last.pt").write_bytes(b"x")
        store.log_metrics(rid, [(1, 1, "loss", 0.5)])
    # No worker holds these: gone at once, files and metrics too.
    assert store.delete_or_mark(finished) and store.delete_or_mark(queued)
    for rid in (finished, queued):
        assert store.get_run(rid) is None and not store.run_dir(rid).exists() and store.metrics(rid).empty
    # A worker holds these: asked to stop and marked, still there.
    assert not store.delete_or_mark(running) and not store.delete_or_mark(launched)
    for rid in (running, launched):
        run = store.run(rid)
        assert run["stop_requested"] and run["delete_requested"] and store.run_dir(rid).exists()
    assert store.delete_marked() == []  # not finished yet
    store.finish_run(running, "stopped")
    assert store.run(running)["delete_requested"]  # finishing clears the stop flag, not the deletion
    assert store.delete_marked(launched) == []
    assert store.delete_marked() == [running]
    assert store.get_run(running) is None and not store.run_dir(running).exists() and store.metrics(running).empty
    assert store.get_run(launched) is not None
    with pytest.raises(KeyError, match="no run"):
        store.delete_or_mark("missing")


def test_newer_schema_is_refused(tmp_path, store_url):
    home = tmp_path / "new"
    raw_sql(store_url, home, ["CREATE TABLE schema_version (version INTEGER NOT NULL)",
                              "INSERT INTO schema_version VALUES (999)"])
    with pytest.raises(StoreError, match="newer") as caught:
        open_store(home=home, url=store_url)
    assert caught.value.code == "store.newer_schema"
    assert ("PYTORCH_LAB_STORE_URL" if store_url else "PYTORCH_LAB_HOME") in str(caught.value)


# --------------------------------------------------------------------------- runs
def test_run_lifecycle(store):
    rid = store.create_run({"lr": 0.1}, name="first", tags=["b", "a", "a"], status="running", kind="cli",
                           device="cpu", precision="fp32")
    run = store.get_run(rid)
    assert run["name"] == "first" and run["tags"] == ["a", "b"] and run["status"] == "running"
    assert run["config"] == {"lr": 0.1} and run["heartbeat"] is not None
    store.update_run(rid, last_metrics={"test_acc": 0.9, "epoch": 2, "bad": float("nan")},
                     best_metrics={"test_acc": 0.95})
    run = store.get_run(rid)
    assert run["last_metrics"] == {"test_acc": 0.9, "epoch": 2, "bad": None}
    assert run["best_metrics"]["test_acc"] == 0.95
    store.rename_run(rid, "renamed")
    store.set_tags(rid, ["x"])
    store.request_stop(rid)
    assert store.stop_requested(rid)
    store.finish_run(rid, "stopped")
    run = store.get_run(rid)
    assert (run["name"], run["tags"], run["status"], run["stop_requested"]) == ("renamed", ["x"], "stopped", False)
    df = store.list_runs()
    assert list(df["id"]) == [rid] and df.loc[0, "status"] == "stopped"
    assert store.list_runs(status="running").empty
    with pytest.raises(ValueError, match="cannot update"):
        store.update_run(rid, id="other")
    with pytest.raises(ValueError, match="status"):
        store.update_run(rid, status="weird")
    with pytest.raises(KeyError, match="no run"):
        store.update_run("missing", status="failed")
    run_dir = store.run_dir(rid, create=True)
    (run_dir / "last.pt").write_bytes(b"x")
    store.log_metrics(rid, [(1, 1, "loss", 0.5)])
    store.delete_run(rid)
    assert store.get_run(rid) is None and not run_dir.exists() and store.metrics(rid).empty


def test_metrics_batch_and_query(store):
    rid = store.create_run({})
    n = store.log_metrics(rid, [(s, 1, "loss", 1.0 / s) for s in range(1, 11)]
                          + [{"step": 10, "epoch": 1, "name": "test_acc", "value": 0.8}]
                          + [(11, 2, "loss", float("inf"))])
    assert n == 12
    df = store.metrics(rid)
    assert list(df.columns) == ["run_id", "step", "epoch", "name", "value", "wall"] and len(df) == 12
    loss = store.metrics(rid, names=["loss"])
    assert list(loss["step"]) == list(range(1, 12)) and loss["value"].isna().sum() == 1
    wide = store.metrics_wide(rid)
    assert {"step", "epoch", "loss", "test_acc"} <= set(wide.columns)
    store.truncate_metrics(rid, 5)
    assert store.metrics(rid)["step"].max() == 5
    assert store.metrics(rid, names=[]).empty


def test_job_slots_respect_the_cap(store):
    ids = [store.create_run({}, kind="job") for _ in range(3)]
    first = store.claim_launches(cap=2)
    assert first == ids[:2]
    assert store.claim_launches(cap=2) == []
    assert store.claim_run(ids[0], os.getpid(), cap=2)
    assert store.get_run(ids[0])["status"] == "running"
    assert not store.claim_run(ids[0], os.getpid(), cap=2)  # not queued any more
    store.finish_run(ids[0], "completed")
    assert store.claim_launches(cap=2) == [ids[2]]
    # A worker cannot claim beyond the cap even when launched by someone else.
    assert store.claim_run(ids[1], 1, cap=2) and not store.claim_run(ids[2], 1, cap=1)
    store.release_launch(ids[2])
    assert store.get_run(ids[2])["launched"] is None


def test_concurrent_writers_and_a_reader(store):
    rids = [store.create_run({"i": i}, status="running") for i in range(4)]
    errors: list[BaseException] = []
    stop = threading.Event()
    reads = [0]

    def writer(rid):
        try:
            for step in range(1, 61):
                store.log_metrics(rid, [(step, 1, "loss", 1.0 / step), (step, 1, "lr", 0.1)])
                store.heartbeat(rid, epoch=1, step=step)
                if step % 20 == 0:
                    store.update_run(rid, last_metrics={"step": step})
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    def reader():
        try:
            while not stop.is_set():
                store.list_runs()
                for rid in rids:
                    store.metrics(rid, names=["loss"])
                reads[0] += 1
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(rid,)) for rid in rids]
    r = threading.Thread(target=reader)
    r.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stop.set()
    r.join(60)
    assert not errors, errors
    assert reads[0] > 0
    for rid in rids:
        assert len(store.metrics(rid)) == 120
        assert store.get_run(rid)["step"] == 60
    # A second store object on the same data (another process's view) sees it all.
    other = reopen(store)
    assert len(other.metrics(rids[0], names=["lr"])) == 60
    other.close()


def test_connections_of_finished_threads_are_closed(store):
    rid = store.create_run({})
    for i in range(20):
        t = threading.Thread(target=store.log_metrics, args=(rid, [(i, 0, "loss", 1.0)]))
        t.start()
        t.join()
    store.get_run(rid)  # any new connection prunes the dead threads' ones
    assert len(store._all) <= 2
    assert len(store.metrics(rid)) == 20


def test_metrics_since_reads_incrementally_and_once_never_stores_a_batch_twice(store):
    rid = store.create_run({})
    store.log_metrics(rid, [(1, 1, "loss", 1.0), (1, 1, "lr", 0.1)])
    frame, last, total = store.metrics_since(rid)
    assert len(frame) == 2 and total == 2 and list(frame.columns) == METRIC_COLUMNS
    batch = [(2, 1, "loss", 0.5, 123.25), (2, 1, "lr", 0.1, 123.25)]
    assert store.log_metrics(rid, batch) == 2
    assert store.log_metrics(rid, batch, once=True) == 0  # the first try did commit: nothing more
    assert store.log_metrics(rid, [(3, 1, "loss", 0.25, 124.0)], once=True) == 1
    with pytest.raises(ValueError, match="one wall time"):
        store.log_metrics(rid, [(4, 1, "loss", 0.1, 1.0), (4, 1, "lr", 0.1, 2.0)], once=True)
    new, last2, total = store.metrics_since(rid, last)
    assert new["step"].tolist() == [2, 2, 3] and total == 5 and last2 > last
    assert store.metrics_since(rid, last2, names=["loss"])[0].empty
    assert store.metrics_since(rid, 0, names=[])[0].empty


def test_two_servers_sharing_a_store_never_exceed_the_cap(store):
    """Several store objects (servers) claim launches and runs at once: at most ``cap`` jobs hold slots."""
    cap, n = 2, 12
    ids = [store.create_run({}, kind="job") for _ in range(n)]
    servers = [reopen(store) for _ in range(4)]
    claimed: list[str] = []
    running: list[str] = []
    errors: list[BaseException] = []
    go = threading.Barrier(len(servers))

    def server(s: RunStore) -> None:
        try:
            go.wait()
            for _ in range(5):
                for rid in s.claim_launches(cap):
                    claimed.append(rid)
                for rid in ids:
                    if s.claim_run(rid, os.getpid(), cap=cap):
                        running.append(rid)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=server, args=(s,)) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for s in servers:
        s.close()
    assert not errors, errors
    assert len(claimed) == len(set(claimed)) <= cap  # no run launched twice, no more than the cap
    assert len(running) == len(set(running)) == cap  # the workers' claims respect it too
    assert store.count_active_jobs() == cap
    assert {r["id"] for r in store.runs(status="running")} == set(running)


def test_retrying_retries_an_unavailable_store_with_backoff_then_gives_up():
    pauses: list[float] = []
    told: list[float] = []
    calls: list[int] = []

    def flaky(attempt: int) -> str:
        calls.append(attempt)
        if attempt < 3:
            raise StoreUnavailable("store.connection_lost", where="db", reason="gone")
        return "done"

    assert retrying(flaky, sleep=pauses.append, on_retry=lambda exc, pause: told.append(pause)) == "done"
    assert calls == [0, 1, 2, 3] and pauses == told == [0.25, 0.5, 1.0]

    def down(attempt: int) -> None:
        raise StoreUnavailable("store.connection_lost", where="db", reason="gone")

    pauses.clear()
    with pytest.raises(StoreUnavailable):
        retrying(down, budget_s=10, sleep=pauses.append)
    assert pauses == [0.25, 0.5, 1.0, 2.0, 4.0] and sum(pauses) <= 10  # bounded: the next 5 s would pass 10

    def broken(attempt: int) -> None:
        raise ValueError("not a store problem")

    with pytest.raises(ValueError):
        retrying(broken, sleep=pauses.append)


def test_open_store_chooses_the_back_end_and_refuses_bad_urls(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTORCH_LAB_STORE_URL", raising=False)
    monkeypatch.setenv("PYTORCH_LAB_HOME", str(tmp_path / "lab"))
    s = open_store()
    assert isinstance(s, SQLiteRunStore) and s.home == tmp_path / "lab" and s.url is None
    assert s.worker_env() == {"PYTORCH_LAB_HOME": str(tmp_path / "lab"), "PYTORCH_LAB_STORE_URL": ""}
    s.close()
    for bad in ("mysql://u@h/db", "sqlite:///x", "just words"):
        with pytest.raises(StoreError) as caught:
            open_store(home=tmp_path, url=bad)
        assert caught.value.code == "store.bad_url" and "PYTORCH_LAB_STORE_URL" in str(caught.value)
    # Without psycopg (requirements-scale.txt not installed) a PostgreSQL URL says what to install.
    import sys

    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.delitem(sys.modules, "core.runs.stores.postgres", raising=False)
    with pytest.raises(StoreError) as caught:
        open_store(home=tmp_path, url="postgresql://lab@db/lab")
    assert caught.value.code == "store.no_driver" and "pip install -r requirements-scale.txt" in str(caught.value)
    assert masked_url("postgresql://lab:secret@db.example:5432/lab") == "postgresql://lab:***@db.example:5432/lab"
    assert masked_url("postgresql://lab@db/lab") == "postgresql://lab@db/lab"


@pytest.mark.postgres
def test_an_unreachable_postgres_is_a_clear_error_within_seconds(tmp_path):
    """A closed port, a port that accepts but never answers, an unknown host: a coded StoreUnavailable
    within the connect timeout (3 s), never a hang, and no password in the message."""
    pytest.importorskip("psycopg")
    import socket

    from bench.pgserver import free_port

    silent = socket.socket()  # accepts connections (the kernel's backlog) and never says a word
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    urls = [f"postgresql://lab:secret@127.0.0.1:{free_port()}/lab",
            f"postgresql://lab:secret@127.0.0.1:{silent.getsockname()[1]}/lab",
            "postgresql://lab:secret@no-such-host.invalid:5432/lab"]
    for url in urls:
        t0 = time.monotonic()
        with pytest.raises(StoreUnavailable) as caught:
            open_store(home=tmp_path, url=url)
        assert time.monotonic() - t0 < 8, url
        err = caught.value
        assert err.code == "store.unreachable" and "secret" not in str(err) and "lab:***@" in str(err)
        assert "PYTORCH_LAB_STORE_URL" in str(err) and "\n" not in str(err)
        assert "PostgreSQL" in err.message("zh") and "无法连接" in err.message("zh")
    silent.close()
    with pytest.raises(StoreError) as caught:
        open_store(home=tmp_path, url="postgresql://lab@127.0.0.1:5432/lab?nonsense_option=1")
    assert caught.value.code == "store.bad_url_option"


@pytest.mark.postgres
def test_a_dropped_connection_reconnects_or_is_unavailable_inside_a_transaction(pg_url, tmp_path):
    """The server drops a connection (as a restart does): an idle one is replaced on its next use without
    an error; one inside a transaction raises StoreUnavailable, the transaction is rolled back, and the
    next call works on a fresh connection."""
    import psycopg

    store = open_store(home=tmp_path, url=pg_url)
    rid = store.create_run({})

    def drop(pid: int) -> None:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

    first = store._conn().raw.info.backend_pid
    drop(first)
    assert store.log_metrics(rid, [(1, 1, "loss", 1.0)]) == 1  # idle: reconnected, no error
    assert store.get_run(rid)["id"] == rid
    second = store._conn().raw.info.backend_pid
    assert second != first
    with pytest.raises(StoreUnavailable) as caught, store._write() as conn:
        conn.execute("INSERT INTO metrics (run_id, step, epoch, name, value, wall) VALUES (?, 2, 1, 'loss', 0.5, 1.0)",
                     (rid,))
        drop(second)
        conn.execute("SELECT COUNT(*) FROM metrics")
    assert caught.value.code == "store.connection_lost" and "PostgreSQL" in str(caught.value)
    assert store.metrics(rid)["step"].tolist() == [1]  # the interrupted transaction left nothing
    assert store._conn().raw.info.backend_pid not in (first, second)
    store.close()


def test_pid_alive():
    assert pid_alive(os.getpid())
    assert not pid_alive(None) and not pid_alive(0) and not pid_alive(-5)
    assert not pid_alive(2**22 + 12345)


# --------------------------------------------------------------------------- checkpoints
def _ckpt():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return {"epoch": 3, "model_state_dict": model.state_dict(), "optimizer_state_dict": opt.state_dict(),
            "loss": 0.25, "config": {"lr": 0.1, "spec": {"layers": [1, 2]}}, "rng": {"torch": torch.get_rng_state()}}


def test_checkpoint_round_trip(tmp_path):
    path = tmp_path / "run" / "last.pt"
    ck = _ckpt()
    C.save_checkpoint(ck, path)
    assert path.exists() and not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    back = C.load_checkpoint(path)
    assert back["epoch"] == 3 and back["loss"] == 0.25 and back["config"] == ck["config"]
    assert torch.equal(back["model_state_dict"]["weight"], ck["model_state_dict"]["weight"])
    # The same file loads with plain torch.load(weights_only=True), as the tutorials do.
    assert set(torch.load(path, weights_only=True)) == set(ck)
    # Bytes (an upload) and file objects work too.
    data = path.read_bytes()
    assert C.load_checkpoint(data)["epoch"] == 3
    assert C.load_checkpoint(io.BytesIO(data))["epoch"] == 3


def test_checkpoint_save_is_atomic_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    C.save_checkpoint(_ckpt(), path)
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        C.save_checkpoint({**_ckpt(), "epoch": 9}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    with pytest.raises(C.CheckpointError, match="missing"):
        C.save_checkpoint({"epoch": 1}, tmp_path / "x.pt")


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_checkpoint_load_refuses_bad_files(tmp_path):
    with pytest.raises(C.CheckpointError, match="no checkpoint"):
        C.load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(C.CheckpointError, match="empty"):
        C.load_checkpoint(tmp_path / "empty.pt")
    (tmp_path / "text.pt").write_text("hello, not a checkpoint")
    with pytest.raises(C.CheckpointError, match="not a valid PyTorch checkpoint"):
        C.load_checkpoint(tmp_path / "text.pt")
    evil = tmp_path / "evil.pt"
    torch.save({"epoch": 1, "model_state_dict": {}, "optimizer_state_dict": {}, "loss": Evil()}, evil)
    with pytest.raises(C.CheckpointError, match="weights_only"):
        C.load_checkpoint(evil)
    bare = tmp_path / "bare.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), bare)
    with pytest.raises(C.CheckpointError, match="state_dict"):
        C.load_checkpoint(bare)
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(C.CheckpointError, match="not a checkpoint dict"):
        C.load_checkpoint(tensor)
    big = tmp_path / "big.pt"
    C.save_checkpoint(_ckpt(), big)
    with pytest.raises(C.CheckpointError, match="size cap"):
        C.load_checkpoint(big, max_bytes=100)
    with pytest.raises(C.CheckpointError, match="size cap"):
        C.load_checkpoint(big.read_bytes(), max_bytes=100)


def test_checkpoint_size_cap_from_env():
    assert C.max_bytes_from_env({}) == C.DEFAULT_MAX_BYTES
    assert C.max_bytes_from_env({"PYTORCH_LAB_MAX_CHECKPOINT_MB": "5"}) == 5 * 1024 * 1024
    assert C.max_bytes_from_env({"PYTORCH_LAB_MAX_CHECKPOINT_MB": "nan"}) == C.DEFAULT_MAX_BYTES
    assert C.max_bytes_from_env({"PYTORCH_LAB_MAX_CHECKPOINT_MB": "x"}) == C.DEFAULT_MAX_BYTES
