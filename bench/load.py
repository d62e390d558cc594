"""The lab under load (BENCHMARKS.md section "## Load"): many browser sessions while runs train.

``section(quick)`` returns the section (markdown). Run alone::

    python -c "import bench.load as l; print(l.section(quick=True))"

A real ``streamlit run app.py`` on a fresh lab home; two training runs are started through
``core.runs.jobs.JobManager`` in that home (as the Train page starts them; under the default job
cap of this machine the second waits in the queue). Meanwhile N browser sessions
(Playwright contexts in one headless Chromium) open the Train page watching one of the runs,
then each click through every page of the lab in the sidebar, round after round while a run
is still going. Each page's response time is the time from the click until the page's title
is shown and its script run is over. Checked: no exception or error box on any page, no
"database is locked" in any page, the server log or a worker log, every run completes, the
server still answers.

``run_load`` does the work and returns the facts; tests/e2e/test_load_e2e.py runs a small
version of it and asserts on them.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.browser import LOCKED, LabServer, LoadResult, cpu_by_role, lab_pages, percentile, run_sessions
from core.training.config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent

ACTIVE = ("queued", "running")


@dataclass
class LoadReport:
    sessions: int
    cap: int
    config: TrainConfig
    result: LoadResult
    statuses: dict[str, str]  # run id -> final status
    errors: dict[str, str | None] = field(default_factory=dict)  # run id -> the run's error text
    queued_at_start: int = 0  # runs waiting for a slot right after both were started
    log_problems: list[str] = field(default_factory=list)  # "database is locked" / tracebacks in logs
    healthy_after: bool = False  # the server's health endpoint answered after the load
    page_after: bool = False  # and a fresh session could still open a page
    peak_rss_kb: int = 0
    seconds: float = 0.0
    alone: LoadResult | None = None  # one session after the load (see run_load)
    run_spans: list[tuple[float, float]] = field(default_factory=list)  # each run's (start, end), s into the walk
    cores: dict[str, float] = field(default_factory=dict)  # average cores busy during the walk, by role
    load: tuple[float, float] = (math.nan, math.nan)  # the machine's 1-minute load average before and after

    @property
    def problems(self) -> list[str]:
        runs = [f"run {r} ended {s}: {self.errors.get(r)}" for r, s in self.statuses.items() if s != "completed"]
        return self.result.problems + self.log_problems + runs + \
            ([] if self.healthy_after and self.page_after else ["the server stopped serving after the load"])


def tracebacks(log: str) -> list[str]:
    """Each Python traceback in a log, as its last frame and the exception line."""
    out, lines = [], log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            j = i + 1
            while j < len(lines) and (lines[j].startswith(" ") or not lines[j].strip()):
                j += 1
            frames = [ln.strip() for ln in lines[i + 1:j] if ln.strip().startswith("File ")]
            out.append((frames[-1] + ": " if frames else "") + (lines[j].strip() if j < len(lines) else "?"))
    return out


def run_config(quick: bool) -> TrainConfig:
    """A short run of the default recipe (lab_cnn on the bundled digits): in the full size the two
    runs, one after the other, train through most of the sessions' first round."""
    if quick:
        return TrainConfig(epochs=1, limit_train=256, limit_test=200, seed=0)
    return TrainConfig(epochs=3, limit_test=500, seed=0)


