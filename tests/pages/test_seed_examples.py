"""The tutorial examples of ../shared/SEED_EXAMPLES.md on the Tensors, Autograd, Data, Export, Profiler
and Home pages show PyTorch's true result: each test clicks the example as a learner does and compares
the numbers the page shows with values torch computes here, in the test, independently of the lab."""
import json
import math
import os
import re
import warnings

import numpy as np
import pytest
import torch
import torchvision.transforms.v2 as T
from torch.utils.data import DataLoader, TensorDataset

from core.i18n import CATALOGUE
from tests.pages.conftest import shown

EN = CATALOGUE["en"]


def codes(at) -> list[str]:
    return [c.value for c in at.main.code]


def click_example(at, key: str):
    at.button(key=key).click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture
def tensors(app):
    return app("pages/tensors.py")


@pytest.fixture
def autograd(app):
    return app("pages/autograd.py")


# --------------------------------------------------------------------------- Tensors T1-T7
def test_t1_sum_and_mean(tensors):
    at = click_example(tensors, "ten_ex_T1")
    a = torch.tensor([[1, 2, 3], [4, 5, 6]])
    b = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    shown_codes = codes(at)
    assert str(a + b) in shown_codes and str((a + b).mean()) in shown_codes  # tensor(3.8500), not 3.35
    assert (a + b).mean().item() == pytest.approx(3.85)


def test_t2_dtypes_and_shared_memory(tensors):
    at = click_example(tensors, "ten_ex_T2")
    n = np.array([1.0, 2.0, 3.0])
    s, c = torch.from_numpy(n), torch.tensor(n)
    n[0] = 100.0
    shown_codes = codes(at)
    assert str(torch.tensor([1, 2, 3])) in shown_codes
    assert str(s) in shown_codes and str(c) in shown_codes  # s follows n (shared), c does not (a copy)
    assert s.dtype == torch.float64 and "dtype=torch.float64" in str(s)


def test_t3_seeded_random_tensors(tensors):
    at = click_example(tensors, "ten_ex_T3")
    gen = torch.Generator().manual_seed(0)
    r, g = torch.rand(2, 2, generator=gen), torch.randn(2, 2, generator=gen)
    shown_codes = codes(at)
    for t in (torch.zeros(3, 2), torch.ones(3, 2), r, g):
        assert str(t) in shown_codes
    assert r.min() >= 0 and r.max() < 1


def test_t4_view_after_transpose_fails_with_torchs_message(tensors):
    at = click_example(tensors, "ten_ex_T4")
    x = torch.arange(24).reshape(2, 3, 4)
    y = x.transpose(1, 2)
    with pytest.raises(RuntimeError) as info:
        y.view(6, 4)
    shown_codes = codes(at)
    assert str(info.value) in shown_codes and str(y.is_contiguous()) in shown_codes
    assert str(y.reshape(6, 4)) in shown_codes and str(x.view(6, 4)) in shown_codes


def test_t5_shapes_and_the_permute_error(tensors):
    at = click_example(tensors, "ten_ex_T5")
    x = torch.arange(12.0).reshape(3, 4)
    with pytest.raises(RuntimeError) as info:
        x.permute(1, 0, 2)
    shown_codes = codes(at)
    assert str(info.value) in shown_codes
    assert str(x.unsqueeze(0)) in shown_codes and str(x.transpose(0, 1)) in shown_codes
    assert str(torch.arange(60.0).reshape(3, 4, 5).permute(1, 0, 2)) in shown_codes


def test_t6_broadcasting_values(tensors):
    at = click_example(tensors, "ten_ex_T6")
    x = torch.tensor([0.0, math.pi / 6, math.pi / 2, math.pi])
    shown_codes = codes(at)
    assert str(x * 2 + torch.sin(x)) in shown_codes
    assert str(x.reshape(4, 1) * 2 + torch.sin(torch.tensor([0.0, 1.0, 2.0]))) in shown_codes


def test_t7_two_devices(tensors):
    at = click_example(tensors, "ten_ex_T7")
    other = "cuda" if torch.cuda.is_available() else "meta"
    x, w = torch.ones(2, 3), torch.ones(2, 3, device=other)
    with pytest.raises(RuntimeError) as info:
        x + w
    shown_codes = codes(at)
    assert str(info.value) in shown_codes and str(x.to(w.device) + w) in shown_codes
    assert any("device" in shown(i.value) for i in at.info)  # the note: what the message is on a GPU, the fix


