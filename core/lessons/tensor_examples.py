"""The tutorials' tensor examples T1..T7, run with PyTorch's true results.

Their notes are ``core.errors.Message``s (catalogue keys with parameters), so a page shows them in
its language; the code lines and PyTorch's own messages stay as they are (code).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from core.errors import Code, LabError, Message, exception_text
from core.lessons.tensors import _dtype_name, _shape, broadcast_explain

# --------------------------------------------------------------------------- examples
EXAMPLES: dict[str, dict[str, Any]] = {
    "T1": {
        "title": Message("tensors.ex.T1"),
        "code": (
            "import torch\n"
            "a = torch.tensor([[1, 2, 3], [4, 5, 6]])\n"
            "b = torch.tensor([[.1, .2, .3], [.4, .5, .6]])\n"
            "c = a + b\n"
            "print(c)\n"
            "print(c.mean())"
        ),
        "note": Message("tensors.note.T1"),
    },
    "T2": {
        "title": Message("tensors.ex.T2"),
        "code": (
            "import numpy as np\n"
            "import torch\n"
            "t = torch.tensor([1, 2, 3])          # int64\n"
            "f = torch.tensor([1.0, 2.0, 3.0])    # float32\n"
            "n = np.array([1.0, 2.0, 3.0])        # float64\n"
            "s = torch.from_numpy(n)              # float64 kept, memory shared\n"
            "c = torch.tensor(n)                  # a copy\n"
            "back = s.numpy()\n"
            "n[0] = 100.0\n"
            "print(s, c)"
        ),
        "note": None,
    },
    "T3": {
        "title": Message("tensors.ex.T3"),
        "code": (
            "import torch\n"
            "torch.manual_seed(0)\n"
            "z = torch.zeros(3, 2)\n"
            "o = torch.ones(3, 2)\n"
            "r = torch.rand(2, 2)    # uniform on [0, 1)\n"
            "g = torch.randn(2, 2)   # standard normal\n"
            "print(z, o, r, g, sep='\\n')"
        ),
        "note": None,
    },
    "T4": {
        "title": Message("tensors.ex.T4"),
        "code": (
            "import torch\n"
            "x = torch.arange(24).reshape(2, 3, 4)\n"
            "print(x.view(6, 4).shape)\n"
            "y = x.transpose(1, 2)\n"
            "print(y.is_contiguous())      # False\n"
            "# y.view(6, 4)                # RuntimeError\n"
            "print(y.reshape(6, 4).shape)  # reshape copies when it must"
        ),
        "note": None,
    },
    "T5": {
        "title": Message("tensors.ex.T5"),
        "code": (
            "import torch\n"
            "x = torch.arange(12.).reshape(3, 4)\n"
            "u = x.unsqueeze(0)          # (1, 3, 4)\n"
            "s = u.squeeze(0)            # (3, 4)\n"
            "t = x.transpose(0, 1)       # (4, 3)\n"
            "# x.permute(1, 0, 2)        # RuntimeError: x has only 2 dimensions\n"
            "y = torch.arange(60.).reshape(3, 4, 5)\n"
            "p = y.permute(1, 0, 2)      # (4, 3, 5)"
        ),
        "note": Message("tensors.note.T5"),
    },
    "T6": {
        "title": Message("tensors.ex.T6"),
        "code": (
            "import math\n"
            "import torch\n"
            "x = torch.tensor([0.0, math.pi / 6, math.pi / 2, math.pi])\n"
            "y = x * 2 + torch.sin(x)              # the scalar 2 is broadcast\n"
            "col = x.reshape(4, 1)                 # (4, 1)\n"
            "row = torch.tensor([0.0, 1.0, 2.0])   # (3,)\n"
            "z = col * 2 + torch.sin(row)          # (4, 1) with (3,) -> (4, 3)"
        ),
        "note": None,
    },
    "T7": {
        "title": Message("tensors.ex.T7"),
        "code": (
            "import torch\n"
            "from torch import nn\n"
            "device = 'cuda' if torch.cuda.is_available() else 'meta'  # a second device\n"
            "x = torch.ones(2, 3)                      # on the CPU\n"
            "w = torch.ones(2, 3, device=device)\n"
            "# x + w                                   # RuntimeError: two devices\n"
            "print(x.to(w.device) + w)                 # fix: move one tensor to the other's device\n"
            "model = nn.Linear(3, 2).to(device)\n"
            "# model(x)                                # RuntimeError: the weights are on the other device\n"
            "print(model(x.to(device)).shape)          # fix: inputs go where the model is"
        ),
        "note": None,
    },
}
TUTORIAL_DEVICE_ERROR = ("Expected all tensors to be on the same device, but found at least two devices, "
                         "cuda:0 and cpu!")  # the tutorial's wording, PyTorch's message on a GPU


def _step(code: str, value: object = None, error: str | None = None, note: Message | None = None) -> dict[str, Any]:
    """One line of an example: its code, its value (tensor/str/number) or torch's error, and a note
    (a catalogue text, shown in the page's language)."""
    step: dict[str, Any] = {"code": code, "value": value, "error": error, "note": note,
                            "shape": None, "dtype": None, "text": None}
    if isinstance(value, torch.Tensor):
        step["shape"] = _shape(value)
        step["dtype"] = _dtype_name(value.dtype)
        step["text"] = str(value.detach())
    elif isinstance(value, np.ndarray):
        step["shape"] = tuple(value.shape)
        step["dtype"] = f"numpy.{value.dtype}"
        step["text"] = repr(value)
    elif value is not None:
        step["text"] = str(value)
    elif error is not None:
        step["text"] = error
    return step


def _error_of(fn) -> str:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - torch's message is the lesson
        return exception_text(exc, limit=10_000)
    raise AssertionError("expected torch to raise")  # pragma: no cover


def _example_t1() -> dict[str, Any]:
    a = torch.tensor([[1, 2, 3], [4, 5, 6]])
    b = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    c = a + b
    mean = c.mean()
    steps = [
        _step("a", a), _step("b", b),
        _step("c = a + b", c, note=Message("tensors.step.promotion")),
        _step("c.mean()", mean),
    ]
    return {"steps": steps, "values": {"a": a, "b": b, "sum": c, "mean": float(mean), "claimed_mean": 3.35}}


def _example_t2() -> dict[str, Any]:
    t = torch.tensor([1, 2, 3])
    f = torch.tensor([1.0, 2.0, 3.0])
    n = np.array([1.0, 2.0, 3.0])
    s = torch.from_numpy(n)
    c = torch.tensor(n)
    back = s.numpy()
    before = s.clone()
    n_before = n.copy()
    n[0] = 100.0
    steps = [
        _step("t = torch.tensor([1, 2, 3])", t),
        _step("f = torch.tensor([1.0, 2.0, 3.0])", f),
        _step("n = np.array([1.0, 2.0, 3.0])", n_before),
        _step("s = torch.from_numpy(n)", before, note=Message("tensors.step.kept")),
        _step("c = torch.tensor(n)", c.clone(), note=Message("tensors.step.copies")),
        _step("back = s.numpy()", n_before.copy()),
        _step("n[0] = 100.0; s", s.clone(), note=Message("tensors.step.shared")),
        _step("c", c.clone(), note=Message("tensors.step.copy_kept")),
        _step("back", np.array(back, copy=True), note=Message("tensors.step.same_memory")),
    ]
    values = {
        "list_dtype": _dtype_name(t.dtype),
        "float_list_dtype": _dtype_name(f.dtype),
        "numpy_dtype": str(n.dtype),
        "from_numpy_dtype": _dtype_name(s.dtype),
        "numpy_back_dtype": str(back.dtype),
        "shared_after_change": s.tolist(),
        "copy_after_change": c.tolist(),
        "shares_memory": bool(np.shares_memory(back, n)),
        "copy_shares_memory": c.data_ptr() == s.data_ptr(),
    }
    return {"steps": steps, "values": values}


def _example_t3() -> dict[str, Any]:
    gen = torch.Generator().manual_seed(0)
    z = torch.zeros(3, 2)
    o = torch.ones(3, 2)
    r = torch.rand(2, 2, generator=gen)
    g = torch.randn(2, 2, generator=gen)
    big_r = torch.rand(100_000, generator=torch.Generator().manual_seed(1))
    big_g = torch.randn(100_000, generator=torch.Generator().manual_seed(1))
    steps = [
        _step("torch.zeros(3, 2)", z), _step("torch.ones(3, 2)", o),
        _step("torch.rand(2, 2)", r, note=Message("tensors.step.uniform")),
        _step("torch.randn(2, 2)", g, note=Message("tensors.step.normal")),
    ]
    values = {
        name: {"shape": _shape(v), "min": float(v.min()), "max": float(v.max())}
        for name, v in (("zeros", z), ("ones", o), ("rand", r), ("randn", g))
    }
    values["rand_100k"] = {"min": float(big_r.min()), "max": float(big_r.max()), "mean": float(big_r.mean())}
    values["randn_100k"] = {"min": float(big_g.min()), "max": float(big_g.max()),
                            "mean": float(big_g.mean()), "std": float(big_g.std())}
    return {"steps": steps, "values": values}


def _example_t4() -> dict[str, Any]:
    x = torch.arange(24).reshape(2, 3, 4)
    v = x.view(6, 4)
    y = x.transpose(1, 2)
    view_error = _error_of(lambda: y.view(6, 4))
    r = y.reshape(6, 4)
    steps = [
        _step("x = torch.arange(24).reshape(2, 3, 4)", x,
              note=Message("tensors.step.stride", stride=Code(str(tuple(x.stride()))))),
        _step("x.view(6, 4)", v, note=Message("tensors.step.view_ok")),
        _step("y = x.transpose(1, 2)", y,
              note=Message("tensors.step.swapped", stride=Code(str(tuple(y.stride()))))),
        _step("y.is_contiguous()", y.is_contiguous()),
        _step("y.view(6, 4)", error=view_error),
        _step("y.reshape(6, 4)", r, note=Message("tensors.step.reshape_copies")),
    ]
    values = {
        "x_shape": _shape(x), "x_stride": tuple(x.stride()), "view_shape": _shape(v),
        "y_shape": _shape(y), "y_stride": tuple(y.stride()), "y_contiguous": y.is_contiguous(),
        "view_error": view_error, "reshape_shape": _shape(r),
        "reshape_shares_memory": r.data_ptr() == x.data_ptr(),
        "view_shares_memory": v.data_ptr() == x.data_ptr(),
        "explanation": Message("tensors.explain.T4"),
    }
    return {"steps": steps, "values": values}


def _example_t5() -> dict[str, Any]:
    x = torch.arange(12.0).reshape(3, 4)
    u = x.unsqueeze(0)
    s = u.squeeze(0)
    t = x.transpose(0, 1)
    permute_error = _error_of(lambda: x.permute(1, 0, 2))
    y = torch.arange(60.0).reshape(3, 4, 5)
    p = y.permute(1, 0, 2)
    steps = [
        _step("x = torch.arange(12.).reshape(3, 4)", x),
        _step("x.unsqueeze(0)", u), _step("x.unsqueeze(0).squeeze(0)", s),
        _step("x.transpose(0, 1)", t),
        _step("x.permute(1, 0, 2)", error=permute_error,
              note=Message("tensors.step.permute_dims", ndim=x.dim(), given=3)),
        _step("y = torch.arange(60.).reshape(3, 4, 5)", y),
        _step("y.permute(1, 0, 2)", p),
    ]
    values = {
        "unsqueeze_shape": _shape(u), "squeeze_shape": _shape(s), "transpose_shape": _shape(t),
        "permute_2d_error": permute_error, "permute_3d_shape": _shape(p),
    }
    return {"steps": steps, "values": values}


def _example_t6() -> dict[str, Any]:
    x = torch.tensor([0.0, math.pi / 6, math.pi / 2, math.pi])
    y = x * 2 + torch.sin(x)
    col = x.reshape(4, 1)
    row = torch.tensor([0.0, 1.0, 2.0])
    z = col * 2 + torch.sin(row)
    steps = [
        _step("x", x), _step("x * 2 + torch.sin(x)", y),
        _step("col = x.reshape(4, 1)", col), _step("row = torch.tensor([0.0, 1.0, 2.0])", row),
        _step("col * 2 + torch.sin(row)", z,
              note=Message("tensors.step.broadcast", a=Code("(4, 1)"), b=Code("(3,)"), result=Code(str(_shape(z))))),
    ]
    values = {"x": x, "y": y, "z": z, "z_shape": _shape(z),
              "broadcast": broadcast_explain((4, 1), (3,))}
    return {"steps": steps, "values": values}


def second_device() -> str:
    """The device T7 puts a tensor on: cuda when there is a GPU, else meta (shapes only, no data)."""
    return "cuda" if torch.cuda.is_available() else "meta"


def _example_t7() -> dict[str, Any]:
    from torch import nn

    device = second_device()
    x = torch.ones(2, 3)
    w = torch.ones(2, 3, device=device)
    add_error = _error_of(lambda: x + w)
    fixed = x.to(w.device) + w
    model = nn.Linear(3, 2).to(device)
    model_error = _error_of(lambda: model(x))
    out = model(x.to(device))
    steps = [
        _step("x = torch.ones(2, 3)", x, note=Message("tensors.step.on_device", device=Code(str(x.device)))),
        _step(f"w = torch.ones(2, 3, device={device!r})", w,
              note=Message("tensors.step.on_device", device=Code(str(w.device)))),
        _step("x + w", error=add_error, note=Message("tensors.step.two_devices")),
        _step("x.to(w.device) + w", fixed, note=Message("tensors.step.moved", device=Code(str(fixed.device)))),
        _step(f"model = nn.Linear(3, 2).to({device!r}); model(x)", error=model_error,
              note=Message("tensors.step.model_elsewhere")),
        _step(f"model(x.to({device!r}))", out, note=Message("tensors.step.moved", device=Code(str(out.device)))),
    ]
    note = (Message("tensors.note.T7_cuda") if device == "cuda"
            else Message("tensors.note.T7_meta", message=Code(TUTORIAL_DEVICE_ERROR)))
    values = {"device": device, "add_error": add_error, "model_error": model_error,
              "fixed_device": str(fixed.device), "fixed_shape": _shape(fixed), "model_out_shape": _shape(out),
              "model_out_device": str(out.device), "note": note}
    return {"steps": steps, "values": values}


_RUNNERS = {"T1": _example_t1, "T2": _example_t2, "T3": _example_t3,
            "T4": _example_t4, "T5": _example_t5, "T6": _example_t6, "T7": _example_t7}


def run_example(example_id: str) -> dict[str, Any]:
    """Run tutorial example T1..T7 with torch and return its real results.

    Returns ``{"id", "title", "code", "note", "steps", "values"}`` where ``steps`` is a list of
    ``{"code", "value", "error", "note", "shape", "dtype", "text"}`` (``value`` is a tensor,
    NumPy array, bool or number; ``error`` is torch's message when the line raises) and
    ``values`` holds the key facts (e.g. ``values["mean"] == 3.85`` for T1).
    """
    if example_id not in _RUNNERS:
        raise LabError("tensors.example_unknown", example=Code(repr(example_id)), choices=Code(", ".join(_RUNNERS)))
    out = _RUNNERS[example_id]()
    return {"id": example_id, **EXAMPLES[example_id], **out}
