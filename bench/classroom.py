"""A classroom on one server (BENCHMARKS.md section "## Classroom"): many learners watching live runs.

Issue 17's classroom load: N simulated learners, each a protocol-level client of the real server
(Streamlit's own websocket protocol: ``BackMsg``/``ForwardMsg`` protobufs on ``/_stcore/stream``, the
messages a browser tab sends and receives, without a browser's rendering), each watching one of R live
runs on the Train page and changing page every ``page_every`` seconds (Train → another page → Train
...), plus B real browser sessions (headless Chromium) doing the same. Measured:

- page time: from the client's rerun request to the server's ``script_finished`` (a page change);
- live-chart staleness: on each answer of the live feed, how long ago the step the watcher's view
  shows (its progress line, ``step s of``) was written to the store;
- the server's CPU (cores busy) and, by running the same load at two sizes, the server CPU one more
  watcher costs per live-chart tick;
- "database is locked" anywhere (the server's log).

The R live runs are simulated training runs: a writer thread stores a step's metrics for each run
every ``write_every`` seconds and beats its heartbeat, as a worker would; training itself (CPU in
worker processes) is not the server's cost and would only take the cores from it on this machine.

A simulated client does what the browser does on the Train page: its live-charts component
(``pages.ui.live_view``: Streamlit sends it as a ``bidi_component`` element with the feed's URL in its
data) polls ``/lab-live/feed`` once per second over one kept-alive HTTP connection, sending the version
it holds, and a page's fragment timer, if any, is answered as Streamlit's ``auto_rerun`` asks.
Staleness is then measured on every answer: how long ago the step the learner's view shows was written.

    python -m bench.classroom                     # the section: 200 learners, 10 runs, 20 browsers
    python -m bench.classroom --learners 20 --browsers 0 --seconds 30 --no-write   # a smoke run
"""
from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.browser import LOCKED, LabServer, percentile
from bench.common import Contention, md_table, update_benchmarks
from core.runs.store import SQLiteRunStore
from core.training.config import recipe

SECTION = "## Classroom"
OTHER_PAGES = ("runs", "", "lessons", "data")  # where a learner goes between two looks at the Train page
STEP_RE = re.compile(r"step (\d+) of")
TARGETS = {"page_p95_s": 1.5, "stale_p95_s": 2.0, "server_cores": 1.0, "watcher_ms": 2.0}


# Where the server's time goes: py-spy (sampling) on the server under 200 learners without browsers.
WHERE = (
    "Where the server's time goes (py-spy on the server, 200 learners, no browsers): of its busy samples, page "
    "runs (Streamlit's script threads) take about 45%, the Train page the most (its form, the watched run's "
    "panels); the feed's looks at the store and its builds about a quarter (in Starlette's thread pool: 10 runs, "
    "a new step every 0.5 s each, about 20 builds a second, and the training doctor's look at each run every "
    "5 s); answering the polls under a tenth. A poll whose view is held is a lookup answered on the event loop "
    "before Streamlit's middleware (`pages.ui.live_http.FeedLookups`): it used to go through Streamlit's three "
    "middlewares and a hop to Starlette's thread pool, about 2 ms a poll at 200 polls a second, most of the "
    "server's time and of its one interpreter lock, which every session's script waits for. That change, and "
    "freezing the engine's objects once they are loaded (`pages.ui.frame.freeze_loaded_code`: Python's full "
    "garbage collections, every few seconds under this load, walked about 500,000 objects of torch, pandas and "
    "plotly, 0.3-0.6 s in which every session waited; now 0.05-0.3 s) took the page time p95 from 3.9 s "
    "(the previous measurement) to the value above; the browsers are also driven from a process of their own "
    "now, so that Playwright no longer shares the learners' interpreter lock. Streamlit still runs every "
    "session's script in a thread of one process: a class that arrives all at once (200 learners in the same "
    "few seconds) waits seconds for its first page, and more learners than this need replicas behind HAProxy "
    "(README, UI replicas) to spread the sessions.")