def run_load(sessions: int, config: TrainConfig, *, cap: int | None = None, min_rounds: int = 1, max_rounds: int = 1,
             walk_deadline_s: float = 240, page_timeout_s: float = 120, run_timeout_s: float = 300,
             think_s: float = 0.3, home: Path | None = None, alone_rounds: int = 1) -> LoadReport:
    """Start the server and two runs, let ``sessions`` browsers walk the lab, wait for the runs."""
    from core.runs.jobs import JobManager

    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="lab-load-") as tmp:
        home = Path(home or tmp)
        env = {"PYTORCH_LAB_JOB_CAP": str(cap)} if cap is not None else {}
        with LabServer(home, env=env) as srv:
            jobs = JobManager(srv.home, cap=cap)
            ids = [jobs.start(config, name=f"load run {i + 1}") for i in range(2)]
            queued = sum(1 for r in ids if jobs.store.run(r)["status"] == "queued" and
                         jobs.store.run(r)["launched"] is None)
            store = jobs.store

            def still_training() -> bool:
                return any(store.run(r)["status"] in ACTIVE for r in ids)

            # Each session opens the Train page watching one of the runs (its live view stays on
            # for the session's later visits to Train), then walks every page.
            walk_start, server_cpu0 = time.time(), srv.cpu_seconds()
            result = run_sessions(srv.url, sessions, start_path=lambda i: f"/train?run={ids[i % 2]}",
                                  min_rounds=min_rounds, max_rounds=max_rounds, keep_going=still_training,
                                  think_s=think_s, page_timeout_s=page_timeout_s, deadline_s=walk_deadline_s,
                                  probe=lambda: (srv.peak_rss_kb(), cpu_by_role(), srv.cpu_seconds()))
            for r in ids:
                with contextlib.suppress(TimeoutError):  # reported as not completed below
                    jobs.wait(r, timeout=run_timeout_s, interval=1.0)
            runs = {r: store.run(r) for r in ids}
            report = LoadReport(sessions, jobs.cap, config, result, {r: v["status"] for r, v in runs.items()},
                                {r: v["error"] for r, v in runs.items()}, queued)
            report.run_spans = [((v["started"] or walk_start) - walk_start, (v["finished"] or walk_start) - walk_start)
                                for v in runs.values()]
            report.healthy_after = srv.healthy()
            # Afterwards one session alone, twice through every page: the server still serves, and
            # the second round gives each page's response time and server CPU without load.
            report.alone = run_sessions(srv.url, 1, start_path="/runs", min_rounds=alone_rounds,
                                        max_rounds=alone_rounds, page_timeout_s=page_timeout_s,
                                        cpu_probe=srv.cpu_seconds)
            report.page_after = not report.alone.problems and len(report.alone.first_load) == 1
            peak, roles, server_cpu1 = result.probe
            report.peak_rss_kb = max(peak, srv.peak_rss_kb())
            # Cores busy on average during the walk: Chromium (all sessions) and the server process.
            report.cores = {"browsers": roles["browser"] / max(result.wall_s, 1e-9),
                            "server": (server_cpu1 - server_cpu0) / max(result.wall_s, 1e-9)}
            srv.stop()
            logs = {"server log": srv.log_text()}
            logs.update({f"worker log of {r}": jobs.log_tail(r, 200_000) for r in ids})
            for name, text in logs.items():
                if LOCKED in text:
                    report.log_problems.append(f"{name}: '{LOCKED}'")
                report.log_problems += [f"{name}: {tb}" for tb in tracebacks(text)]
        report.seconds = time.perf_counter() - t0
        report.load = (load0, os.getloadavg()[0])
    return report


def _s(v: float) -> str:
    return f"{v:.2f}"


