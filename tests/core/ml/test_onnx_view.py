"""Opening ONNX models (issue 21): the lab's own export round-trips, a model made by another route
(torch.onnx of a model the lab has no preset for) is read and run, and hostile files are refused."""
from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from core.errors import LabError
from core.ml import onnx_view as O
from core.ml.data import load_bundled, normalize

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Tanh2(torch.nn.Module):
    """A model the lab has no preset for: flatten, Linear, Tanh, Linear, doubled."""

    def __init__(self) -> None:
        super().__init__()
        self.f = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 32), torch.nn.Tanh(),
                                     torch.nn.Linear(32, 10))

    def forward(self, x):
        return self.f(x) * 2


def other_route_onnx(batch: int = 1) -> tuple[bytes, torch.nn.Module]:
    torch.manual_seed(0)
    model = Tanh2().eval()
    buffer = io.BytesIO()
    torch.onnx.export(model, (torch.zeros(batch, 1, 28, 28),), buffer, dynamo=False)
    return buffer.getvalue(), model


def tiny(nodes=None, initializers=(), opsets=(("", 17),)) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph(nodes or [helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y],
                              initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])


def _code(exc) -> str:
    assert isinstance(exc.value, LabError)
    return exc.value.code


def test_the_labs_own_export_round_trips():
    from core.ml.export import export_model
    from core.ml.modules import build_model
    from core.ml.zoo import preset_spec

    spec = preset_spec("cnn")
    torch.manual_seed(0)
    model = build_model(spec).eval()
    result = export_model(model, spec.input_shape, "onnx", name="cnn")
    assert result.ok
    opened = O.open_onnx(result.data)
    assert opened.params == sum(p.numel() for p in model.parameters())
    assert opened.inputs[0].shape[1:] == (1, 28, 28) and O.fits(opened, (1, 28, 28), 10)
    table = O.node_table(opened)
    assert list(table["op_type"]) == ["Conv", "Relu", "MaxPool", "Reshape", "Gemm"]
    assert table["parameters"].sum() >= 31_530
    dot = O.graph_dot(opened)
    assert "(batch, 16, 14, 14)" in dot and dot.count("->") >= 5
    x = torch.randn(7, 1, 28, 28)
    with torch.no_grad():
        expected = model(x)
    assert torch.allclose(O.run(opened, x), expected, atol=1e-4)


def test_a_model_from_another_route_runs_with_a_fixed_batch():
    data, model = other_route_onnx(batch=1)
    opened = O.open_onnx(data)
    assert opened.inputs[0].shape == (1, 1, 28, 28) and O.fits(opened, (1, 28, 28), 10)
    assert not O.fits(opened, (1, 16, 16), 3)
    digits = load_bundled()
    x = normalize(digits.test_images[:50], digits.mean, digits.std)
    y = digits.test_labels[:50]
    result = O.evaluate(opened, x, y, 10)
    with torch.no_grad():
        pred = model(x).argmax(1)
    assert result["n"] == 50 and result["accuracy"] == pytest.approx(float((pred == y).float().mean()))
    assert result["confusion"].sum() == 50
    one = O.predict_one(opened, x[:1])
    assert one["label"] == int(pred[0]) and sum(one["probs"]) == pytest.approx(1.0, abs=1e-5)


def test_external_data_paths_are_refused():
    weight = helper.make_tensor("w", TensorProto.FLOAT, [4], np.zeros(4, np.float32))
    weight.data_location = TensorProto.EXTERNAL
    del weight.float_data[:]
    entry = weight.external_data.add()
    entry.key, entry.value = "location", "../../../../etc/passwd"
    model = tiny([helper.make_node("Add", ["x", "w"], ["y"])], [weight])
    with pytest.raises(LabError) as exc:
        O.open_onnx(model.SerializeToString())
    assert _code(exc) == "onnx.external_data" and "etc/passwd" in str(exc.value)


def test_custom_op_domains_are_refused():
    model = tiny([helper.make_node("Evil", ["x"], ["y"], domain="com.example.native")],
                 opsets=(("", 17), ("com.example.native", 1)))
    with pytest.raises(LabError) as exc:
        O.open_onnx(model.SerializeToString())
    assert _code(exc) == "onnx.custom_domain" and "com.example.native" in str(exc.value)


def test_truncated_and_broken_files():
    data, _ = other_route_onnx()
    for broken in (data[: len(data) // 2], data[:-7], b"\xff" * 64, b"PK\x03\x04 not onnx"):
        with pytest.raises(LabError) as exc:
            O.open_onnx(broken)
        assert _code(exc) in ("onnx.not_onnx", "onnx.invalid", "onnx.no_graph")
    with pytest.raises(LabError) as exc:
        O.open_onnx(b"")
    assert _code(exc) == "onnx.empty"
    with pytest.raises(LabError) as exc:
        O.open_onnx(data, max_bytes=1000)
    assert _code(exc) == "onnx.too_large"
    bad = tiny([helper.make_node("Relu", ["nowhere"], ["y"])])
    with pytest.raises(LabError) as exc:
        O.open_onnx(bad.SerializeToString())
    assert _code(exc) == "onnx.invalid"
    assert "onnx.checker" in exc.value.message("en") and "onnx.checker" in exc.value.message("zh")
