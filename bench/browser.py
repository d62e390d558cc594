"""Browser and server helpers for the UI, memory and load benchmarks (and the load e2e test).

- ``LabServer``: a real ``streamlit run app.py`` on a free port, on a given lab home, with
  extra environment variables, its log file and its memory (``rss_kb`` / ``peak_rss_kb``).
- ``run_sessions``: N concurrent browser sessions (Playwright contexts in one headless
  Chromium) that each move through every page of the lab by its sidebar navigation,
  recording each page's response time and whatever went wrong (exception or error boxes,
  "database is locked", timeouts).
- ``percentile`` for the tables.

Playwright's async API drives the sessions (its sync API cannot share one browser between
threads); it runs in a thread of its own, so a caller that already uses the sync API, or
has an event loop, is not disturbed.
"""
from __future__ import annotations

import asyncio
import math
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.i18n import CATALOGUE
from pages.ui.frame import PAGES  # a plain list; importing pages.ui needs no running app

ROOT = Path(__file__).resolve().parent.parent

EN = CATALOGUE["en"]
# Chromium as the machine has it (Playwright's own browser download is not needed): the flags keep a
# headless, sandbox-less browser from reaching out to the network on a closed machine.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    """The Chromium binary: ``LAB_CHROMIUM``, Debian's /usr/bin/chromium, or one on the PATH."""
    for candidate in (os.environ.get("LAB_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser"), shutil.which("google-chrome")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
VIEWPORT = {"width": 1280, "height": 900}
ERROR_SELECTOR = '[data-testid="stException"], [data-testid="stAlertContentError"]'
LOCKED = "database is locked"

# Ready = the script run (or fragment run) is over and the page's own title is the first
# heading, or, when the page failed, an error box shows and the previous page's heading is gone.
# The app root reports the run state in ``data-test-script-state``; the "Running..." status
# widget is no signal: it appears only 500 ms into a run.
_READY_JS = """([title, previous, errors]) => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  const h = document.querySelector('[data-testid="stMain"] h1');
  const heading = h ? h.innerText.trim() : null;
  return heading === title || (heading !== previous && !!document.querySelector(errors));
}"""
_STATE_JS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  const h = document.querySelector('[data-testid="stMain"] h1');
  const main = document.querySelector('[data-testid="stMain"]');
  return 'heading ' + JSON.stringify(h ? h.innerText.trim() : null) + ', script state ' +
    JSON.stringify(app ? app.getAttribute('data-test-script-state') : null) + ', connection ' +
    JSON.stringify(app ? app.getAttribute('data-test-connection-state') : null) + ', url ' + location.pathname +
    ', main text ' + JSON.stringify(main ? main.innerText.slice(0, 160) : null);
}"""
_CHECK_JS = """([selector, locked]) => {
  const boxes = Array.from(document.querySelectorAll(selector)).map(e => e.innerText.slice(0, 300));
  const text = document.body ? document.body.innerText : '';
  return {boxes: boxes, locked: text.includes(locked)};
}"""


@dataclass(frozen=True)
class LabPage:
    url: str  # the URL path ("" for Home)
    nav: str  # its label in the sidebar navigation
    title: str  # its h1


def lab_pages() -> list[LabPage]:
    """Every page of the lab's navigation (pages.ui.PAGES), with its English label and title."""
    out = []
    for _section, page_key, _script, url, _icon in PAGES:
        name = page_key.split(".", 1)[1]
        out.append(LabPage("" if url == "home" else url, EN[page_key], EN[f"{name}.title"]))
    return out


def require_chromium() -> str:
    path = chromium_path()
    if path is None:
        raise RuntimeError("Chromium is needed for this benchmark: apt-get install chromium (see README)")
    return path


