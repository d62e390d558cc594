"""UI cost and memory of the lab's server (BENCHMARKS.md sections "## UI cost" and "## Memory").

``section(quick)`` returns both sections (markdown). Run alone::

    python -c "import bench.ui as u; print(u.section(quick=True))"

1. Training throughput of a background run (started through ``core.runs.jobs.JobManager`` in the
   lab home of a real ``streamlit run app.py``, as the Train page starts it) while a headless
   Chromium watches it on the Train page (its live component polls the shared feed and
   redraws progress and four charts every second) vs no browser open. Runs alternate
   (watched, unwatched, unwatched, watched, ...),
   7 per side after a warm-up pair, after waiting for a quiet machine; throughput is the run's
   training samples over the summed ``epoch_seconds`` metrics in the store; the spread and the
   paired ratios are reported. Target: watched >= 0.95x unwatched.
2. Server-side time of drawing a watched run in a page run: ``train_views.watch`` +
   ``controls`` + the status check for a finished run, run through AppTest, so the store
   queries, the job poll, the shared live feed's view, the plotly figures and their
   serialization into Streamlit's messages are all in the timing. Target: <= 50 ms. (A
   running run is not redrawn by its page: its component polls the feed, whose cost per
   poll the Classroom section measures.)
3. Memory: peak RSS (VmHWM) of the Streamlit server process, fresh for each case, with 1 and
   with 10 browser sessions open that each visited every page once.
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from bench.browser import CHROMIUM_ARGS, EN, LabServer, cpu_by_role, require_chromium, run_sessions
from bench.common import Contention, interleave, load_text, md_table, median, wait_for_quiet
from core.runs import view as V
from core.training.config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent

UNWATCHED, WATCHED = "no browser", "browser watching the Train page"
TICK_TARGET_MS = 50.0
RATIO_TARGET = 0.95
RUNS_PER_SIDE = 7
QUIET_WAIT_S = 900.0  # most seconds to wait for a quiet machine before the throughput runs


def run_config(quick: bool) -> TrainConfig:
    """The benchmark's run: the default recipe (lab_cnn, digits, batch 128), one short epoch."""
    return TrainConfig(epochs=1, limit_train=512 if quick else 3584, limit_test=500, seed=0)


def samples_per_s(store, run_id: str) -> float:
    """Training samples over the training seconds the worker logged (``epoch_seconds``)."""
    run = store.run(run_id)
    if run["status"] != "completed":
        raise RuntimeError(f"benchmark run {run_id} ended {run['status']}: {run.get('error')}")
    cfg = run["config"]
    n = V.train_samples(cfg)
    if n is None:
        raise RuntimeError(f"benchmark run {run_id} trained on an unknown dataset {cfg['dataset']!r}")
    seconds = store.metrics(run_id, ["epoch_seconds"])["value"].sum()
    return n * int(cfg["epochs"]) / float(seconds)


# ---------------------------------------------------------------- 1. throughput, watched or not
def train_watching_cpu(jobs, run_id: str, timeout: float = 600) -> dict[str, float]:
    """Wait for the run to end; the CPU share (cores) each role used while it trained."""
    from core.runs.store import FINISHED

    deadline = time.monotonic() + timeout
    first = last = None
    while True:
        jobs.poll()
        status = jobs.store.run(run_id)["status"]
        if status in FINISHED:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"benchmark run {run_id} still {status} after {timeout:.0f} s")
        if status == "running":  # a reading while the worker is alive (its CPU is gone once it exits)
            last = (time.monotonic(), cpu_by_role())
            first = first or last
        time.sleep(0.5)
    jobs.wait(run_id, timeout=60)
    if first is None or last is first:
        return {}
    span = last[0] - first[0]
    return {role: (last[1][role] - first[1][role]) / span for role in last[1]}


