"""The live view of watched runs as one shared feed: built once per new data, served to every watcher.

Streamlit updates a page by rerunning its script (or a fragment of it) for each session: a
watcher's tick used to cost the server a fragment run, a store read and four plotly figures
marshalled into that session's messages, tens of milliseconds each (BENCHMARKS.md "Classroom").
Here the server builds a watched run's view at most once per ``min_interval`` seconds, and only
when the run has new rows or a new state: status and progress lines, the queue note, the four
live charts as plotly JSON. The result is kept as bytes with a version; the page's live-charts
component (``pages.ui.live_view``) polls it over HTTP (``pages.ui.live_http``) and redraws only
when the version changed. N watchers of one run cost one build per new data plus N cheap
lookups, and a watcher that is up to date gets a few bytes back.

No Streamlit here: the texts come from ``core.i18n`` in the requested language.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.utils import PlotlyJSONEncoder

from core.i18n import CATALOGUE, DEFAULT_LANGUAGE, t
from core.runs.doctor import Diagnosis, diagnose
from core.runs.queue import queue_place
from core.runs.store import RunRow, RunStore, check_run_id
from core.runs.trained import checkpoint_path
from core.runs.view import LiveCharts, first_step_since, live_figures, progress, total_steps

# What the live view draws (and the A/B summary reads); other metrics stay in the store.
WATCHED_METRICS = ("loss", "lr", "samples_per_s", "val_acc", "val_loss", "test_acc", "test_loss")
ACTIVE = ("queued", "running")
MAX_RUNS = 2  # one run, or an A/B pair


class FeedError(ValueError):
    """A feed request that cannot be answered as asked (bad run ids, language or smoothing)."""


@dataclass(frozen=True)
class FeedRequest:
    """A validated feed request: which runs, in which language, with which smoothing."""

    run_ids: tuple[str, ...]
    lang: str
    smooth: float

    @classmethod
    def parse(cls, runs: str, lang: str = DEFAULT_LANGUAGE, smooth: str | float = 0.6) -> FeedRequest:
        """The request from the page's query string; raises ``FeedError`` with a plain reason."""
        parts = [p.strip() for p in str(runs or "").split(",") if p.strip()]
        if not parts or len(parts) > MAX_RUNS:
            raise FeedError(f"runs: give one or two run ids, not {len(parts)}")
        try:
            ids = tuple(check_run_id(p) for p in parts)
        except ValueError as exc:
            raise FeedError(f"runs: {exc}") from None
        if lang not in CATALOGUE:
            raise FeedError(f"lang: one of {', '.join(sorted(CATALOGUE))}")
        try:
            value = float(smooth)
        except (TypeError, ValueError):
            raise FeedError("smooth: a number from 0 to 0.99") from None
        if not (math.isfinite(value) and 0.0 <= value <= 0.99):
            raise FeedError("smooth: a number from 0 to 0.99")
        return cls(ids, lang, round(value, 2))


def run_label(run: Mapping[str, Any], lang: str) -> str:
    """A run as charts and status lines name it: its name (or id), precision and, under DDP, its world size
    (plain text: callers escape it where Markdown renders)."""
    name = run["name"] or run["id"]
    precision = run.get("precision") or run["config"].get("precision")
    processes = int(run["config"].get("processes") or 1)
    if processes > 1:
        return t("train.run_label_ddp", lang, name=name, precision=precision, n=processes)
    return t("train.run_label", lang, name=name, precision=precision)


def chart_text(lang: str) -> dict[str, str]:
    """The words of the live charts in ``lang``."""
    return {"loss": t("train.chart.loss", lang), "test_acc": t("train.chart.test_acc", lang),
            "test_loss": t("train.chart.test_loss", lang), "val": t("train.chart.val", lang),
            "test": t("train.chart.test", lang), "lr": t("train.chart.lr", lang),
            "speed": t("train.chart.speed", lang), "step": t("runs.x.step", lang),
            "epoch": t("runs.x.epoch", lang)}


