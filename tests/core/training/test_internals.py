"""Training internals (core.training.internals): what the trainer records every N steps, that recording
changes nothing trained, and that the worker stores it as metrics the pages read (both run stores)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from core.runs.internals import band_figure, internals_frame, layer_figure, layers, series, spikes
from core.runs.store import open_store
from core.runs.worker import train_run
from core.training.config import TrainConfig
from core.training.internals import InternalsRecorder, _dead_share
from core.training.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = dict(limit_train=96, limit_test=32, val_size=32, batch_size=32, epochs=1, augment=False, precision="fp32",
            ema=0.0, tta=False)


def test_recording_steps():
    rec = InternalsRecorder(nn.Linear(2, 2), every=50)
    assert [s for s in range(1, 201) if rec.due(s)] == [1, 50, 100, 150, 200]
    assert not any(InternalsRecorder(nn.Linear(2, 2), every=0).due(s) for s in range(1, 100))


def test_recording_changes_nothing_trained_and_records_every_layer():
    on = Trainer(TrainConfig(**TINY, internals_every=1))
    off = Trainer(TrainConfig(**TINY, internals_every=0))
    before = {k: v.detach().clone() for k, v in on.core.state_dict().items()}
    events_on = [on.step() for _ in range(3)]
    events_off = [off.step() for _ in range(3)]
    assert [e["loss"] for e in events_on] == [e["loss"] for e in events_off]
    assert all("internals" not in e for e in events_off)
    for a, b in zip(on.core.state_dict().values(), off.core.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    first = events_on[0]["internals"]
    convs = [f"{n}:Conv2d" for n, m in on.core.named_modules() if isinstance(m, nn.Conv2d)]
    relus = [f"{n}:ReLU" for n, m in on.core.named_modules() if isinstance(m, nn.ReLU)]
    assert convs and relus
    for key in convs:
        for stat in ("w_p05", "w_p50", "w_p95", "w_norm", "g_p05", "g_p50", "g_p95", "grad_norm", "update_ratio"):
            assert math.isfinite(first[f"{key}/{stat}"]), (key, stat)
        assert first[f"{key}/w_p05"] <= first[f"{key}/w_p50"] <= first[f"{key}/w_p95"]
    for key in relus:
        assert 0.0 <= first[f"{key}/dead"] <= 1.0 and first[f"{key}/a_p05"] >= 0.0
    assert abs(first["input/mean"]) < 1 and 0.5 < first["input/std"] < 2 and first["input/classes"] > 0.5
    # the update ratio is ‖Δw‖ / ‖w‖ of the step that recorded it (step 1 here)
    key = convs[0]
    name = key.split(":")[0] + ".weight"
    after_one = Trainer(TrainConfig(**TINY, internals_every=0))
    after_one.step()
    w0, w1 = before[name].float(), after_one.core.state_dict()[name].float()
    assert first[f"{key}/update_ratio"] == pytest.approx(float((w1 - w0).norm() / w0.norm()), rel=1e-4)


def test_dead_share_counts_channels_and_features():
    out = torch.zeros(4, 4, 3, 3)
    out[:, 0] = 1.0          # channel 0 fires everywhere
    out[2, 1, 1, 1] = 0.5    # channel 1 fires once, on one sample
    assert _dead_share(out) == pytest.approx(0.5)
    feats = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert _dead_share(feats) == pytest.approx(2 / 3)


def test_spikes_against_the_recent_median():
    rec = InternalsRecorder(nn.Linear(2, 2), every=0)
    assert all(rec.spike(1.0 + 0.01 * i) is None for i in range(20))
    assert rec.spike(12.0) == pytest.approx(12.0 / 1.095, rel=0.01)
    assert rec.spike(float("nan")) is None and rec.spike(1.5) is None


def test_worker_stores_internals_as_metrics(tmp_path, store_url):
    store = open_store(home=tmp_path / "home", url=store_url)
    config = TrainConfig(**TINY, internals_every=2)
    run_id = store.create_run(config.to_dict(), status="running")
    assert train_run(Trainer(config), store, run_id) == "completed"
    metrics = store.metrics(run_id)
    frame = internals_frame(metrics)
    assert set(frame["step"]) == {1, 2}
    keys = layers(frame)
    assert keys[0] == "0:Conv2d" and any(k.endswith(":ReLU") for k in keys)
    assert len(series(frame, "0:Conv2d", "update_ratio")) == 2
    assert not series(frame, "input", "classes").empty and spikes(frame).empty
    # the pages' figures: a line per layer, and a layer's band
    fig = layer_figure(frame, "update_ratio", "update / weight")
    assert len(fig.data) == sum(1 for k in keys if not series(frame, k, "update_ratio").empty)
    assert len(band_figure(frame, "0:Conv2d", "w", "weights", {}).data) == 3
    assert internals_frame(metrics[~metrics["name"].str.startswith("internals/")]).empty
    store.close()