def throughput(quick: bool) -> dict:
    from playwright.sync_api import sync_playwright

    from core.runs.jobs import JobManager

    config = run_config(quick)
    watched_ok: list[bool] = []
    cpu: dict[str, list[dict]] = {UNWATCHED: [], WATCHED: []}
    with tempfile.TemporaryDirectory(prefix="lab-bench-ui-") as tmp, LabServer(Path(tmp)) as srv:
        jobs = JobManager(srv.home)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=require_chromium(), headless=True, args=CHROMIUM_ARGS)

            def unwatched() -> float:
                run_id = jobs.start(config, name="bench unwatched")
                cpu[UNWATCHED].append(train_watching_cpu(jobs, run_id))
                return samples_per_s(jobs.store, run_id)

            def watched() -> float:
                run_id = jobs.start(config, name="bench watched")
                ctx = browser.new_context(viewport={"width": 1280, "height": 900})
                page = ctx.new_page()
                page.goto(f"{srv.url}/train?run={run_id}")
                page.wait_for_selector('[data-testid="stProgress"], .lab-live-text', timeout=120_000)
                cpu[WATCHED].append(train_watching_cpu(jobs, run_id))
                # The page kept watching: its status line (the live component's, then the finished page's
                # progress bar) says the run completed, without a reload.
                try:
                    page.locator('[data-testid="stProgress"], .lab-live-text').filter(
                        has_text=EN["status.completed"]).first.wait_for(timeout=30_000)
                    watched_ok.append(True)
                except Exception as exc:  # noqa: BLE001 - any failure to see the end counts as "did not keep watching"
                    shown = page.locator('[data-testid="stProgress"], .lab-live-text, .lab-live-caption')
                    print(f"watched run {run_id}: the page did not show its end ({type(exc).__name__}); it showed "
                          f"{shown.all_inner_texts()[:4]}"[:800], file=sys.stderr)  # for whoever looks into it
                    watched_ok.append(False)
                ctx.close()
                return samples_per_s(jobs.store, run_id)

            quiet, load_before, waited = wait_for_quiet(0 if quick else QUIET_WAIT_S,
                                                        log=lambda t: print(f"[ui] {t}", file=sys.stderr))
            with Contention() as busy:
                values = interleave({UNWATCHED: unwatched, WATCHED: watched},
                                    repeats=1 if quick else RUNS_PER_SIDE, warmup=0 if quick else 1)
            browser.close()
        # Runs for the tick benchmark: the last run, and a pair as the A/B view shows it.
        done = [r["id"] for r in jobs.store.runs(status="completed")]
        tick = draw_time(srv.home, done, quick)
    skip = 0 if quick else 1  # the warm-up pair
    shares = {case: {role: median(c[role] for c in runs[skip:] if c) for role in ("worker", "server", "browser")}
              for case, runs in cpu.items() if any(runs[skip:])}
    return {"values": values, "watched_ok": watched_ok, "config": config, "tick": tick, "cpu": shares,
            "machine": {"quiet": quiet, "before": load_before, "waited": waited, "pressure": busy.pressure}}


# ---------------------------------------------------------------- 2. one draw of a watched run
def _tick_script(run_ids: list[str], fresh: bool = False) -> None:
    """The body of the Train page's live part (pages/train.py ``live``), timed; ``fresh``: with the
    shared live feed's views emptied first (the draw that builds the view and its charts)."""
    import time

    import streamlit as st

    from pages.ui import train_views as W
    from pages.ui.state import lab_store

    if fresh:
        W.live_feed()[1].clear()
    t0, c0 = time.perf_counter(), time.thread_time()
    W.watch(run_ids)
    W.controls(run_ids[-1])
    any((lab_store().get_run(r) or {}).get("status") in ("queued", "running") for r in run_ids)
    st.session_state["bench_tick_ms"] = (time.perf_counter() - t0) * 1000
    st.session_state["bench_tick_cpu_ms"] = (time.thread_time() - c0) * 1000


@contextmanager
def _lab_home(home: Path):
    """Point this process's lab at ``home`` (AppTest runs the page code in-process); restore after.
    The page code also sets torch's threads to the server's share: restored too."""
    import torch

    old_env, old_threads = os.environ.get("PYTORCH_LAB_HOME"), torch.get_num_threads()
    os.environ["PYTORCH_LAB_HOME"] = str(home)
    try:
        yield
    finally:
        if old_env is None:
            os.environ.pop("PYTORCH_LAB_HOME", None)
        else:
            os.environ["PYTORCH_LAB_HOME"] = old_env
        torch.set_num_threads(old_threads)


def long_run(store, steps: int = 9380, epochs: int = 20) -> str:
    """A stored, completed run with the metrics of a long one (full MNIST, batch 128, 20 epochs)."""
    import random

    cfg = TrainConfig(dataset="digits8k", epochs=epochs, batch_size=128).to_dict()
    run_id = store.create_run(cfg, name="bench long run", status="completed", kind="job")
    rng = random.Random(0)
    rows, per_epoch = [], steps // epochs
    for step in range(1, steps + 1):
        epoch = (step - 1) // per_epoch + 1
        rows += [(step, epoch, "loss", 2.3 * 0.999 ** step + rng.random() * 0.05), (step, epoch, "lr", 1e-3),
                 (step, epoch, "grad_norm", rng.random()), (step, epoch, "samples_per_s", 2000 + rng.random() * 100)]
        if step % per_epoch == 0:
            rows += [(step, epoch, name, rng.random()) for name in
                     ("train_loss", "train_acc", "test_loss", "test_acc", "epoch_seconds")]
    store.log_metrics(run_id, rows)
    store.update_run(run_id, step=steps, epoch=epochs)
    return run_id