class FeedClient:
    """The live-charts component's polling, as the browser does it: GET the feed URL with the version held,
    over one kept-alive connection (Python's asyncio streams: a dozen lines, not a client library)."""

    def __init__(self, url: str) -> None:
        self.host, self.port = url.split("//")[1].split(":")[0], int(url.rsplit(":", 1)[1])
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        try:
            return await self._get(path)
        except (asyncio.IncompleteReadError, ConnectionError):  # the server closed an idle kept-alive connection
            self.close()
            return await self._get(path)

    async def _get(self, path: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nConnection: keep-alive\r\n"
                          "Accept-Encoding: gzip, deflate\r\n\r\n".encode())  # as a browser asks
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        body = await self.reader.readexactly(length)
        if re.search(rb"(?i)content-encoding: *gzip", head):
            body = gzip.decompress(body)
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


@dataclass
class Stats:
    page_s: list[float] = field(default_factory=list)     # page changes: request -> script_finished
    stale_s: list[float] = field(default_factory=list)    # progress shown: its step's age
    ticks: int = 0                                        # live-feed polls (and fragment reruns) answered
    errors: list[str] = field(default_factory=list)       # exceptions, lost connections
    browser_pages: int = 0                                # the browsers' page loads
    browser_polls: int = 0                                # the browsers' live-feed polls
    browser_missed: int = 0                               # page changes a busy browser could not click
    browsers_confined: bool = False                       # the browsers ran at a small CPU share


class LiveRuns:
    """R simulated training runs: a thread stores a step's metrics for each and beats its heartbeat."""

    def __init__(self, home: Path, n: int, write_every: float) -> None:
        self.store = SQLiteRunStore(home)
        config = recipe("r3").to_dict()
        config["epochs"] = 200  # "step s of 22,000": the runs never finish during the measurement
        self.ids = [self.store.create_run(config, name=f"live {i}", status="running", kind="cli")
                    for i in range(n)]
        self.written: dict[tuple[str, int], float] = {}
        self.write_every = write_every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._write, daemon=True)

    def __enter__(self) -> LiveRuns:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        for run_id in self.ids:
            self.store.finish_run(run_id, "stopped")
        self.store.close()

    def _write(self) -> None:
        step = 0
        while not self._stop.wait(self.write_every):
            step += 1
            for run_id in self.ids:
                self.store.log_metrics(run_id, [(step, 1, "loss", 2.3 / (1 + 0.01 * step)),
                                                (step, 1, "lr", 1e-3), (step, 1, "samples_per_s", 1000.0)])
                self.store.heartbeat(run_id, epoch=0, step=step)
                self.written[(run_id, step)] = time.time()


def _back_rerun(query: str, page: str, fragment: str | None = None) -> bytes:
    from streamlit.proto.BackMsg_pb2 import BackMsg

    msg = BackMsg()
    state = msg.rerun_script
    state.query_string = query
    state.page_name = page
    if fragment:
        state.fragment_id = fragment
        state.is_auto_rerun = True
    return msg.SerializeToString()