# --------------------------------------------------------------------------- Autograd A1-A7
@pytest.mark.parametrize("example,f", [("A1", lambda x: x**3 + 5 * x), ("A2", lambda x: x**2 + 2 * x + 2)])
def test_a1_a2_derivatives(autograd, example, f):
    at = click_example(autograd, f"ag_ex_{example}")
    x = torch.tensor(2.0, requires_grad=True)
    y = f(x)
    (dy,) = torch.autograd.grad(y, x, create_graph=True)
    (d2y,) = torch.autograd.grad(dy, x)
    got = {m.label: float(m.value) for m in at.metric}
    assert got == {"f(x₀)": y.item(), "f′(x₀)": dy.item(), "f″(x₀)": d2y.item()}


def test_a3_gradient(autograd):
    at = click_example(autograd, "ag_ex_A3")
    w = torch.tensor([3.14, 1.0], requires_grad=True)
    g = 2 * w[0] * w[1] + w[1] * torch.cos(w[0])
    g.backward()
    table = at.dataframe[0].value
    assert table.iloc[:, 2].tolist() == pytest.approx(w.grad.tolist())  # [1.9984, 5.2800]
    assert float(at.metric[0].value) == pytest.approx(g.item(), rel=1e-5)


def test_a4_gradients_accumulate(autograd):
    at = click_example(autograd, "ag_ex_A4")
    x = torch.tensor(2.0, requires_grad=True)
    expected = []
    (x**2 + 2 * x + 2).backward()
    expected.append(x.grad.item())
    (x**2 + 2 * x + 2).backward()
    expected.append(x.grad.item())
    x.grad.zero_()
    expected.append(x.grad.item())
    (x**2 + 2 * x + 2).backward()
    expected.append(x.grad.item())
    assert at.dataframe[0].value[EN["autograd.col.grad"]].tolist() == expected == [6.0, 12.0, 0.0, 6.0]


def test_a5_no_grad_and_detach(autograd):
    at = click_example(autograd, "ag_ex_A5")
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2
    with torch.no_grad():
        z = x * 2
    d = x.detach()
    table = at.dataframe[0].value.set_index("code")
    for code, t in (("y = x * 2", y), ("with torch.no_grad(): z = x * 2", z), ("d = x.detach()", d)):
        assert table.loc[code, "requires_grad"] == str(t.requires_grad)
        grad_fn = str(table.loc[code, "grad_fn"])
        if t.grad_fn is None:
            assert grad_fn in ("None", "nan")  # the table's empty cell
        else:
            assert grad_fn == type(t.grad_fn).__name__ == "MulBackward0"


def test_a6_anomaly_names_the_op(autograd):
    at = click_example(autograd, "ag_ex_A6")
    x = torch.tensor(0.0, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError) as info, torch.autograd.detect_anomaly(check_nan=True):
            (torch.sqrt(x) * 0).backward()
    assert str(info.value) in codes(at)  # Function 'SqrtBackward0' returned nan values ...
    plain = torch.tensor(0.0, requires_grad=True)
    (torch.sqrt(plain) * 0).backward()
    assert math.isnan(plain.grad.item()) and at.metric[0].value == "nan"


def test_a7_activation_derivatives(autograd):
    at = click_example(autograd, "ag_ex_A7")
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    x = torch.linspace(-5, 5, 201, requires_grad=True)
    modules = {"ReLU": torch.nn.ReLU(), "Sigmoid": torch.nn.Sigmoid(), "Tanh": torch.nn.Tanh(),
               "LeakyReLU": torch.nn.LeakyReLU(0.01)}
    traces = {}
    for trace in spec["data"]:
        traces.setdefault(trace["name"], []).append(trace)
    for name, module in modules.items():
        y = module(x)
        (dy,) = torch.autograd.grad(y.sum(), x)
        function, derivative = traces[name]
        assert function["y"] == pytest.approx(y.detach().tolist(), abs=1e-6)
        assert derivative["y"] == pytest.approx(dy.tolist(), abs=1e-6)


# --------------------------------------------------------------------------- Data D1-D3
def test_d1_custom_dataset_batches(app):
    at = app("pages/data.py")
    at.button(key="data_ex_D1").click().run()
    loader = DataLoader(TensorDataset(torch.randn(100, 10), torch.randint(0, 2, (100,))), batch_size=32,
                        shuffle=True)
    expected = [(str(tuple(x.shape)), str(tuple(y.shape))) for x, y in loader]
    table = at.dataframe[0].value
    assert list(zip(table.iloc[:, 1], table.iloc[:, 2], strict=True)) == expected