def draw_time(home: Path, completed: list[str], quick: bool) -> list[tuple[str, float, float, float, float, int]]:
    """(case, median wall ms and CPU ms of a tick that builds the charts, of a tick that finds them built
    (another session's tick, or this one's with no new rows), ticks) for one run, an A/B pair and a long run."""
    from streamlit.testing.v1 import AppTest

    from core.runs.store import SQLiteRunStore

    store = SQLiteRunStore(home)
    long_id = long_run(store)
    cases = [(f"one run ({len(store.metrics(completed[0]))} metric rows)", [completed[0]])]
    if len(completed) >= 2:
        cases.append(("A/B pair (two runs)", completed[:2]))
    cases.append((f"long run ({len(store.metrics(long_id))} metric rows, downsampled to "
                  f"{V.MAX_POINTS} points per curve)", [long_id]))
    ticks = 5 if quick else 30
    out = []
    with _lab_home(home):
        for name, ids in cases:
            built = AppTest.from_function(_tick_script, args=(ids, True), default_timeout=60)
            shared = AppTest.from_function(_tick_script, args=(ids, False), default_timeout=60)
            times: dict[str, tuple[list[float], list[float]]] = {"built": ([], []), "shared": ([], [])}
            for i in range(ticks + 2):
                for key, at in (("built", built), ("shared", shared)):  # a session builds, the next finds it
                    at.run()
                    if at.exception:
                        raise RuntimeError(f"the page raised: {[e.value for e in at.exception]}")
                    if i >= 2:  # the first runs import and warm caches
                        times[key][0].append(at.session_state["bench_tick_ms"])
                        times[key][1].append(at.session_state["bench_tick_cpu_ms"])
            out.append((name, median(times["built"][0]), median(times["built"][1]), median(times["shared"][0]),
                        median(times["shared"][1]), ticks))
    store.close()
    return out


# ---------------------------------------------------------------- 3. memory
def memory(quick: bool) -> list[tuple[int, int, int, int, float]]:
    """(sessions, idle RSS, RSS with the sessions open, peak RSS (kB), walk seconds) per case."""
    out = []
    for sessions in ((1, 3) if quick else (1, 10)):
        with tempfile.TemporaryDirectory(prefix="lab-bench-mem-") as tmp, LabServer(Path(tmp)) as srv:
            idle = srv.rss_kb()
            result = run_sessions(srv.url, sessions, think_s=0.2,
                                  probe=lambda: (srv.rss_kb(), srv.peak_rss_kb()))
            if result.problems:
                raise RuntimeError(f"memory run with {sessions} sessions: {result.problems[:5]}")
            now, peak = result.probe
            out.append((sessions, idle, now, peak, result.wall_s))
    return out


