"""Latency of the Explain page's interactions (target: under 200 ms of server time each) and the cost
of recording the features map per epoch.

One command::

    python -m bench --only explain          # prints the tables and updates BENCHMARKS.md

Two tables:

- the engine's work per interaction (core.ml.explain: every layer's activations, one convolution
  step, each attribution method) for the default model, a tutorial CNN and a model without a conv;
- the whole page's server time per interaction: the Explain page run through AppTest in-process
  (the page script, the engine, building the pictures and charts and serializing them into
  Streamlit's messages; the browser's drawing is not included), median over repeats;

and one line: what ``core.runs.representation.record_epoch`` (the worker's per-epoch map) costs
next to an epoch of the default recipe. Latency does not depend on the weights: fresh weights.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch

from bench.common import Contention, interleave, md_table, median
from core.ml import explain as E
from core.ml.data import MNIST_MEAN, MNIST_STD, load_bundled
from core.ml.modules import build_model
from core.ml.zoo import preset_spec

HEADING = "## Explainer latency"
TARGET_MS = 200.0
PRESETS = ("lab_fast", "simple_cnn", "neural_network")
APP = Path(__file__).resolve().parent.parent / "app.py"


def _digit() -> torch.Tensor:
    img = load_bundled().test_images[0].float() / 255
    return ((img - MNIST_MEAN) / MNIST_STD).view(1, 1, 28, 28)


def _timer(fn):
    """A case for ``interleave``: one call of ``fn``, its wall time in ms."""
    def case() -> float:
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1000
    return case


def engine_rows(repeats: int) -> list[list[str]]:
    """Every (model, work) case, interleaved round by round (a slow phase of a shared machine lands on
    every case alike), median ms each."""
    from pages.ui.explain_views import mosaic

    x = _digit()
    cases = {}
    for preset in PRESETS:
        model = build_model(preset_spec(preset), seed=0).eval()
        convs = E.conv_layers(model)

        def overview(model=model) -> None:
            acts, _ = E.activations(model, x)
            for act in acts:
                mosaic(act.values)

        cases[(preset, "layers (all activations + pictures)")] = _timer(overview)
        if convs:
            cases[(preset, "convolution step (last conv)")] = _timer(
                lambda m=model, c=convs[-1]: E.conv_step(m, x, c, 1, 2, 2))
        for method in E.METHODS:
            if method == "gradcam" and not convs:
                continue
            cases[(preset, f"attribution: {method}")] = _timer(lambda m=model, k=method: E.attribute(m, x, k))
    times = interleave({f"{p}|{w}": case for (p, w), case in cases.items()}, repeats, warmup=2)
    rows = []
    for name, values in times.items():
        preset, work = name.split("|", 1)
        ms = median(values)
        rows.append([preset, work, f"{ms:.1f}", "yes" if ms < TARGET_MS else "no"])
    return rows


def page_rows(repeats: int) -> list[list[str]]:
    """Server time of the Explain page's reruns, one interaction each (AppTest in-process, fresh lab home)."""
    from streamlit.testing.v1 import AppTest

    old = os.environ.get("PYTORCH_LAB_HOME")
    threads = torch.get_num_threads()
    rows = []
    with tempfile.TemporaryDirectory() as home:
        os.environ["PYTORCH_LAB_HOME"] = home
        try:
            at = AppTest.from_file(str(APP), default_timeout=120)
            at.run()
            at.switch_page("pages/explain.py")
            at.run()

            def rerun(action) -> float:
                t0 = time.perf_counter()
                action()
                ms = (time.perf_counter() - t0) * 1000
                if at.exception:
                    raise RuntimeError(at.exception[0].value)
                return ms

            def view(name: str):
                return lambda: next(w for w in at.button_group if w.key == "xp_view").set_value(name).run()

            def digit_next():
                box = at.number_input(key="xp_digit")
                box.set_value((box.value + 1) % 1000).run()

            def step_next():
                at.button(key="xp_next").click().run()

            def channel_next():
                box = next(w for w in at.number_input if str(w.key).startswith("xp_channel_"))
                box.set_value((box.value + 1) % 8).run()

            def method(name: str):
                return lambda: at.selectbox(key="xp_method").set_value(name).run()

            plan = [("layers: another test digit", view("overview"), digit_next),
                    ("convolution step: next position", view("step"), step_next),
                    ("convolution step: another channel", view("step"), channel_next)]
            plan += [(f"attribution: {m}", view("attribution"), method(m)) for m in E.METHODS]
            for name, setup, action in plan:
                rerun(setup)
                times = [rerun(action) for _ in range(repeats)]
                ms = median(times)
                rows.append([name, f"{ms:.0f}", "yes" if ms < TARGET_MS else "no"])
        finally:
            if old is None:
                os.environ.pop("PYTORCH_LAB_HOME", None)
            else:
                os.environ["PYTORCH_LAB_HOME"] = old
            torch.set_num_threads(threads)
    return rows