async def learner(url: str, run_id: str, live: LiveRuns, stats: Stats, until: float, page_every: float,
                  seed: int, stop: asyncio.Event | None = None) -> None:
    """One learner: Train page watching ``run_id``, another page, Train again..., until ``until`` (or
    ``stop`` is set)."""
    stop = stop or asyncio.Event()
    import websockets
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    rng = random.Random(seed)
    ws_url = url.replace("http://", "ws://") + "/_stcore/stream"
    feed = FeedClient(url)
    try:
        async with websockets.connect(ws_url, subprotocols=["streamlit"], origin=url, max_size=None,
                                      open_timeout=60, ping_interval=None) as ws:
            on_train = True
            while time.time() < until and not stop.is_set():
                page, query = ("train", f"run={run_id}") if on_train else (rng.choice(OTHER_PAGES), "")
                sent = time.monotonic()
                await ws.send(_back_rerun(query, page))
                fragments: dict[str, float] = {}
                finished = False
                feed_url, version, shown, next_poll = "", "", None, 0.0
                leave = time.time() + page_every * rng.uniform(0.8, 1.2)
                next_tick: dict[str, float] = {}
                while time.time() < min(leave, until) and not stop.is_set():
                    timeout = 0.2
                    if finished and next_tick:
                        timeout = max(0.01, min(next_tick.values()) - time.monotonic())
                    if finished and feed_url:
                        timeout = max(0.01, min(timeout, next_poll - time.monotonic()))
                    try:
                        raw = await asyncio.wait_for(ws.recv(), timeout=min(timeout, 1.0))
                    except TimeoutError:
                        raw = None
                    if raw is not None:
                        msg = ForwardMsg()
                        msg.ParseFromString(raw)
                        kind = msg.WhichOneof("type")
                        if kind == "auto_rerun":
                            fragments[msg.auto_rerun.fragment_id] = msg.auto_rerun.interval
                            next_tick[msg.auto_rerun.fragment_id] = time.monotonic() + msg.auto_rerun.interval
                        elif kind == "script_finished":
                            if not finished:
                                stats.page_s.append(time.monotonic() - sent)
                                finished = True
                            else:
                                stats.ticks += 1
                        elif kind == "delta" and msg.delta.HasField("new_element"):
                            element = msg.delta.new_element
                            if element.WhichOneof("type") == "progress":
                                m = STEP_RE.search(element.progress.text.replace(",", ""))
                                wrote = live.written.get((run_id, int(m.group(1)))) if m else None
                                if wrote is not None:
                                    stats.stale_s.append(time.time() - wrote)
                            elif element.WhichOneof("type") == "exception":
                                stats.errors.append(element.exception.message[:200])
                            elif element.WhichOneof("type") == "bidi_component" \
                                    and element.bidi_component.component_name == "lab_live_charts":
                                feed_url = json.loads(element.bidi_component.json)["feed"]
                                next_poll = time.monotonic()
                    now = time.monotonic()
                    if finished and feed_url and now >= next_poll:
                        next_poll = now + 1.0
                        status, body = await feed.get(f"{feed_url}&v={version}")
                        stats.ticks += 1
                        payload = json.loads(body)
                        if status != 200:
                            stats.errors.append(f"feed {status}: {payload.get('error')}"[:200])
                        elif not payload.get("same"):
                            version = payload["v"]
                            m = STEP_RE.search(payload["runs"][0]["text"].replace(",", "")) if payload["runs"] else None
                            shown = int(m.group(1)) if m else shown
                        wrote = live.written.get((run_id, shown)) if shown is not None else None
                        if wrote is not None:
                            stats.stale_s.append(time.time() - wrote)
                    for fid, due in list(next_tick.items()):
                        if finished and now >= due:
                            await ws.send(_back_rerun(f"run={run_id}" if on_train else "",
                                                      "train" if on_train else page, fid))
                            next_tick[fid] = now + fragments[fid]
                on_train = not on_train
    except Exception as exc:  # noqa: BLE001 - a lost client is a result to report, not a crash of the bench
        stats.errors.append(f"{type(exc).__name__}: {exc}"[:200])
    finally:
        feed.close()


async def _clients(url: str, runs: list[str], live: LiveRuns, n: int, seconds: float, page_every: float,
                   stats: Stats, arrive_over: float | None = None, stop: asyncio.Event | None = None) -> None:
    """n learners for ``seconds``; they arrive evenly over ``arrive_over`` seconds (default: one page period,
    so that from then on the class is in its steady state: 1/page_every of the learners change page each
    second, as a class that has been working for a while does, not all in the same second)."""
    until = time.time() + seconds
    gap = (page_every if arrive_over is None else arrive_over) / max(n, 1)
    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(learner(url, runs[i % len(runs)], live, stats, until, page_every, i, stop)))
        await asyncio.sleep(gap)
    await asyncio.gather(*tasks)


def _browsers(url: str, runs: list[str], n: int, seconds: float, page_every: float, stats: Stats) -> None:
    """B real browser sessions (headless Chromium): Train page watching a run, another page, Train...

    Driven from a process of their own: Playwright's Python side (a thread per browser connection and an
    event per response of twenty pages) would otherwise take turns on this process's interpreter lock with
    the learners' event loop, and delay the times the learners measure."""
    if n <= 0:
        return
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=_browsers_process, args=(url, runs, n, seconds, page_every, results), daemon=True)
    proc.start()
    try:
        found = results.get(timeout=seconds + 180)
    except Exception as exc:  # noqa: BLE001 - a browser process that hangs or dies is a result, not a crash
        stats.errors.append(f"browsers: no result ({type(exc).__name__})")
        found = {}
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
    for name in ("browser_pages", "browser_polls", "browser_missed", "browsers_confined"):
        if name in found:
            setattr(stats, name, found[name])
    stats.errors.extend(found.get("errors", []))