# ---------------------------------------------------------------- report
def _cores(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _mb(kb: int) -> str:
    return f"{kb / 1024:.0f}"


def _spread(values: list[float]) -> str:
    """min – lower quartile – upper quartile – max of a few runs."""
    if len(values) < 4:
        return f"{min(values):.0f} – {max(values):.0f}"
    q1, _, q3 = statistics.quantiles(values, n=4)
    return f"{min(values):.0f} – {q1:.0f} – {q3:.0f} – {max(values):.0f}"


def _miss_reason(ratio: float, values: dict) -> str:
    """Why a missed ratio was missed, from the runs themselves (nothing assumed)."""
    if ratio >= RATIO_TARGET:
        return ""
    lo_w, hi_w = min(values[WATCHED]), max(values[WATCHED])
    lo_u, hi_u = min(values[UNWATCHED]), max(values[UNWATCHED])
    overlap = hi_w >= lo_u and hi_u >= lo_w
    return (f" The watched runs ranged {lo_w:.0f}–{hi_w:.0f} samples/s and the unwatched {lo_u:.0f}–{hi_u:.0f}"
            + ("; the ranges overlap, so with this few runs the medians' gap is within the run-to-run noise of "
               "this 2-vCPU machine (rerun the section to see it move)." if overlap else
               "; they do not overlap: the browser's drawing (Chromium's renderer and GPU processes, in the CPU "
               "column above) takes CPU time the single-threaded worker would otherwise get on this 2-vCPU "
               "machine.")
            + " The server's own share of a watched run is the draw below and the polls of the Classroom section.")


def section(quick: bool = False) -> str:
    t0 = time.perf_counter()
    load_start = os.getloadavg()[0]
    tp = throughput(quick)
    load = (load_start, os.getloadavg()[0])
    mem = memory(quick)
    values, cfg = tp["values"], tp["config"]
    base, watched = median(values[UNWATCHED]), median(values[WATCHED])
    ratio = watched / base
    n = len(values[UNWATCHED])
    shares = tp["cpu"]
    paired = [w / u for w, u in zip(values[WATCHED], values[UNWATCHED], strict=False)]
    machine = tp["machine"]
    pressure = machine["pressure"]
    lines = [
        "## UI cost", "",
        f"Training throughput of a background run started through `core.runs.jobs.JobManager` in the lab home of a "
        f"real `streamlit run app.py` (the default recipe, lab_fast on the bundled digits, {cfg.limit_train} "
        f"samples, batch "
        f"{cfg.batch_size}, one epoch, the worker's thread share), with a headless Chromium on the Train page "
        f"watching it (its live component polls the shared feed and redraws progress and four charts every "
        f"second) and with no browser open. "
        f"Watched and unwatched runs alternate; {n} of each{'' if quick else ' after one warm-up pair'}, medians. "
        "Samples/s = training samples / the `epoch_seconds` the worker logged.", "",
        md_table(["case", "samples/s (median)", "spread: min – quartiles – max", "runs (samples/s, in order)",
                  "CPU while training: worker / server / browser"],
                 [[k, f"{median(v):.0f}", _spread(v), ", ".join(f"{x:.0f}" for x in v),
                   " / ".join(_cores(shares.get(k, {}).get(role)) for role in ("worker", "server", "browser"))]
                  for k, v in values.items()]),
        "",
        "CPU is in cores (1.00 = one core busy), median over the runs: the watching browser (Chromium redrawing "
        "the charts) and the server's answers to its polls compete with the training worker only when the machine "
        "has no idle core for them; here server, worker and browser share "
        f"{os.cpu_count()} cores (the machine's 1-minute load average was {load[0]:.1f} at the start of this "
        f"section and {load[1]:.1f} at its end).",
        "",
        f"Watched / unwatched: **{ratio:.2f}×** (ratio of the medians; target ≥ {RATIO_TARGET}×: "
        f"{'met' if ratio >= RATIO_TARGET else 'missed'}); the {len(paired)} watched/unwatched pairs run next to "
        f"each other: median {median(paired):.2f}×, range {min(paired):.2f}–{max(paired):.2f}×. Every watched page "
        f"showed the run's completion live: {'yes' if all(tp['watched_ok']) else 'no'}."
        + _miss_reason(ratio, values), "",
        f"Machine: {'a quiet window was found' if machine['quiet'] else 'no quiet window came'} before the runs "
        f"(waited {machine['waited']:.0f} s; then {load_text(machine['before'])}); during the runs some task waited "
        f"for a core {'n/a' if pressure is None else f'{pressure * 100:.0f}%'} of the time (Linux CPU pressure)"
        + (": other work shared the cores, so both sides were slowed and the ratio is noisier than on a quiet "
           "machine." if pressure is not None and pressure > Contention.BUSY_PRESSURE else "."), "",
        "Server-side time of drawing a watched run in a page run: the body of the Train page's `live` part "
        "(`train_views.watch` + `controls` + the status check: job poll, store queries, the run's view from the "
        "shared live feed and its four plotly figures serialized into Streamlit's messages) for a finished run, "
        "run through AppTest in-process, median of the draws after two warm-up runs. The view of a run is built "
        "once per new metric row for every session (`core.runs.live_feed.LiveFeed`, one shared reader per run): "
        "the first session's draw builds it, every other session's draw (and every draw without new rows) finds "
        "it built and only serializes it. A running run is not redrawn by its page: its component polls the "
        "feed once a second (a poll's cost to the server: the Classroom section).", "",
        md_table(["watched", "ms per draw that builds (median)", "its CPU ms", "ms per draw, view already built",
                  "its CPU ms", "ticks", f"≤ {TICK_TARGET_MS:.0f} ms"],
                 [[name, f"{ms:.1f}", f"{cpu:.1f}", f"{ms2:.1f}", f"{cpu2:.1f}", k,
                   "yes" if ms <= TICK_TARGET_MS else "no"] for name, ms, cpu, ms2, cpu2, k in tp["tick"]]),
        "",
        "## Memory", "",
        "Resident memory of the Streamlit server process (a fresh server per case) after that many browser "
        "sessions (Playwright contexts in one Chromium) each visited every page of the lab once, "
        "concurrently; the sessions are still open when it is read. Peak = the kernel's high-water mark "
        "(VmHWM). Idle = the server before any session (torch not yet imported).", "",
        md_table(["sessions", "idle RSS MB", "RSS with the sessions open MB", "peak RSS MB", "walk s"],
                 [[s, _mb(i), _mb(nw), _mb(p), f"{w:.0f}"] for s, i, nw, p, w in mem]),
    ]
    if len(mem) == 2:
        per = (mem[1][3] - mem[0][3]) / max(1, mem[1][0] - mem[0][0])
        lines += ["", f"Each further session adds about {per / 1024:.0f} MB to the peak."]
    lines += ["", f"_(section measured in {time.perf_counter() - t0:.0f} s{'; quick mode' if quick else ''})_"]
    return "\n".join(lines)


if __name__ == "__main__":
    print(section(quick="--quick" in sys.argv))