def recording_line(quick: bool) -> str:
    """The worker's per-epoch map next to a steady epoch of the default recipe (its second, one process)."""
    import math

    from core.runs.representation import SHARE, SUBSET, record_epoch
    from core.runs.store import SQLiteRunStore
    from core.training.config import TrainConfig
    from core.training.trainer import Trainer

    config = TrainConfig(epochs=2).validate()
    trainer = Trainer(config)
    epoch_s = [float(ev["seconds"]) for ev in trainer.run(lambda: False) if ev["kind"] == "epoch"][-1]
    ckpt = trainer.checkpoint()
    with tempfile.TemporaryDirectory() as home:
        store = SQLiteRunStore(Path(home))
        run_id = store.create_run(config.to_dict(), name="bench", status="running", kind="job")
        store.run_dir(run_id, create=True)
        times = []
        for epoch in range(1, (3 if quick else 6) + 1):
            t1 = time.perf_counter()
            record_epoch(store, run_id, ckpt, epoch)
            times.append((time.perf_counter() - t1) * 1000)
        size = (store.run_dir(run_id) / "representation.npz").stat().st_size
    ms = median(times[1:])  # the first call loads the test split once per worker
    share = ms / 1000 / epoch_s
    every = max(1, math.ceil(share / SHARE))
    return (f"Recording the features map (`core.runs.representation.record_epoch`, {len(times)} frames of the "
            f"default model, {SUBSET} test digits): {ms:.0f} ms a frame (median; the first, which loads the test "
            f"split, {times[0]:.0f} ms), {100 * share:.1f}% of a steady epoch of the default recipe "
            f"({epoch_s:.2f} s here, its second epoch). The worker keeps the frames within {100 * SHARE:.0f}% of "
            f"the training time (`Budget`): here a frame every {every} epoch(s), and always the last; the file "
            f"grows by about {size / len(times) / 1024:.0f} KB a frame.")


def section(quick: bool = False) -> str:
    repeats = 3 if quick else 15
    with Contention() as busy:
        engine = engine_rows(repeats)
        page = page_rows(2 if quick else 7)
        recording = recording_line(quick)
    worst = max(float(r[1]) for r in page)
    lines = [HEADING, "",
             f"Measured by `python -m bench --only explain` on {time.strftime('%Y-%m-%d')} with torch using "
             f"{torch.get_num_threads()} threads. Target: every interaction under {TARGET_MS:.0f} ms of server "
             f"time. The slowest page interaction took {worst:.0f} ms: "
             f"{'met' if worst < TARGET_MS else 'not met'}. {busy.note()}", "",
             "The Explain page's server time per interaction (AppTest in-process: the page script, the engine, the "
             f"pictures and charts and their messages; not the browser's drawing), median of {2 if quick else 7}:",
             "", md_table(["interaction", "server ms", f"under {TARGET_MS:.0f} ms"], page), "",
             f"The engine alone (`core.ml.explain`) on one digit, every case called in turn, {repeats} rounds, "
             "median:", "",
             md_table(["model", "work", "ms", f"under {TARGET_MS:.0f} ms"], engine), "", recording, ""]
    return "\n".join(lines)