def _browsers_process(url: str, runs: list[str], n: int, seconds: float, page_every: float, results) -> None:
    stats = Stats()
    try:
        _drive_browsers(url, runs, n, seconds, page_every, stats)
    except Exception as exc:  # noqa: BLE001 - a browser that gives up (a page load timing out) is a result
        stats.errors.append(f"browsers: {type(exc).__name__}: {str(exc).splitlines()[0]}"[:200])
    results.put({"browser_pages": stats.browser_pages, "browser_polls": stats.browser_polls,
                 "browser_missed": stats.browser_missed, "browsers_confined": stats.browsers_confined,
                 "errors": stats.errors})


def _drive_browsers(url: str, runs: list[str], n: int, seconds: float, page_every: float, stats: Stats) -> None:
    from playwright.sync_api import sync_playwright

    from bench.browser import CHROMIUM_ARGS, chromium_path

    path = chromium_path()
    if path is None:
        stats.errors.append("no Chromium for the browser sessions")
        return
    until = time.time() + seconds
    with sync_playwright() as pw, _BrowserShare() as share:
        stats.browsers_confined = share.confine_new_children()  # Playwright's driver, before it starts Chromium
        browser = pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        pages, due, on_train = [], [], []
        for i in range(n):
            page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
            page.on("response", lambda r: _count_poll(stats, r.url))
            page.goto(f"{url}/train?run={runs[i % len(runs)]}", wait_until="commit")
            stats.browser_pages += 1
            pages.append(page)
            due.append(time.time() + page_every * (i + 1) / n)  # each on its own phase, as the learners
            on_train.append(True)
        while time.time() < until:
            pages[0].wait_for_timeout(250)
            for i, page in enumerate(pages):
                if time.time() < due[i] or time.time() >= until:
                    continue
                on_train[i] = not on_train[i]
                # As a learner moves: the sidebar's link (the same session; Train shows the run it watched).
                target = "train" if on_train[i] else OTHER_PAGES[i % len(OTHER_PAGES)]
                link = page.locator(f'[data-testid="stSidebarNav"] a[href="{url}/{target}"]')
                try:
                    link.click(timeout=5_000)
                    stats.browser_pages += 1
                except Exception:  # noqa: BLE001 - a browser still drawing its last page: it tries next round
                    stats.browser_missed += 1
                due[i] += page_every
        browser.close()


class _BrowserShare:
    """The browsers at a small share of the CPU (a cgroup-v1 ``cpu`` group with 2 shares, the default is
    1024): in a class they run on the learners' computers, here on the server's two cores, where
    twenty Chromium renderers would otherwise take the cores from the server they load. Chromium sets
    its processes' nice values itself, so nice is not enough. Without a writable cgroup (not root,
    cgroup v2 only) the browsers run unconfined, and the section says so."""

    ROOT = Path("/sys/fs/cgroup/cpu")

    def __init__(self) -> None:
        self.group = self.ROOT / f"lab-bench-browsers-{os.getpid()}"

    def __enter__(self) -> _BrowserShare:
        return self

    def confine_new_children(self) -> bool:
        """Put this process (the browsers' own, which drives them) and its children that are not the lab
        server (Playwright's driver) in the group; what they start later (Chromium) is born in it."""
        from bench.browser import _children

        try:
            self.group.mkdir(exist_ok=True)
            (self.group / "cpu.shares").write_text("2")
            (self.group / "cgroup.procs").write_text(str(os.getpid()))
            for pid in _children().get(os.getpid(), []):
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"playwright" in cmd or b"node" in cmd:
                    (self.group / "cgroup.procs").write_text(str(pid))
            return True
        except OSError:
            return False

    def __exit__(self, *exc: object) -> None:
        try:
            for pid in (self.group / "cgroup.procs").read_text().split():  # leftovers back to the root group
                (self.ROOT / "cgroup.procs").write_text(pid)
            self.group.rmdir()
        except OSError:
            pass


