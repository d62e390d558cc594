"""The lab's one settings module: every ``PYTORCH_LAB_*`` environment variable is read here.

``load_settings()`` reads the environment (or a given mapping) into a typed, frozen
``Settings``. Each field documents its variable, default and range; README's
configuration table is checked against ``SETTINGS_TABLE`` by a test, so the two cannot
drift. A value out of its range is clamped into it and a value that does not parse falls
back to the default: a typo in an operator's environment must not stop the lab from
starting (``Settings.notes`` says what was adjusted, and the Home page shows it).
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
BUNDLED_DIGITS = ASSETS / "mnist_digits_8k.npz"
PREFIX = "PYTORCH_LAB_"


def _cpus() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True)
class Setting:
    """One environment variable: its field, type, default (a value or a callable), range and README text."""

    field: str
    kind: type
    default: Any
    doc: str
    readme_default: str
    lo: float | None = None
    hi: float | None = None

    @property
    def env(self) -> str:
        return PREFIX + self.field.upper()


SETTINGS_TABLE: tuple[Setting, ...] = (
    Setting("home", Path, lambda: Path.home() / ".pytorch_lab", "the lab's home: the SQLite run store "
            "(`runs.sqlite3`, unless `PYTORCH_LAB_STORE_URL` is set) and `runs/<id>/` with checkpoints and logs (a "
            "folder all hosts share when they share a PostgreSQL store)", "`~/.pytorch_lab`"),
    Setting("store_url", str, None, "where runs and metrics are stored: unset is SQLite in the lab home; "
            "`postgresql://user@host:port/db` is a PostgreSQL database that servers and workers on many hosts share "
            "(see Scaling out)", "unset (SQLite)"),
    Setting("data_root", Path, None, "where torchvision datasets are looked for and downloaded to",
            "`$PYTORCH_LAB_HOME/data`"),
    Setting("download", bool, True, "`0` never tries a download (offline machines, CI)", "`1`"),
    Setting("download_timeout", float, 8.0, "seconds a download may take before the lab gives up", "`8`", 1, 120),
    Setting("job_cap", int, lambda: max(1, _cpus() // 4), "training jobs that run at once; more wait in a queue",
            "one per 4 CPU cores, at least 1", 1, 64),
    Setting("worker_threads", int, None, "torch threads per training job (default: the cores the server leaves, "
            "shared among the jobs)", "(cores - 1) / job cap, at least 1", 1, 256),
    Setting("heartbeat_s", float, 2.0, "seconds between a worker's heartbeats (a silent worker is marked failed)",
            "`2`", 0.05, 60),
    Setting("executor", str, lambda: "local", "where training jobs run: `local` (worker processes on this machine) "
            "or `ray` (each run a Ray Job on the cluster at `PYTORCH_LAB_RAY_ADDRESS`; see Scaling out)", "`local`"),
    Setting("ray_address", str, None, "the Ray cluster's dashboard (Jobs API) address for `PYTORCH_LAB_EXECUTOR=ray`, "
            "e.g. `http://head-host:8265`", "unset"),
    Setting("ray_cpus", float, 1.0, "CPUs Ray reserves for each job (for each process of a DDP run); also its torch "
            "threads", "`1`", 0, 1024),
    Setting("ray_gpus", float, None, "GPUs Ray reserves for each job (for each process of a DDP run)",
            "1 when the run's device is `cuda`, else 0", 0, 64),
    Setting("ray_resources", str, None, "custom Ray resources each job (each DDP process) needs, as JSON, e.g. "
            "`{\"lab_worker\": 1}`: jobs then run only on nodes started with them (`ray start --resources`)",
            "unset"),
    Setting("max_epochs", int, 200, "most epochs a training config may ask for", "`200`", 1, 100_000),
    Setting("max_batch", int, 4096, "largest batch size of a training config", "`4096`", 1, 1_000_000),
    Setting("max_params", int, 20_000_000, "most parameters a trained model may have", "`20000000`", 1, 50_000_000),
    Setting("max_checkpoint_mb", float, 200.0, "largest checkpoint loaded (uploads are also capped by Streamlit at "
            "25 MB)", "`200`", 1, 100_000),
    Setting("budget_mb", float, 128.0, "memory one request may make the server use for the work it starts (an "
            "evaluation's batches, an expression's values); bigger work runs in smaller pieces or is refused",
            "`128`", 1, 100_000),
    Setting("budget_s", float, 5.0, "seconds of server time one request may take (evaluations, expressions, "
            "contour grids) before it is stopped with a message", "`5`", 0.5, 600),
    Setting("max_sample_gmac", float, 5.0, "multiply-adds (in billions) one sample may need through a model, "
            "counted by formula per layer before anything is built; a bigger spec is refused", "`5`", 0.001, 100_000),
    Setting("max_batch_gmac", float, 10.0, "multiply-adds (in billions) of the model work one request may run in "
            "the server (a summary, the forward demo's batch, a profiled or stepped batch); a bigger batch is "
            "refused with the largest that fits", "`10`", 0.001, 100_000),
    Setting("max_queued", int, 4, "runs one session (and one learner, where a name is given) may have queued or "
            "running at once; another Start is refused until one ends", "`4`", 1, 1000),
    Setting("learner_jobs", int, 0, "the classroom's fair share: jobs one learner may have training at once (their "
            "next run waits, and other learners' runs go first); 0 = no limit per learner", "`0`", 0, 64),
    Setting("max_home_gb", float, 20.0, "disk the lab home may use (checkpoints, logs, datasets); a run that could "
            "pass it is refused until runs are deleted", "`20`", 0.01, 1_000_000),
    Setting("max_output_kb", float, 64.0, "most text one result may send to the browser (longer values are cut, "
            "with a note)", "`64`", 4, 100_000),
)
BY_FIELD = {s.field: s for s in SETTINGS_TABLE}


def _number(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def readme_row(setting: Setting) -> str:
    """The setting's row in README's configuration table (a test keeps README equal to these rows)."""
    lo, hi = setting.lo, setting.hi
    span = f" ({_number(lo)}–{_number(hi)})" if lo is not None and hi is not None else ""
    return f"| `{setting.env}` | {setting.readme_default} | {setting.doc}{span} |"


class Settings(BaseModel):
    """Lab-wide settings (see ``SETTINGS_TABLE`` for each one's variable, default and range)."""

    model_config = ConfigDict(frozen=True)

    home: Path
    store_url: str | None
    data_root: Path
    download: bool
    download_timeout: float
    job_cap: int
    worker_threads: int | None
    heartbeat_s: float
    executor: str
    ray_address: str | None
    ray_cpus: float
    ray_gpus: float | None
    ray_resources: str | None
    max_epochs: int
    max_batch: int
    max_params: int
    max_checkpoint_mb: float
    budget_mb: float
    budget_s: float
    max_sample_gmac: float
    max_batch_gmac: float
    max_queued: int
    learner_jobs: int
    max_home_gb: float
    max_output_kb: float
    notes: tuple[str, ...] = ()  # settings that were clamped or ignored, for the operator

    @property
    def allow_download(self) -> bool:
        return self.download

    @property
    def max_checkpoint_bytes(self) -> int:
        return int(self.max_checkpoint_mb * 1024 * 1024)

    @property
    def budget_bytes(self) -> int:
        """Server memory one request's work may use (``PYTORCH_LAB_BUDGET_MB``)."""
        return int(self.budget_mb * 1024 * 1024)

    @property
    def max_output_chars(self) -> int:
        """Characters of one result's text a page may send (``PYTORCH_LAB_MAX_OUTPUT_KB``)."""
        return int(self.max_output_kb * 1024)


def _flag(text: str) -> bool | None:
    value = text.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    return None


def _parse(setting: Setting, text: str) -> tuple[Any, str | None]:
    """(value, note): the parsed value clamped into range, or (None, why) when it does not parse."""
    if setting.kind is Path:
        return Path(text).expanduser(), None
    if setting.kind is str:
        return text.strip(), None
    if setting.kind is bool:
        flag = _flag(text)
        return (flag, None) if flag is not None else (None, f"{setting.env}={text!r} is not 0/1; using the default")
    try:
        number = float(text)
        if not math.isfinite(number):
            raise ValueError
        value: Any = int(number) if setting.kind is int else number
        if setting.kind is int and number != int(number):
            raise ValueError
    except ValueError:
        kind = "whole number" if setting.kind is int else "number"
        return None, f"{setting.env}={text!r} is not a {kind}; using the default"
    lo, hi = setting.lo, setting.hi
    clamped = min(max(value, lo if lo is not None else value), hi if hi is not None else value)
    note = None if clamped == value else f"{setting.env}={text} is outside {lo:g}..{hi:g}; using {clamped:g}"
    return (setting.kind(clamped), note)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``environ`` (default: the process environment); never raises for a bad value."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    notes: list[str] = []
    for setting in SETTINGS_TABLE:
        raw = env.get(setting.env, "")
        value, note = _parse(setting, raw) if raw.strip() else (None, None)
        if note:
            notes.append(note)
        if value is None:
            value = setting.default() if callable(setting.default) else setting.default
        values[setting.field] = value
    if values["data_root"] is None:
        values["data_root"] = values["home"] / "data"
    return Settings(**values, notes=tuple(notes))


def settings_environ(**values: Any) -> dict[str, str]:
    """The environment variables that give a child process these settings (``home=...`` ->
    ``{"PYTORCH_LAB_HOME": ...}``); an empty value means the default."""
    unknown = set(values) - set(BY_FIELD)
    if unknown:
        raise KeyError(f"no setting named {', '.join(sorted(unknown))}")
    return {BY_FIELD[name].env: "" if value is None else str(value) for name, value in values.items()}


def lab_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The lab's own variables (``PYTORCH_LAB_*``) of an environment: what a job carries to its worker
    on another host, so the worker sees the same settings (limits, heartbeat, executor) as the server."""
    env = os.environ if environ is None else environ
    return {k: v for k, v in env.items() if k.startswith(PREFIX)}


def scratch_dir(environ: Mapping[str, str] | None = None) -> Path:
    """A folder for short-lived work files (export round trips, profiler traces) inside the
    lab home, so the lab writes nowhere else on the machine."""
    folder = load_settings(environ).home / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