def page_signature(store: RunStore, runs: Sequence[Mapping[str, Any]], metrics: Mapping[str, Any] | None = None
                   ) -> str:
    """What the page around the live charts shows and the feed does not: each run's status, whether it
    was launched, its checkpoints and, for an A/B pair's summary, how many evaluation rows it has.
    When it changes the component asks the page to rerun once (new buttons, the evaluation...)."""
    parts = []
    for run in runs:
        files = "".join(p.name[0] for p in (checkpoint_path(store, run["id"], "best"),
                                            checkpoint_path(store, run["id"], "last")) if p is not None)
        evals = 0
        frame = (metrics or {}).get(run["id"])
        if frame is not None and len(runs) > 1 and not frame.empty:
            evals = int(frame["name"].isin(("test_acc", "test_loss")).sum())
        parts.append(f"{run['id']}:{run['status']}:{int(run.get('launched') is not None)}:{files}:{evals}")
    return "|".join(parts)


@dataclass(frozen=True)
class RunLine:
    """One watched run's status line: its progress bar and text, a waiting run's place in the queue, its error."""

    id: str
    status: str
    fraction: float
    text: str
    note: str = ""
    error: str = ""


@dataclass(frozen=True)
class LiveView:
    """What the live view shows of the watched runs, in one language. ``figures`` (plotly figure dicts, for
    plotly.js or ``st.plotly_chart``) is None while no run has a metric row (``waiting`` then says why);
    ``sig`` is ``page_signature`` of the runs and the doctor's findings."""

    version: str
    active: bool
    lines: tuple[RunLine, ...]
    figures: Mapping[str, Any] | None
    waiting: str
    sig: str


