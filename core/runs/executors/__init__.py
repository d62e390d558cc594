"""Executors: how a job's worker command runs (``base.py``: the interface).

``open_executor()`` returns the back end ``PYTORCH_LAB_EXECUTOR`` names: ``local`` (the
default; ``local.py``: worker processes on this machine) or ``ray`` (``ray.py``: each run a
Ray Job on the cluster at ``PYTORCH_LAB_RAY_ADDRESS``). Opening one never touches the
network; ``check()`` does.
"""
from __future__ import annotations

from core.errors import Code
from core.runs.executors.base import (
    Executor,
    ExecutorError,
    ExecutorUnavailable,
    JobInfo,
    JobSpec,
    Resources,
)
from core.runs.executors.local import LocalExecutor
from core.settings import Settings, load_settings

EXECUTORS = ("local", "ray")

__all__ = ["EXECUTORS", "Executor", "ExecutorError", "ExecutorUnavailable", "JobInfo", "JobSpec", "LocalExecutor",
           "Resources", "open_executor"]


def open_executor(settings: Settings | None = None, name: str | None = None) -> Executor:
    """The executor ``name`` (default: ``settings.executor``), configured from the settings.

    An unknown name is an ``ExecutorError`` (``executor.unknown``); so are a Ray address or
    resources that do not parse, and a missing ``ray`` package (when the Ray back end is used).
    """
    settings = settings or load_settings()
    chosen = (name if name is not None else settings.executor).strip().lower()
    if chosen == "local":
        return LocalExecutor()
    if chosen == "ray":
        from core.runs.executors.ray import RayExecutor

        return RayExecutor(settings.ray_address, cpus=settings.ray_cpus, gpus=settings.ray_gpus,
                           resources=settings.ray_resources)
    raise ExecutorError("executor.unknown", setting=Code("PYTORCH_LAB_EXECUTOR"), value=Code(chosen[:60]),
                        choices=Code(" | ".join(EXECUTORS)))