def _count_poll(stats: Stats, url: str) -> None:
    if "/lab-live/feed" in url:
        stats.browser_polls += 1


def measure(learners: int, runs: int, browsers: int, seconds: float, page_every: float = 30.0,
            write_every: float = 0.5, watchers: tuple[int, ...] = (), window: float = 30.0) -> dict:
    """The class's load on a fresh server; then, on the same server, ``watchers`` learners at each size
    only watching (no page change) for the per-watcher cost. Returns the facts."""
    with tempfile.TemporaryDirectory(prefix="lab-classroom-") as tmp:
        home = Path(tmp)
        with LabServer(home) as server, LiveRuns(home, runs, write_every) as live:
            warm = Stats()  # the first page views import torch and build the pages: not the class's cost
            asyncio.run(_clients(server.url, live.ids, live, 2, 8.0, 4.0, warm, arrive_over=0.1))
            stats = Stats()
            cpu0, t0, own0 = server.cpu_seconds(), time.monotonic(), time.process_time()
            with Contention() as machine:
                thread = threading.Thread(target=_browsers,
                                          args=(server.url, live.ids, browsers, seconds, page_every, stats))
                thread.start()
                asyncio.run(_clients(server.url, live.ids, live, learners, seconds, page_every, stats))
                thread.join(seconds + 120)
            elapsed = time.monotonic() - t0
            cores = (server.cpu_seconds() - cpu0) / elapsed
            clients = (time.process_time() - own0) / elapsed  # the learners' process (and the runs' writer)
            watching = {n: asyncio.run(_watching(server, live, n, window)) for n in watchers}
            log = server.log_text()
    return {"learners": learners, "runs": runs, "browsers": browsers, "seconds": seconds, "stats": stats,
            "cores": cores, "clients_cores": clients, "locked": log.count(LOCKED), "pressure": machine.pressure,
            "watching": watching}


async def _watching(server: LabServer, live: LiveRuns, n: int, window: float) -> tuple[float, float]:
    """n learners that open the Train page on a live run and stay: after they have all arrived and their
    pages are drawn, the server's CPU (cores) and the live-feed polls answered per second over ``window``."""
    stats = Stats()
    arrive, settle = min(10.0, 0.05 * n), 3.0
    ready = asyncio.Event()
    clients = asyncio.create_task(_clients(server.url, live.ids, live, n, 1e9, 1e9, stats, arrive_over=arrive,
                                           stop=ready))
    deadline = time.monotonic() + arrive + 120
    while len(stats.page_s) < n and time.monotonic() < deadline:  # every page drawn: only polls from now on
        await asyncio.sleep(0.2)
    await asyncio.sleep(settle)
    cpu0, ticks0, t0 = server.cpu_seconds(), stats.ticks, time.monotonic()
    await asyncio.sleep(window)
    elapsed = time.monotonic() - t0
    result = (server.cpu_seconds() - cpu0) / elapsed, (stats.ticks - ticks0) / elapsed
    ready.set()
    await clients
    return result


def _p95(values: list[float]) -> float:
    return percentile(values, 95) if values else float("nan")