def _plain(value: Any) -> Any:
    """A numpy array or number as JSON knows it: a value that is not finite (a diverged loss) as null,
    as plotly.js draws a gap, never ``NaN``, which is not JSON."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f":
            return [v if math.isfinite(v) else None for v in value.tolist()]
        return value.tolist()
    if isinstance(value, np.generic):
        item = value.item()
        return None if isinstance(item, float) and not math.isfinite(item) else item
    raise TypeError(f"not JSON: {type(value).__name__}")


def gzip_bytes(body: bytes) -> bytes:
    """``body`` gzip-compressed at level 6 (zlib's default: nearly level 9's size at a fraction of its time)."""
    return gzip.compress(body, compresslevel=6, mtime=0)


class LiveFeed:
    """The live view of watched runs, built once per new data and shared by every watcher of the process.

    ``view(request)`` is the view (the page draws a finished run's with Streamlit's own elements);
    ``payload(request, known)`` the same as JSON bytes for the live-charts component. A key (runs,
    language, smoothing) is looked at in the store at most once per ``min_interval`` seconds, whoever
    asks; its view is rebuilt only when a run's rows or state changed. ``tick`` (the job manager's
    shared poll) is called on each look, so a server whose watchers only poll still launches queued
    runs and reaps finished workers. An LRU of ``max_keys`` bounds the memory; one lock per key keeps
    a second watcher from building the same view.
    """

    def __init__(self, store: RunStore, charts: LiveCharts | None = None, tick: Callable[[], Any] | None = None,
                 cap: Callable[[], int] | None = None, learner_jobs: Callable[[], int] | None = None,
                 min_interval: float = 0.5, max_keys: int = 64, poll_s: float = 1.0, doctor_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        # the feed spaces its looks itself: its reader reads on each look
        self.store, self.charts = store, charts or LiveCharts(min_interval=0.0, clock=clock)
        self.tick, self.cap, self.learner_jobs = tick, cap, learner_jobs
        self.min_interval, self.max_keys, self.poll_s, self.clock = min_interval, max_keys, poll_s, clock
        self._lock = threading.Lock()
        self._views: OrderedDict[FeedRequest, tuple[float, LiveView, bytes]] = OrderedDict()
        self._key_locks: dict[FeedRequest, threading.Lock] = {}
        self._gz: dict[tuple[FeedRequest, str], bytes] = {}  # (request, version): its body, gzip-compressed
        self._figures: OrderedDict[tuple, go.Figure] = OrderedDict()  # (request, version, chart): its Figure
        self._doctor: dict[str, tuple[float, tuple, pd.DataFrame, list[Diagnosis]]] = {}  # run id: (stamp, state, ...)
        self.doctor_s = doctor_s
        self.builds = 0   # views built so far: visible to tests and the benchmark
        self.looks = 0    # store looks so far

    def clear(self) -> None:
        """Forget the built views and charts (the readers stay): the next request of each key builds again."""
        with self._lock:
            self._views.clear()
            self._gz.clear()
            self._figures.clear()
        self.charts.clear_charts()

    def view(self, request: FeedRequest) -> LiveView:
        """The current view of ``request`` (at most ``min_interval`` seconds old)."""
        return self._held(request)[1]

    def payload(self, request: FeedRequest, known: str = "", compressed: bool = False) -> bytes:
        """The view of ``request`` as JSON bytes; only ``{"v": version, "same": true}`` when ``known`` is
        the current version. ``compressed``: the same, gzip-compressed (a view's compressed body is made once,
        for every watcher that accepts it, instead of once per answer by the server's middleware)."""
        body = self._answer(request, self._held(request), known, compressed, make=True)
        assert body is not None  # (made when missing)
        return body

    def held_payload(self, request: FeedRequest, known: str = "", compressed: bool = False) -> bytes | None:
        """``payload`` when it is a lookup (a view of ``request`` younger than ``min_interval`` is held, and
        its compressed body is made when one is asked for); None when answering needs a look at the store.
        Never waits on a build: the server answers most polls with this on its event loop, and sends the
        others to a thread (``payload``)."""
        with self._lock:
            held = self._views.get(request)
            if held is None or self.clock() - held[0] >= self.min_interval:
                return None
            self._views.move_to_end(request)
        return self._answer(request, held, known, compressed, make=False)

    def _answer(self, request: FeedRequest, held: tuple[float, LiveView, bytes], known: str, compressed: bool,
                make: bool) -> bytes | None:
        view = held[1]
        if known and known == view.version:
            same = json.dumps({"v": view.version, "same": True}).encode()
            return gzip_bytes(same) if compressed else same
        if not compressed:
            return held[2]
        key = (request, view.version)  # (a version names the data: the language and smoothing are the request's)
        with self._lock:
            packed = self._gz.get(key)
            if packed is None and make:
                packed = self._gz[key] = gzip_bytes(held[2])
                while len(self._gz) > self.max_keys:
                    self._gz.pop(next(iter(self._gz)))
        return packed

    def figure(self, request: FeedRequest, chart: str) -> go.Figure | None:
        """One chart of the current view (loss, acc, lr, speed) as a plotly Figure, validated once per view
        for every session that draws it with Streamlit (a finished run's page); None while there is none."""
        view = self.view(request)
        if view.figures is None or chart not in view.figures:
            return None
        key = (request, view.version, chart)
        with self._lock:
            fig = self._figures.get(key)
            if fig is not None:
                self._figures.move_to_end(key)
                return fig
        fig = go.Figure(view.figures[chart])  # (a dict without traces is fine here, unlike in st.plotly_chart)
        with self._lock:
            self._figures[key] = fig
            while len(self._figures) > 4 * self.max_keys:
                self._figures.popitem(last=False)
        return fig

    def _held(self, request: FeedRequest) -> tuple[float, LiveView, bytes]:
        with self._lock:
            held = self._views.get(request)
            if held is not None and self.clock() - held[0] < self.min_interval:
                self._views.move_to_end(request)
                return held
            key_lock = self._key_locks.setdefault(request, threading.Lock())
        with key_lock:  # one watcher looks and builds; the others wait for its result
            with self._lock:
                held = self._views.get(request)
                if held is not None and self.clock() - held[0] < self.min_interval:
                    return held
            view, body = self._build(request, held)
            fresh = (self.clock(), view, body)
            with self._lock:
                self._views[request] = fresh
                self._views.move_to_end(request)
                while len(self._views) > self.max_keys:
                    old, _ = self._views.popitem(last=False)
                    self._key_locks.pop(old, None)
            return fresh

    def _build(self, request: FeedRequest, held: tuple[float, LiveView, bytes] | None) -> tuple[LiveView, bytes]:
        self.looks += 1
        if self.tick is not None:
            self.tick()
        runs: list[RunRow] = [r for r in (self.store.get_run(i) for i in request.run_ids) if r is not None]
        metrics, seen = {}, []
        for run in runs:
            frame, last = self.charts.metrics(self.store, run, WATCHED_METRICS)
            metrics[run["id"]] = frame
            seen.append((run["id"], run["status"], run.get("started"), run.get("step"), last, run.get("error"),
                         run.get("launched")))
        sig = page_signature(self.store, runs, metrics) + "#" + ";".join(self._diagnoses(r) for r in runs)
        queued = any(r["status"] == "queued" and r.get("launched") is None for r in runs)
        # A waiting run's place moves with the others: such a view is rebuilt on every look.
        version = hashlib.sha1(repr((seen, sig, queued and self.clock())).encode()).hexdigest()[:16]
        if held is not None and held[1].version == version:
            return held[1], held[2]
        self.builds += 1
        view = self._make(request, runs, metrics, seen, version, sig)
        return view, self._json(view)

    def examined(self, run: Mapping[str, Any]) -> tuple[pd.DataFrame, list[Diagnosis]]:
        """A run's metrics (all of them) and the training doctor's diagnoses, read and made once per
        ``doctor_s`` seconds per run while it trains (once per state after), for every watcher and page.
        The frame is shared: callers must not change it."""
        key = (run["id"], run["status"], run.get("finished"))
        with self._lock:
            held = self._doctor.get(run["id"])
        fresh = held is not None and (run["status"] not in ACTIVE or self.clock() - held[0] < self.doctor_s)
        if held is not None and held[1] == key and fresh:
            return held[2], held[3]
        metrics = self.store.metrics(run["id"])
        found = diagnose(dict(run), metrics)
        with self._lock:
            self._doctor[run["id"]] = (self.clock(), key, metrics, found)
            while len(self._doctor) > self.max_keys:
                self._doctor.pop(next(iter(self._doctor)))
        return metrics, found

    def _diagnoses(self, run: RunRow) -> str:
        """The doctor's findings on ``run`` as a short text: a new finding makes the pages rerun once to show it."""
        return ",".join(f"{d.code}:{d.severity}" for d in self.examined(run)[1])

    def _make(self, request: FeedRequest, runs: list[RunRow], metrics: dict, seen: list, version: str,
              sig: str) -> LiveView:
        lang = request.lang
        lines = []
        labelled = {}
        for run in runs:
            label = run_label(run, lang)
            labelled[label] = metrics[run["id"]]
            p = progress(run, total_steps(run["config"]), first_step_since(metrics[run["id"]], run.get("started")))
            text = t("train.status", lang, run=label, status=t(f"status.{run['status']}", lang), step=p["step"],
                     total=p["total"] or "?")
            if p["eta_s"] is not None:
                text += t("train.eta", lang, s=p["eta_s"])
            lines.append(RunLine(run["id"], run["status"], float(p["fraction"]), text, self._queue_note(run, lang),
                                 run.get("error") or ""))
        active = any(r["status"] in ACTIVE for r in runs)
        empty = all(m.empty for m in metrics.values())
        figures = None
        if runs and not empty:
            figures = self.charts.charts((tuple(seen), request.smooth, lang),
                                         lambda: live_figures(labelled, request.smooth, chart_text(lang), as_dict=True))
        return LiveView(version, active, tuple(lines), figures, t("train.waiting", lang) if empty else "", sig)

    def _json(self, view: LiveView) -> bytes:
        # The figures are plain dicts (no validation pass, no 8 KB default template): the page themes them.
        head = {"v": view.version, "active": view.active, "every": self.poll_s, "sig": view.sig,
                "runs": [asdict(line) for line in view.lines], "waiting": view.waiting, "charts": view.figures}
        try:  # the standard library's C encoder, numpy arrays as lists (plotly's encoder is pure Python)
            return json.dumps(head, default=_plain, allow_nan=False, separators=(",", ":")).encode()
        except (TypeError, ValueError):  # something _plain does not know: plotly's own encoder knows it
            return json.dumps(head, cls=PlotlyJSONEncoder).encode()

    def _queue_note(self, run: Mapping[str, Any], lang: str) -> str:
        if run["status"] != "queued" or run.get("launched") is not None or self.cap is None:
            return ""
        per_learner = self.learner_jobs() if self.learner_jobs is not None else 0
        place = queue_place(self.store, run["id"], self.cap(), per_learner)
        if place is None:
            return ""
        text = t("train.queue.place", lang, position=place.position, waiting=place.waiting)
        text += t("train.queue.eta", lang, s=place.eta_s) if place.eta_s is not None else t("train.queue.no_eta", lang)
        if place.blocked_by_learner:
            text += " " + t("train.queue.fair", lang, n=per_learner)
        return text
