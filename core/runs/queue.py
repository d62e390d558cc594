"""Where a queued run stands: its place in the job queue and when it should start.

The job queue itself is the run store's (``claim_launches``: oldest first, at most the job cap
holding a slot, and with ``PYTORCH_LAB_LEARNER_JOBS`` at most that many per learner). This module
replays that same rule forward in time to tell a waiting learner "you are 3rd; about 2 minutes":

- a running job ends after its own ETA (its time per step so far × the steps left, as the Train
  page's progress shows it), or, before it has one, after the typical duration of a finished run;
- a queued run, once started, takes the typical duration (the median of the last finished jobs);
- slots free in that order (those ending together at once); each free slot goes to the oldest queued
  run whose learner is under the per-learner cap (the store's rule); the replay stops at ``run_id``.

When no job has finished yet there is no typical duration: the place is still known, the time not.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from core.runs.store import RunRow, RunStore, check_run_id
from core.runs.view import progress, total_steps

RECENT = 20  # finished jobs whose durations make the typical one


@dataclass(frozen=True)
class QueuePlace:
    position: int            # 1 = the next run to start
    waiting: int             # runs waiting in the queue, this one included
    eta_s: float | None      # seconds until it should start (None: no finished run to estimate from yet)
    blocked_by_learner: bool  # it waits because its learner already has the most jobs allowed at once


def typical_duration(runs: list[RunRow]) -> float | None:
    """The median wall time of the last ``RECENT`` completed jobs (None when none has completed)."""
    done = [r for r in runs if r["kind"] == "job" and r["status"] == "completed" and r.get("started")
            and r.get("finished")]
    done.sort(key=lambda r: r["finished"] or 0.0, reverse=True)
    spans = [float(r["finished"] - r["started"]) for r in done[:RECENT]]  # type: ignore[operator]
    return statistics.median(spans) if spans else None


def remaining_s(run: RunRow, typical: float | None, now: float) -> float | None:
    """Seconds until a job holding a slot ends: its own ETA, else the typical duration less its age."""
    if run["status"] == "running":
        eta = progress(run, total_steps(run["config"]), 0)["eta_s"]
        if eta is not None:
            return float(eta)
    if typical is None:
        return None
    began = run.get("started") or run.get("launched") or now
    return max(0.0, typical - (now - float(began)))


def queue_place(store: RunStore, run_id: str, cap: int, per_learner: int = 0,
                now: float | None = None) -> QueuePlace | None:
    """The place of the queued, not yet launched run ``run_id`` (None when it is not waiting)."""
    run_id = check_run_id(run_id)
    now = time.time() if now is None else now
    runs = store.runs(kind="job")
    queued = sorted((r for r in runs if r["status"] == "queued" and r.get("launched") is None),
                    key=lambda r: (r["created"], r["id"]))
    if run_id not in {r["id"] for r in queued}:
        return None
    typical = typical_duration(runs)
    # The jobs holding a slot: (seconds until they end, learner).
    active: list[tuple[float | None, str | None]] = [
        (remaining_s(r, typical, now), r.get("learner")) for r in runs
        if r["status"] == "running" or (r["status"] == "queued" and r.get("launched") is not None)]
    clock: float | None = 0.0
    position = 0
    target_blocked = False
    waiting = list(queued)
    while waiting:
        busy: dict[str | None, int] = {}
        for _, who in active:
            busy[who] = busy.get(who, 0) + 1
        free = len(active) < max(1, cap)
        pick = None
        if free:
            for r in waiting:
                who = r.get("learner")
                if per_learner > 0 and who is not None and busy.get(who, 0) >= per_learner:
                    if r["id"] == run_id:
                        target_blocked = True
                    continue
                pick = r
                break
        if pick is not None:
            position += 1
            if pick["id"] == run_id:
                return QueuePlace(position, len(queued), clock, target_blocked)
            waiting.remove(pick)
            active.append((typical, pick.get("learner")))
            continue
        if not active:  # nothing holds a slot and nothing may start: cannot happen with cap >= 1
            break
        # Advance to the next job's end (the least time left; unknown ends come last), freeing every
        # slot that ends then: jobs ending together free their slots for one launch round, as in the store.
        known = [left for left, _ in active if left is not None]
        if not known or clock is None:
            clock = None
            active.pop(0)
            continue
        step = min(known)
        clock += step
        active = [(None if left is None else left - step, who) for left, who in active]
        active = [(left, who) for left, who in active if left is None or left > 1e-9]
    return QueuePlace(position + 1, len(queued), None, target_blocked)