def test_d2_normalization_ranges(app):
    from core.ml.data import load_bundled

    at = app("pages/data.py")
    at.button(key="data_ex_D2").click().run()
    pixels = load_bundled().train_images[:2000].float() / 255  # the sample the page takes
    table = at.dataframe[0].value.set_index(EN["data.normalize.step"])
    for step, values in (("ToTensor()", pixels), ("Normalize((0.5,), (0.5,))", (pixels - 0.5) / 0.5),
                         ("Normalize((0.1307,), (0.3081,))", (pixels - 0.1307) / 0.3081)):
        row = table.loc[step]
        assert (row["min"], row["max"]) == pytest.approx((values.min().item(), values.max().item()), abs=1e-5)
        assert (row["mean"], row["std"]) == pytest.approx((values.mean().item(), values.std().item()), abs=1e-4)


def test_d3_flip_and_imagenet_normalize(app):
    from core.ml.data import load_bundled

    at = app("pages/data.py")
    at.button(key="data_ex_D3").click().run()
    data = load_bundled()
    idx = torch.randperm(len(data.train_labels), generator=torch.Generator().manual_seed(0))[:8]
    rgb = data.train_images[idx].unsqueeze(1).expand(-1, 3, -1, -1)
    # A flip moves pixels but keeps every value, so the normalized range does not depend on it.
    after = T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))(T.ToDtype(torch.float32, scale=True)(rgb))
    row = at.dataframe[0].value.set_index(EN["data.batch.col.tensor"]).loc[EN["data.augment.row.after"]]
    assert row[EN["data.batch.col.shape"]] == str(tuple(after.shape))
    assert (row["min"], row["max"]) == pytest.approx((after.min().item(), after.max().item()), abs=1e-5)


# --------------------------------------------------------------------------- Export E1-E3, Profiler P1
@pytest.fixture
def exported(app):
    at = app("pages/builder.py")
    at.button(key="bld_ex_M5").click().run()  # the tutorials' CNN
    at.switch_page("pages/export.py").run()
    at.multiselect(key="ex_formats").set_value(["state_dict", "torchscript_trace", "onnx"]).run()
    at.button(key="ex_run").click().run()
    assert not at.exception
    return at, {r.format: r for r in at.session_state["ex_results"][1]}


def test_e1_e2_e3_files_reload_to_the_eager_output(exported):
    import io

    import onnxruntime as ort

    from core.ml.modules import build_model

    at, results = exported
    spec = at.session_state["current_spec"]
    x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    # E1: the state_dict loads into a model built from the spec; its outputs are the exported model's.
    state = torch.load(io.BytesIO(results["state_dict"].data), weights_only=True)
    model = build_model(spec, seed=0).eval()
    model.load_state_dict(state)
    with torch.no_grad():
        eager = model(x)
    # E2: the traced file (our own bytes) gives the same output; E3: onnxruntime too.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.load(io.BytesIO(results["torchscript_trace"].data))
    with torch.no_grad():
        assert torch.allclose(traced(x), eager, atol=1e-5)
    session = ort.InferenceSession(results["onnx"].data, providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {"input": x.numpy()})[0]
    assert np.allclose(onnx_out, eager.numpy(), atol=1e-4)
    table = at.dataframe[0].value.set_index("format")
    assert (table["max_abs_diff"].fillna(0) < 1e-3).all()


def test_p1_profile_table(app):
    at = app("pages/profiler.py")
    at.button(key="pf_p1").click().run()
    table = at.dataframe[0].value
    assert len(table) == 10 and set(table["kind"]) <= {"op", "label"}
    row = table.set_index("name").loc["model_inference"]
    assert row["calls"] == 1  # record_function("model_inference") around one forward pass
    assert (table["self_cpu_ms"] >= 0).all()


# --------------------------------------------------------------------------- Home H1
def test_h1_environment_facts(app):
    at = app()
    env = dict(zip(at.dataframe[1].value.iloc[:, 0], at.dataframe[1].value.iloc[:, 1], strict=True))
    assert env[EN["env.torch"]] == torch.__version__
    if torch.cuda.is_available():
        assert env[EN["env.cuda"]] == EN["env.cuda_yes"].format(count=torch.cuda.device_count(),
                                                                name=torch.cuda.get_device_name(0))
    else:
        assert env[EN["env.cuda"]] == EN["env.cuda_no"]
    # torch's thread count is per OS thread (OpenMP): the script thread's, read live, not this test thread's.
    threads = re.fullmatch(r"(\d+) torch threads on (\d+) cores", env[EN["env.threads"]])
    assert threads and 1 <= int(threads[1]) <= int(threads[2]) == os.cpu_count()
