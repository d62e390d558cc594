"""Rule-based advice on a profile (core.ml.profile_advice): each rule fires on its evidence and only then,
and the convolution advice is measured on the model."""
from __future__ import annotations

import pandas as pd
import pytest

from core.i18n import CATALOGUE
from core.ml.modules import build_model
from core.ml.profile_advice import advise, measure_layouts
from core.ml.profiling import ProfileConfig, profile_model
from core.ml.zoo import preset_spec

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def result(ops: list[tuple[str, float, int]], phases: dict[str, float], mode: str = "train_step",
           memory: pd.DataFrame | None = None) -> dict:
    table = pd.DataFrame([{"name": n, "kind": "op", "calls": c, "self_cpu_ms": ms} for n, ms, c in ops])
    total = sum(phases.values())
    breakdown = pd.DataFrame([{"phase": p, "ms": ms, "ms_per_step": ms, "share_pct": ms / total * 100}
                              for p, ms in phases.items()])
    return {"table": table, "breakdown": breakdown, "steps": 1, "mode": mode, "memory": memory,
            "config": {"batch_size": 8}}


BALANCED = {"data": 1.0, "forward": 10.0, "backward": 18.0, "optimizer": 2.0}


def codes(found) -> list[str]:
    return [a.code for a in found]


def test_each_rule_fires_on_its_evidence_only():
    quiet = result([("aten::addmm", 10.0, 10), ("aten::mm", 8.0, 10)], BALANCED)
    assert advise(quiet) == []
    data = result([("aten::addmm", 10.0, 10)], {**BALANCED, "data": 20.0})
    assert codes(advise(data)) == ["data"]
    optimizer = result([("aten::addmm", 10.0, 10)], {**BALANCED, "optimizer": 15.0})
    assert codes(advise(optimizer)) == ["optimizer"]
    backward = result([("aten::addmm", 10.0, 10)], {**BALANCED, "backward": 40.0})
    assert codes(advise(backward)) == ["backward"]
    many_small = result([("aten::add", 2.0, 400), ("aten::mul", 2.0, 400)], BALANCED)
    assert codes(advise(many_small)) == ["overhead"] and advise(many_small)[0].params["calls"] == 800
    memory = pd.DataFrame([{"name": "aten::empty", "cpu_mem_mb": 30.0}, {"name": "aten::mm", "cpu_mem_mb": 10.0}])
    found = advise(result([("aten::addmm", 10.0, 10)], BALANCED, memory=memory))
    assert codes(found) == ["memory"] and found[0].params["share"] == pytest.approx(75.0)
    conv = result([("aten::convolution_backward", 30.0, 2), ("aten::mkldnn_convolution", 10.0, 2),
                   ("aten::addmm", 10.0, 10)], BALANCED)
    found = advise(conv, measure=False)
    assert codes(found) == ["conv"] and found[0].params["share"] == pytest.approx(80.0)
    assert found[0].params["backward"] == pytest.approx(60.0)
    for a in advise(data) + found:
        for lang in CATALOGUE:
            assert a.evidence(lang) and a.fix(lang)


def test_convolution_advice_is_measured_on_the_model():
    spec = preset_spec("simple_cnn")
    model = build_model(spec)
    timings = measure_layouts(model, spec.input_shape, 8, fast_bf16=False, steps=2)
    assert set(timings) == {"as_is", "channels_last"} and all(v > 0 for v in timings.values())
    profiled = profile_model(model, spec.input_shape, ProfileConfig(mode="train_step", batch_size=8))
    found = advise(profiled, model, spec.input_shape, fast_bf16=False)
    assert codes(found)[:3] == ["conv", "conv_layout", "conv_no_bf16"]
    layout = found[1]
    assert layout.params["how"] in ("faster", "not_faster") and layout.params["as_is"] > 0
    assert (layout.params["how"] == "faster") == (layout.params["gain"] > 0.05)