def section(quick: bool = False, learners: int = 200, runs: int = 10, browsers: int = 20, seconds: float = 120.0,
            small: int = 20) -> str:
    window = 30.0
    if quick:  # a smoke test of the harness (python -m bench --quick)
        learners, runs, browsers, seconds, small, window = 6, 2, 0, 20.0, 2, 8.0
    full = measure(learners, runs, browsers, seconds, watchers=(small, learners), window=window)
    s = full["stats"]
    page_p95, stale_p95 = _p95(s.page_s), _p95(s.stale_s)
    # The cost of one more watcher: the same server with `small`, then `learners` sessions that only
    # watch; the difference in server CPU over the difference in polls answered per second.
    (cores_small, rate_small), (cores_big, rate_big) = full["watching"][small], full["watching"][learners]
    extra_ms = (cores_big - cores_small) * 1000 / max(rate_big - rate_small, 1e-9)
    per_tick_ms = cores_big * 1000 / max(rate_big, 1e-9)
    locked = full["locked"]
    page_median = statistics.median(s.page_s) if s.page_s else float("nan")
    rows = [
        ["page time p95 (s)", f"{page_p95:.2f}", f"≤ {TARGETS['page_p95_s']}", _met(page_p95 <= TARGETS["page_p95_s"])],
        ["live-chart staleness p95 (s)", f"{stale_p95:.2f}", f"≤ {TARGETS['stale_p95_s']}",
         _met(stale_p95 <= TARGETS["stale_p95_s"])],
        ["server CPU (cores)", f"{full['cores']:.2f}", f"≤ {TARGETS['server_cores']}",
         _met(full["cores"] <= TARGETS["server_cores"])],
        [f"server CPU per extra watcher tick (ms), {small} → {learners} watchers", f"{extra_ms:.2f}",
         f"≤ {TARGETS['watcher_ms']}", _met(extra_ms <= TARGETS["watcher_ms"])],
        ['"database is locked"', str(locked), "0", _met(locked == 0)],
    ]
    lines = [
        SECTION, "",
        f"Measured by `python -m bench.classroom` on {time.strftime('%Y-%m-%d')}: one `streamlit run app.py`; "
        f"{learners} simulated learners (protocol-level clients speaking Streamlit's websocket protocol on "
        f"loopback, no rendering, each polling the live-chart feed as the page's component does) and {browsers} "
        f"headless Chromium sessions, each watching one of {runs} live runs on the Train page and changing page "
        f"about every 30 s (Train, then Runs, Home, Lessons or Data, then Train), for {seconds:.0f} s. The "
        f"learners arrive evenly over the first 30 s, so that from then on the class is in its steady state (a "
        f"thirtieth of them change page each second). The runs are simulated (a writer stores each run's step "
        f"every 0.5 s, as a worker does): training itself runs in worker processes, not in the server.",
        "",
        f"The cost of one more watcher is measured on the same server afterwards: {small}, then {learners} "
        f"learners open the Train page on a live run and stay; over {window:.0f} s after they have arrived, the "
        f"server's CPU rose from {cores_small:.3f} to {cores_big:.3f} cores while the polls it answered rose from "
        f"{rate_small:.0f} to {rate_big:.0f} per second (each watcher polls once a second). On average a poll "
        f"costs {per_tick_ms:.2f} ms with {learners} watchers, the views built once per new step for everyone "
        f"included.",
        "",
        md_table(["measure", "value", "target", "met"], rows), "",
        f"Page changes measured: {len(s.page_s)} (median {page_median:.2f} s); live-feed polls answered during the "
        f"class: {s.ticks} ({s.ticks / full['seconds']:.0f} per second); progress lines timed: {len(s.stale_s)}; "
        f"client errors: {len(s.errors)}" + (f" (first: `{s.errors[0]}`)" if s.errors else "") + f". The "
        f"browsers changed page {s.browser_pages} times ({s.browser_missed} changes missed while a browser was "
        f"still drawing) and polled the live feed {s.browser_polls} times; "
        + ("they ran at a small CPU share (a cgroup with 2 of the default 1024 shares), as the learners' own "
           "computers would, so that they did not take the cores from the server." if s.browsers_confined else
           "they shared the cores with the server at the same priority (no writable cgroup here)."), "",
        f"Machine: {os.cpu_count()} cores shared by the server, the learners' process ({full['clients_cores']:.2f} "
        f"cores: {learners} websocket clients, their polls and the runs' writer) and the browsers (a process of "
        f"their own); some task waited for a core {100 * (full['pressure'] or 0):.0f}% of the time (Linux CPU "
        f"pressure).", "",
        WHERE,
    ]
    return "\n".join(lines) + "\n"


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.classroom", description=__doc__.split("\n")[0])
    p.add_argument("--learners", type=int, default=200)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--browsers", type=int, default=20)
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--small", type=int, default=20, help="learners of the comparison load (per-watcher cost)")
    p.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = p.parse_args(argv)
    text = section(False, args.learners, args.runs, args.browsers, args.seconds, args.small)
    print(text)
    if not args.no_write:
        update_benchmarks(text, after="## Load")
    return 0


if __name__ == "__main__":
    sys.exit(main())