def section(quick: bool = False) -> str:
    sessions = 3 if quick else 20
    report = run_load(sessions, run_config(quick), max_rounds=2, walk_deadline_s=60 if quick else 120,
                      alone_rounds=2)
    r, alone = report.result, report.alone or LoadResult()
    rows = []

    def last(values: dict, page: str) -> str:
        return _s(values[page][-1]) if values.get(page) else "–"

    for page in lab_pages():
        times = r.times.get(page.nav, [])
        if times:
            rows.append([page.nav, len(times), _s(percentile(times, 50)), _s(percentile(times, 95)), _s(max(times)),
                         last(alone.times, page.nav), last(alone.cpu, page.nav)])
    everything = [t for v in r.times.values() for t in v]
    rows.append(["all pages", len(everything), _s(percentile(everything, 50)), _s(percentile(everything, 95)),
                 _s(max(everything) if everything else float("nan")),
                 _s(sum(v[-1] for v in alone.times.values())), _s(sum(v[-1] for v in alone.cpu.values()))])
    rows.append(["first load (fresh server, Train watching a run)", len(r.first_load), _s(percentile(r.first_load, 50)),
                 _s(percentile(r.first_load, 95)), _s(max(r.first_load) if r.first_load else float("nan")), "", ""])
    from bench.common import md_table

    def listed(items: list[str]) -> str:
        if not items:
            return "none"
        return f"**{len(items)}**: " + "; ".join(items[:5]) + (" …" if len(items) > 5 else "")

    cfg = report.config
    completed = sum(1 for s in report.statuses.values() if s == "completed")
    lines = [
        "## Load", "",
        f"{report.sessions} concurrent browser sessions (Playwright contexts in one headless Chromium, on the same "
        f"machine as the server) against one `streamlit run app.py`, while 2 training runs (lab_cnn on the bundled "
        f"digits, {cfg.limit_train or 7000} samples, {cfg.epochs} epoch(s), started through "
        f"`core.runs.jobs.JobManager`; job cap "
        f"{report.cap}, so {report.queued_at_start} waited in the queue) train. Each session opens the Train page "
        "watching one of the runs, then clicks through every page in the sidebar, round after round while a run "
        f"is going (rounds per session: {min(r.rounds or [0])}–{max(r.rounds or [0])}). Response time = click → "
        "the page's title shown and its script run over (the app's script state, not the status widget, which "
        "only shows after 500 ms). Seconds:", "",
        md_table(["page", "visits", "p50 s", "p95 s", "max s", "alone s", "server CPU s (alone)"], rows), "",
        "\"Alone\": the same server right after the load, one session's second round through the pages, and the "
        "server CPU time that visit cost (the sum row: one round). Under load every page run of every session "
        "shares one server process (Python runs one thread at a time) and the machine's cores with the "
        f"{report.sessions} browsers and the training worker, so response times grow about with sessions × CPU per "
        "page (the browsers' share is the larger one here: see the cores below). The first load is every "
        "session's first request to a server that has just started: it includes the server's one-time imports "
        "(torch, plotly, ...) and each browser loading Streamlit's frontend.", "",
        f"- Exception or error boxes: {listed(r.error_boxes)}",
        f"- \"{LOCKED}\" in a page: {listed(r.locked)}; in the server or worker logs, or a traceback there: "
        f"{listed(report.log_problems)}",
        f"- Pages not ready within the timeout: {listed(r.timeouts)}; sessions that broke off: {listed(r.failures)}",
        f"- Runs completed: **{completed} of {len(report.statuses)}**"
        + ("" if completed == len(report.statuses) else f" ({report.statuses})") + "; they trained "
        + ", ".join(f"{a:.0f}–{b:.0f} s" for a, b in report.run_spans) + f" into the {r.wall_s:.0f} s walk",
        f"- Server still serving after the load (health check and a fresh page): "
        f"{'yes' if report.healthy_after and report.page_after else '**no**'}; its peak RSS: "
        f"{report.peak_rss_kb / 1024:.0f} MB",
        f"- Walk {r.wall_s:.0f} s, {r.visits} page visits; cores busy on average meanwhile: the browsers "
        f"{report.cores.get('browsers', float('nan')):.2f}, the server {report.cores.get('server', float('nan')):.2f} "
        f"(of {os.cpu_count()}; 1-minute load average {report.load[0]:.1f} before, {report.load[1]:.1f} after); whole "
        f"measurement {report.seconds:.0f} s" + ("; quick mode" if quick else ""),
        "",
        "**Result: " + ("all checks passed." if not report.problems else
                         f"{len(report.problems)} problem(s), listed above.") + "**",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(section(quick="--quick" in sys.argv))