def proc_memory_kb(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process in kB, from /proc (Linux; psutil would add a
    dependency for two numbers the kernel already reports, peak included)."""
    out = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0])
    return out


_TICKS = os.sysconf("SC_CLK_TCK")


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(entry))
    return kids


def cpu_by_role(root: int | None = None) -> dict[str, float]:
    """CPU seconds (user + system) used so far by the live descendants of ``root`` (this process),
    by role: "server" (streamlit), "worker" (core.train), "browser" (Chromium and Playwright's
    driver). Differences of two readings give each role's share while something ran."""
    kids, out = _children(), {"server": 0.0, "worker": 0.0, "browser": 0.0}
    todo = list(kids.get(root or os.getpid(), []))
    while todo:
        pid = todo.pop()
        todo += kids.get(pid, [])
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        role = "server" if "streamlit run" in cmd else "worker" if "core.train" in cmd else "browser"
        out[role] += (int(fields[11]) + int(fields[12])) / _TICKS
    return out


class LabServer:
    """``streamlit run app.py`` on a free port with ``PYTORCH_LAB_HOME=home``; use as a context manager."""

    def __init__(self, home: Path, env: dict[str, str] | None = None, timeout: float = 120,
                 log_name: str = "server.log") -> None:
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.home / log_name  # replicas sharing a home keep a log each
        full_env = {**os.environ, "PYTORCH_LAB_HOME": str(self.home), "PYTORCH_LAB_DOWNLOAD": "0", **(env or {})}
        self._log = open(self.log_path, "w")  # noqa: SIM115 - open for the server's life, closed by stop()
        self.proc = subprocess.Popen(
            # No file watcher: the measured server runs the code it started with, whatever else
            # changes in this checkout meanwhile (a development aid, not part of the lab).
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(self.port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--server.fileWatcherType", "none"],
            cwd=ROOT, env=full_env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while not self.healthy():
            if self.proc.poll() is not None:
                self._log.close()
                raise RuntimeError(f"streamlit exited: {self.log_text()[-2000:]}")
            if time.time() > deadline:
                self.stop()
                raise RuntimeError(f"streamlit did not become healthy within {timeout:.0f} s")
            time.sleep(0.3)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss_kb(self) -> int:
        return proc_memory_kb(self.pid)["VmRSS"]

    def peak_rss_kb(self) -> int:
        return proc_memory_kb(self.pid)["VmHWM"]

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process has used so far."""
        with open(f"/proc/{self.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if not self._log.closed:
            self._log.close()

    def __enter__(self) -> LabServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass
class LoadResult:
    """What the sessions saw: response seconds per page, and every problem, as text."""
    times: dict[str, list[float]] = field(default_factory=dict)  # page (nav label) -> seconds per visit
    cpu: dict[str, list[float]] = field(default_factory=dict)  # page -> server CPU seconds per visit (cpu_probe)
    first_load: list[float] = field(default_factory=list)  # goto of the start page, per session
    error_boxes: list[str] = field(default_factory=list)  # "session 3, Data: <text>"
    locked: list[str] = field(default_factory=list)  # pages whose text said "database is locked"
    timeouts: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # a session that broke off (exception)
    rounds: list[int] = field(default_factory=list)  # rounds through all pages, per session
    probe: object = None  # what ``probe()`` returned with every session still open
    wall_s: float = 0.0

    @property
    def visits(self) -> int:
        return sum(len(v) for v in self.times.values())

    @property
    def problems(self) -> list[str]:
        return self.error_boxes + self.locked + self.timeouts + self.failures


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear interpolation (as numpy's default)."""
    if not values:
        return math.nan
    v = sorted(values)
    k = (len(v) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def run_sessions(base_url: str, sessions: int, *, start_path: str | Callable[[int], str] = "/", min_rounds: int = 1,
                 max_rounds: int = 1, keep_going: Callable[[], bool] | None = None, think_s: float = 0.3,
                 page_timeout_s: float = 120, deadline_s: float = 600, probe: Callable[[], object] | None = None,
                 pages: list[LabPage] | None = None, cpu_probe: Callable[[], float] | None = None) -> LoadResult:
    """``sessions`` browser contexts, concurrently, each opening ``start_path`` (or ``start_path(i)``
    for session i) and then clicking through every lab page in the sidebar (each session starts
    its round at a different page, so they spread over the pages), ``min_rounds`` times, and more
    rounds (up to ``max_rounds``, started within ``deadline_s``) while ``keep_going()`` says so.
    ``probe()`` is called once every session has finished walking, with all of them still open
    (e.g. to read the server's memory). ``cpu_probe()`` (the server's CPU seconds so far) is read
    around each visit: the server CPU a page costs, meaningful with one session."""
    result = LoadResult()
    box: dict[str, BaseException] = {}

    def target() -> None:
        try:
            asyncio.run(_main(base_url, sessions, start_path, min_rounds, max_rounds, keep_going, think_s,
                              page_timeout_s, deadline_s, probe, pages or lab_pages(), result, cpu_probe))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["exc"] = exc

    thread = threading.Thread(target=target, name="lab-load-sessions")
    thread.start()
    thread.join()
    if "exc" in box:
        raise box["exc"]
    return result


async def _main(base_url, sessions, start_path, min_rounds, max_rounds, keep_going, think_s, page_timeout_s,
                deadline_s, probe, pages, result: LoadResult, cpu_probe) -> None:
    from playwright.async_api import async_playwright

    t0 = time.perf_counter()
    deadline = time.monotonic() + deadline_s
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=require_chromium(), headless=True, args=CHROMIUM_ARGS)
        try:
            contexts = [await browser.new_context(viewport=VIEWPORT) for _ in range(sessions)]
            await asyncio.gather(*(
                _walk(i, ctx, base_url, start_path, min_rounds, max_rounds, keep_going, think_s, page_timeout_s,
                      deadline, pages, result, cpu_probe) for i, ctx in enumerate(contexts)))
            result.wall_s = time.perf_counter() - t0
            if probe is not None:
                result.probe = probe()
            for ctx in contexts:
                await ctx.close()
        finally:
            await browser.close()


async def _ready(page, title: str, timeout_s: float, previous: str | None = None) -> None:
    await page.wait_for_function(_READY_JS, arg=[title, previous, ERROR_SELECTOR], polling=50,
                                 timeout=timeout_s * 1000)


async def _check(page, who: str, result: LoadResult) -> None:
    seen = await page.evaluate(_CHECK_JS, [ERROR_SELECTOR, LOCKED])
    result.error_boxes += [f"{who}: {text}" for text in seen["boxes"]]
    if seen["locked"]:
        result.locked.append(f"{who}: the page says '{LOCKED}'")


async def _walk(i, ctx, base_url, start_path, min_rounds, max_rounds, keep_going, think_s, page_timeout_s,
                deadline, pages: list[LabPage], result: LoadResult, cpu_probe=None) -> None:
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    page = await ctx.new_page()
    page.set_default_timeout(page_timeout_s * 1000)
    if callable(start_path):
        start_path = start_path(i)
    start = next((p for p in pages if p.url == start_path.strip("/").split("?")[0]), pages[0])
    rounds = 0
    try:
        t = time.perf_counter()
        await page.goto(base_url + start_path)
        await _ready(page, start.title, page_timeout_s)
        result.first_load.append(time.perf_counter() - t)
        await _check(page, f"session {i}, {start.nav}", result)
        nav = await page.locator('[data-testid="stSidebarNav"]').inner_text()
        if pages[0].nav not in nav:  # e.g. Streamlit's legacy pages/ listing (file names) instead of the lab's
            result.failures.append(f"session {i}: the first page came without the lab's navigation: {nav[:120]!r}")
            return
        current = start
        order = pages[i % len(pages):] + pages[:i % len(pages)]  # sessions start on different pages
        while rounds < min_rounds or (rounds < max_rounds and time.monotonic() < deadline
                                      and (keep_going is None or keep_going())):
            for target in order:
                if target == current:
                    continue
                who = f"session {i}, {target.nav}"
                c = cpu_probe() if cpu_probe else 0.0
                t = time.perf_counter()
                try:
                    await page.locator('[data-testid="stSidebarNav"]').get_by_text(target.nav, exact=True).click()
                    await _ready(page, target.title, page_timeout_s, current.title if current else None)
                except PlaywrightTimeout:
                    seen = await page.evaluate(_STATE_JS)
                    result.timeouts.append(f"{who}: not ready after {page_timeout_s:.0f} s (showing {seen})")
                    await _check(page, who, result)
                    if os.environ.get("LAB_BENCH_SHOTS"):  # where to put screenshots of stuck pages
                        shot = Path(os.environ["LAB_BENCH_SHOTS"]) / f"stuck-{i}-{target.url or 'home'}.png"
                        await page.screenshot(path=str(shot), full_page=True)
                    current = None
                    continue
                result.times.setdefault(target.nav, []).append(time.perf_counter() - t)
                if cpu_probe:
                    result.cpu.setdefault(target.nav, []).append(cpu_probe() - c)
                current = target
                await _check(page, who, result)
                await asyncio.sleep(think_s)
            rounds += 1
    except Exception as exc:  # noqa: BLE001 - the session broke off: count it, let the others go on
        result.failures.append(f"session {i}: {type(exc).__name__}: {str(exc)[:300]}")
    finally:
        result.rounds.append(rounds)
