"""Hostile input through the real pages (AppTest): escapes and denial of service.

Anyone who opens a shared lab URL can type into every box and craft every URL parameter,
including the share token ``s``. Each case here drives a page's real widgets (or its URL)
the way such a user would and checks that

* the page answers (the hostile run returns within the AppTest timeout; nothing is timed),
* with a clear message (an error, or the warning/notice the page gives for URLs),
* and no exception (no traceback reaches the page),
* no code ran: the marker file every payload tries to create never appears, and no file
  appears outside the lab home (``PYTORCH_LAB_HOME``, a temporary folder),
* memory stays bounded for the giant-tensor and giant-model cases (max RSS growth),
* and the server keeps serving: after the denial-of-service cases another session still
  gets answers from the page.

tests/core/safe/test_expr.py covers the evaluator itself; here it is the page path (widget ->
page -> core -> message) that is under test.
"""
from __future__ import annotations

import base64
import json
import resource
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.training.config import TrainConfig
from tests.pages.conftest import shown

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
MARK = "MARK"  # replaced by the absolute path of a marker file that payloads try to create
HOSTILE_TIMEOUT = 10  # seconds the hostile run may take before AppTest gives up (the page must answer)
MAX_RSS_GROWTH = 2 * 1024**3  # bytes: giant-tensor payloads must not allocate their tensors


@dataclass
class Case:
    id: str
    page: str
    # Actions after the page is open: ("text", key, value), ("area", key, value), ("view", key, value)
    # (segmented control), ("select", key, value), ("multi", key, [values]), ("number", key, value),
    # ("click", key), ("check", key).
    steps: list = field(default_factory=list)
    params: dict = field(default_factory=dict)  # URL parameters of the first request
    expect: str = "error"  # "error": st.error; "warning": a warning (page or sidebar notice)
    needle: str = ""  # a piece of the message, as the user reads it (case-insensitive)
    dos: bool = False  # denial of service: check memory and that the page still serves others
    seed_run: bool = False  # the lab home holds a finished run first (Runs page cases)


def token(obj=None, raw: bytes | None = None, version: str = "1") -> str:
    """A share token as core.safe.share makes them, for any payload (also ones the lab never makes)."""
    raw = json.dumps(obj).encode() if raw is None else raw
    return f"{version}." + base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")


def expr(text: str, needle: str, dos: bool = False, cid: str | None = None) -> Case:
    return Case(cid or f"tensors-expr:{text[:50]}", "pages/tensors.py", [("view", "ten_view", "expr"),
                                                                          ("text", "ten_expr", text)],
                needle=needle, dos=dos)


def autograd(view: str, key: str, text: str, needle: str, dos: bool = False) -> Case:
    return Case(f"autograd-{key}:{text[:50]}", "pages/autograd.py",
                [("view", "ag_view", view), ("text", key, text)], needle=needle, dos=dos)


def spec_json(text: str, needle: str, cid: str, dos: bool = False) -> Case:
    return Case(f"builder-json:{cid}", "pages/builder.py", [("area", "bld_json", text), ("click", "bld_json_apply")],
                needle=needle, dos=dos)


def shared(page: str, state, needle: str, cid: str, raw: bytes | None = None, dos: bool = False) -> Case:
    return Case(f"share-token:{cid}", page, params={"s": token(state, raw)}, expect="warning", needle=needle,
                dos=dos)


def linear(i: int, o: int) -> dict:
    return {"type": "Linear", "args": {"in_features": i, "out_features": o}}


def model(layers: list, shape=(1, 28, 28), name: str = "Net") -> dict:
    return {"name": name, "input_shape": list(shape), "layers": layers}


DEEP = 1000  # levels of nesting the brief asks for
REFUSED_UNDERSCORE = "names starting with '_' are refused"

CASES: list[Case] = [
    # ---- Tensors page: the free-form expression box ---------------------------------------
    expr("().__class__.__bases__[0].__subclasses__()", REFUSED_UNDERSCORE),
    expr("x.__class__.__mro__[-1].__subclasses__()", REFUSED_UNDERSCORE),
    expr("x.grad.__class__.__init__.__globals__", REFUSED_UNDERSCORE),
    expr("x.T.__dict__", REFUSED_UNDERSCORE),
    expr("__import__('os').system('touch MARK')", "method 'system' is not allowed"),
    expr("'{0.__class__}'.format(x)", "method 'format' is not allowed"),
    expr("'{0.__class__}' % x", "strings are not allowed"),
    expr("f'{x.__class__}'", "f-strings are not allowed"),
    expr("torch.load('/etc/passwd')", "name 'torch' is not allowed"),
    expr("torch.save(x, 'MARK')", "name 'torch' is not allowed"),
    expr("torch.from_file('/etc/passwd', size=100)", "name 'torch' is not allowed"),
    expr("np.fromfile('/etc/passwd')", "name 'np' is not allowed"),
    expr("open('MARK', 'w').write('x')", "method 'write' is not allowed"),
    expr("open('MARK', 'w')", "function 'open' is not allowed"),
    expr("x.numpy().tofile('MARK')", "method 'tofile' is not allowed"),
    expr("getattr(x, '__class__')", "function 'getattr' is not allowed"),
    expr("getattr(x, 'storage')()", "only the allowed functions and tensor methods can be called"),
    expr("eval('1')", "function 'eval' is not allowed"),
    expr("breakpoint()", "function 'breakpoint' is not allowed"),
    expr("x.register_hook(print)", "method 'register_hook' is not allowed"),
    expr("x.sum().backward()", "method 'backward' is not allowed"),
    expr("x.to(x.device)", "only accepts a dtype"),
    expr("sum(x, out=x)", "keyword argument 'out' is not allowed"),
    expr("lambda: __import__('os').system('id')", "lambda functions are not allowed"),
    expr("[a for a in range(10**9) for b in range(10**9)]", "comprehensions are not allowed", dos=True),
    expr("sum(i for i in range(10**12))", "generator expressions are not allowed", dos=True),
    expr("(y := x)", "assignments"),
    expr("import os", "only a single expression is allowed"),
    expr("x; __import__('os')", "only a single expression is allowed"),
    expr("x\x00", "null"),
    expr("zeros(10**6, 10**6)", "is too large (max 4,000,000)", dos=True),
    expr("randn(100000, 100000)", "is too large (max 4,000,000)", dos=True),
    expr("x.expand(10**6, 10**6)", "is too large (max 4,000,000)", dos=True),
    expr("ones(3000, 3000) @ ones(3000, 3000)", "is too large (max 4,000,000)", dos=True),
    expr("[1] * 10**9", "list of 1,000,000,000 elements is too large", dos=True),
    expr("[[1] * 10**5] * 10**5", "is too large", dos=True),
    expr("randn(4000000).split(1)", "pieces are too many", dos=True),
    expr("2**10**10", "too large", dos=True),
    expr("9**9**9", "too large", dos=True),
    expr("x ** 10**9", "exponent 1000000000 is too large (max 64)", dos=True),
    expr("pow(x, 10**6)", "exponent 1000000 is too large (max 64)", dos=True),
    expr("(" * 240 + "x" + ")" * 240, "nested too deeply", dos=True, cid="tensors-expr:240 nested brackets"),
    expr("-" * 400 + "x", "nested too deeply", dos=True, cid="tensors-expr:400 unary minus"),
    # The text box keeps 500 characters (Streamlit cuts longer values on the server too), so a
    # 10,001-character sum arrives cut after a '+', and 1000 nested brackets as 500 open ones.
    expr("x" + "+x" * 5000, "syntax error", dos=True, cid="tensors-expr:10,001 characters"),
    expr("(" * DEEP + "x" + ")" * DEEP, "nested too deeply", dos=True, cid="tensors-expr:1000 nested brackets"),
    Case("tensors-url:1000 nested brackets", "pages/tensors.py",
         params={"ten_view": "expr", "ten_expr": "(" * DEEP + "x" + ")" * DEEP}, needle="nested too deeply",
         dos=True),
    Case("tensors-url:subclass walk", "pages/tensors.py",
         params={"ten_view": "expr", "ten_expr": "x.__class__.__subclasses__()"}, needle=REFUSED_UNDERSCORE),
    # The tensor-creation form parses values and shapes with the same safe parser.
    Case("tensors-create:values escape", "pages/tensors.py",
         [("view", "ten_view", "create"), ("select", "ten_kind", "tensor"),
          ("text", "ten_values", "__import__('os').system('touch MARK')"), ("click", "ten_create")],
         needle="could not read the values: method 'system' is not allowed"),
    Case("tensors-create:giant shape", "pages/tensors.py",
         [("view", "ten_view", "create"), ("select", "ten_kind", "zeros"), ("text", "ten_shape", "10**6, 10**6"),
          ("click", "ten_create")], needle="the limit is 1,000,000", dos=True),
    Case("tensors-broadcast:shape escape", "pages/tensors.py",
         [("view", "ten_view", "broadcast"), ("text", "ten_ba", "().__class__")], needle=REFUSED_UNDERSCORE),

    # ---- Autograd page: f(x), g(w), w values and the graph expression ---------------------
    autograd("derivative", "ag_f", "x.__class__.__base__", REFUSED_UNDERSCORE),
    autograd("derivative", "ag_f", "__import__('os').system('touch MARK')", "method 'system' is not allowed"),
    autograd("derivative", "ag_f", "__import__('os')", REFUSED_UNDERSCORE),
    autograd("derivative", "ag_f", "x ** 10**10", "too large", dos=True),
    autograd("derivative", "ag_f", "9**9**9", "too large", dos=True),
    autograd("derivative", "ag_f", "-(" * 200 + "x" + ")" * 200, "nested too deeply", dos=True),
    autograd("gradient", "ag_g", "w0.__class__", REFUSED_UNDERSCORE),
    autograd("gradient", "ag_w", "__import__('os')", REFUSED_UNDERSCORE),
    autograd("gradient", "ag_w", ", ".join(["1"] * 1000), "w must have between 1 and 8 values"),
    autograd("gradient", "ag_w", "zeros(10**6, 10**6)", "too large", dos=True),
    autograd("graph", "ag_expr", "(x * w).sum().backward()", "method 'backward' is not allowed"),
    autograd("graph", "ag_xv", "zeros(10**6, 10**6)", "too large", dos=True),
    Case("autograd-url:open in f(x)", "pages/autograd.py", params={"ag_f": "open('/etc/passwd')"},
         needle="function 'open' is not allowed"),

    # ---- Model Builder: the JSON editor and the input shape --------------------------------
    spec_json(json.dumps(model([linear(784, 65536)] + [linear(65536, 65536)] * 4)), "over the cap",
              "4 x Linear(65536, 65536)", dos=True),
    spec_json(json.dumps(model([{"type": "os.system", "args": {"command": "touch MARK"}}])), "unknown layer type",
              "layer type os.system"),
    spec_json(json.dumps(model([{"type": "__import__", "args": {}}])), "unknown layer type", "layer type __import__"),
    spec_json(json.dumps(model([{"type": "ReLU", "name": "__class__"}])), "not starting with '_'",
              "dunder layer name"),
    spec_json(json.dumps(model([], name="../../etc/passwd")), "model name must be a Python identifier",
              "path in the model name"),
    spec_json(json.dumps(model([{"type": "ReLU", "args": {}, "__reduce__": "os.system"}])), "unknown keys",
              "dunder key in a layer"),
    spec_json(json.dumps(model([{"type": "Linear", "args": {"in_features": "__import__('os')",
                                                             "out_features": 10}}])),
              "must be an integer", "string as a size"),
    spec_json(json.dumps(model([linear(-1, 10)])), "must be between", "negative size"),
    spec_json(json.dumps(model([{"type": "Dropout", "args": {"p": float("nan")}}])), "finite number", "NaN dropout"),
    spec_json(json.dumps(model([{"type": "Dropout", "args": {"p": float("inf")}}])), "finite number",
              "infinite dropout"),
    spec_json("[" * 100_000, "nested too deeply", "JSON nested 100,000 deep", dos=True),
    spec_json(json.dumps(model([{"type": "Sequential", "layers": [{"type": "Sequential", "layers": [
        {"type": "Sequential", "layers": [{"type": "Sequential", "layers": [{"type": "Sequential", "layers": [
            {"type": "Sequential", "layers": [{"type": "ReLU"}]}]}]}]}]}]}])),
              "nest at most 4 deep", "Sequential 6 deep"),
    spec_json(json.dumps(model([{"type": "ReLU"}] * 1000)), "at most 200 layers", "1000 layers", dos=True),
    spec_json(" " * 200_001, "too long", "200,001 characters", dos=True),
    spec_json(json.dumps(model([{"type": "ReLU"}], shape=(4096, 4096, 4096))), "activation elements",
              "input of 4096^3", dos=True),
    spec_json(json.dumps(model([{"type": "Conv2d", "args": {"in_channels": 1, "out_channels": 65536,
                                                             "kernel_size": 1}}], shape=(1, 256, 256))),
              "activation elements", "65536 feature maps of 256x256", dos=True),
    Case("builder-shape:huge input", "pages/builder.py", [("text", "bld_shape", "4096, 4096, 4096")],
         needle="activation elements", dos=True),
    Case("builder-shape:not a shape", "pages/builder.py", [("text", "bld_shape", "__import__('os')")],
         needle="is not an input shape"),
    Case("builder-shape:too many digits", "pages/builder.py", [("text", "bld_shape", "999999, 1")],
         needle="is not an input shape"),
    Case("builder-forward:batch of huge activations", "pages/builder.py",
         [("area", "bld_json", json.dumps(model([{"type": "ReLU"}], shape=(1, 1000, 1000)))),
          ("click", "bld_json_apply"), ("view", "bld_tab", "forward"), ("number", "bld_batch", 1024)],
         needle="over the cap of 256,000,000", dos=True),

    # ---- Train page: run ids in the URL ----------------------------------------------------
    Case("train-url:run ../../etc/passwd", "pages/train.py", params={"run": "../../etc/passwd"},
         expect="warning", needle="invalid run id ../../etc/passwd"),
    Case("train-url:run ..%2F..%2Fetc", "pages/train.py", params={"run": "..%2F..%2Fetc%2Fpasswd"},
         expect="warning", needle="invalid run id"),
    Case("train-url:run /etc/passwd", "pages/train.py", params={"run": "/etc/passwd"}, expect="warning",
         needle="invalid run id /etc/passwd"),
    Case("train-url:run with NUL", "pages/train.py", params={"run": "r1\x00../../x"}, expect="warning",
         needle="invalid run id"),
    Case("train-url:run 5000 characters", "pages/train.py", params={"run": "a" * 5000}, expect="warning",
         needle="invalid run id"),
    Case("train-url:second run id hostile", "pages/train.py", params={"run": "r1,../../x"}, expect="warning",
         needle="invalid run id ../../x"),

    # ---- Train page: hostile training configs (a share link is the one way past the widgets) -
    *[shared("pages/train.py", {"train": {field_name: value}}, "ignored", f"train {field_name}={value!r}")
      for field_name, value in [("lr", float("nan")), ("lr", float("inf")), ("lr", -1.0), ("lr", 1e9), ("lr", 1e-7),
                                ("lr", "0.1; rm -rf /"), ("batch_size", 10**9), ("batch_size", -1),
                                ("epochs", 10**9), ("epochs", 0), ("weight_decay", float("nan")),
                                ("weight_decay", -5.0), ("weight_decay", 1e9), ("label_smoothing", 0.9),
                                ("momentum", [1])]],
    shared("pages/train.py", {"train": {"__init__": 1}}, "damaged", "train unknown field"),
    shared("pages/train.py", {"train": {"source": "../../etc/passwd"}}, "damaged", "train source path"),

    # ---- Runs, Predict, Export, Profiler: run ids from links --------------------------------
    shared("pages/runs.py", {"runs": ["../../etc/passwd"]}, "do not exist here: ../../etc/passwd", "runs traversal"),
    shared("pages/runs.py", {"runs": ["a" * 5000, "/etc/passwd"]}, "do not exist here", "runs long and absolute"),
    Case("predict-url:pr_run traversal", "pages/predict.py", params={"pr_run": "../../etc/passwd"},
         expect="warning", needle="../../etc/passwd from the link does not exist"),
    Case("export-url:ex_model traversal", "pages/export.py", params={"ex_model": "../../etc/passwd"},
         expect="warning", needle="../../etc/passwd from the link does not exist"),
    Case("profiler-url:pf_model absolute path", "pages/profiler.py", params={"pf_model": "/etc/passwd"},
         expect="warning", needle="/etc/passwd from the link does not exist"),
    # Export: the ONNX input/output names (they end up in the exported file) refuse paths.
    Case("export-names:path traversal", "pages/export.py",
         [("multi", "ex_formats", ["onnx"]), ("text", "ex_names", "../../etc/passwd, out"), ("click", "ex_run")],
         needle="input_names must be names"),
    Case("export-names:dunder", "pages/export.py",
         [("multi", "ex_formats", ["onnx"]), ("text", "ex_names", "x, __import__('os')"), ("click", "ex_run")],
         needle="output_names must be names"),
    Case("profiler:batch of huge activations", "pages/profiler.py", [("number", "pf_batch", 1024), ("click", "pf_run")],
         params={"s": token({"model": model([{"type": "ReLU"}], shape=(1, 1000, 1000))})},
         needle="over the cap of 256,000,000", dos=True),

    # ---- Runs page: managing a run with hostile names and tags ------------------------------
    Case("runs-manage:1000 tags", "pages/runs.py",
         [("view", "rn_view", "manage"), ("text", "rn_new_tags", ",".join(f"t{i}" for i in range(1000))),
          ("click", "rn_tag")], needle="at most 32 tags", seed_run=True),

    # ---- Share tokens (the ?s= parameter), on any page ---------------------------------------
    Case("share-token:tampered", "pages/home.py", params={"s": token({"model": model([linear(784, 10)])})[:-8]
                                                           + "AAAAAAAA"}, expect="warning", needle="ignored"),
    Case("share-token:oversized", "pages/home.py", params={"s": "1." + "A" * 100_000}, expect="warning",
         needle="too long", dos=True),
    Case("share-token:garbage", "pages/home.py", params={"s": "'; DROP TABLE runs; --"}, expect="warning",
         needle="another version"),
    Case("share-token:NUL bytes", "pages/home.py", params={"s": "1.\x00\x00\x00"}, expect="warning",
         needle="damaged"),
    Case("share-token:other version", "pages/home.py", params={"s": token({"a": 1}, version="2")},
         expect="warning", needle="another version"),
    shared("pages/home.py", None, "too large", "zip bomb", raw=b"[" + b"0," * 200_000 + b"0]", dos=True),
    shared("pages/home.py", None, "damaged", "JSON nested 60,000 deep", raw=b'{"a":' + b"[" * 60_000, dos=True),
    shared("pages/home.py", [1, 2, 3], "damaged", "not an object"),
    shared("pages/home.py", None, "damaged", "not JSON", raw=b"\x80\x04\x95 pickle bytes"),
    shared("pages/builder.py", {"model": model([linear(784, 65536)] + [linear(65536, 65536)] * 4)}, "over the cap",
           "model over the parameter cap", dos=True),
    shared("pages/builder.py", {"model": model([{"type": "ReLU"}], shape=(4096, 4096, 4096))}, "activation elements",
           "model with a 4096^3 input", dos=True),
    shared("pages/builder.py", {"model": model([{"type": "os.system"}])}, "unknown layer type",
           "model with a hostile layer type"),
    shared("pages/tensors.py", {"tensors": {"x": {"dtype": "float32", "values": "__import__('os')"}}},
           "could not be used", "tensor values as code"),
    shared("pages/tensors.py", {"tensors": {"x": {"dtype": "object", "values": [1]}}}, "could not be used",
           "tensor of dtype object"),
]


def _ids(cases):
    seen = set()
    for case in cases:
        assert case.id not in seen, f"duplicate case id {case.id}"
        seen.add(case.id)
    return [c.id for c in cases]


IDS = _ids(CASES)


def files_under(folder: Path, skip: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if skip not in p.parents and p != skip}


def max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """A private lab home inside tmp_path; everything else in tmp_path must stay as it is."""
    home = tmp_path / "home"
    home.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("a file next to the lab home")
    monkeypatch.setenv("PYTORCH_LAB_HOME", str(home))
    monkeypatch.setenv("PYTORCH_LAB_DOWNLOAD", "0")
    return tmp_path, home, outside / "pwned"


@pytest.fixture(scope="module", autouse=True)
def warm(tmp_path_factory):
    """Open every page once, so each case's run measures the page, not the first imports."""
    import os

    old = os.environ.get("PYTORCH_LAB_HOME")
    os.environ["PYTORCH_LAB_HOME"] = str(tmp_path_factory.mktemp("warm"))
    try:
        at = AppTest.from_file(APP, default_timeout=300)
        at.run()
        for page in sorted({c.page for c in CASES}):
            at.switch_page(page).run()
    finally:
        if old is None:
            os.environ.pop("PYTORCH_LAB_HOME", None)
        else:
            os.environ["PYTORCH_LAB_HOME"] = old


def seed_run(home: Path) -> str:
    from core.runs.store import SQLiteRunStore

    store = SQLiteRunStore(home)
    return store.create_run(TrainConfig(epochs=1).to_dict(), name="seed run", status="completed", kind="job")


def do(at: AppTest, step: tuple, marker: Path) -> None:
    kind, key, *value = step
    value = [v.replace(MARK, str(marker)) if isinstance(v, str) else v for v in value]
    if kind == "text":
        at.text_input(key=key).set_value(value[0])
    elif kind == "area":
        at.text_area(key=key).set_value(value[0])
    elif kind == "view":
        at.button_group(key=key).set_value(value[0])
    elif kind == "select":
        at.selectbox(key=key).set_value(value[0])
    elif kind == "multi":
        at.multiselect(key=key).set_value(value[0])
    elif kind == "number":
        at.number_input(key=key).set_value(value[0])
    elif kind == "click":
        at.button(key=key).click()
    else:  # pragma: no cover - a typo in the table
        raise AssertionError(f"unknown step {kind}")


def messages(at: AppTest, expect: str) -> list[str]:
    found = at.error if expect == "error" else at.warning  # at.warning includes the sidebar's notices
    return [shown(m.value) for m in found]


def still_serves(marker: Path) -> None:
    """Another session gets a normal answer from the Tensors page right after the attack."""
    at = AppTest.from_file(APP, default_timeout=HOSTILE_TIMEOUT)
    at.query_params["ten_view"] = "expr"
    at.switch_page("pages/tensors.py").run()
    at.text_input(key="ten_expr").set_value("x @ x.T + 1").run(timeout=HOSTILE_TIMEOUT)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "torch.matmul" in at.code[0].value or "@" in at.code[0].value
    assert not marker.exists()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_hostile_input_is_refused_with_a_message(case: Case, lab):
    tmp, home, marker = lab
    run_id = seed_run(home) if case.seed_run else None
    before = files_under(tmp, home)
    rss = max_rss()
    at = AppTest.from_file(APP, default_timeout=HOSTILE_TIMEOUT)
    for key, value in case.params.items():
        at.query_params[key] = value.replace(MARK, str(marker))
    at.switch_page(case.page)
    if case.steps:
        at.run(timeout=60)
        assert not at.exception, [e.value for e in at.exception]
        if run_id:  # pick the run, as a user does before managing it
            at.multiselect(key="rn_sel").set_value([run_id]).run()
        for step in case.steps:
            do(at, step, marker)
            at.run(timeout=HOSTILE_TIMEOUT)  # each hostile action must be answered in time
    else:
        at.run(timeout=HOSTILE_TIMEOUT)
    assert not at.exception, [e.value for e in at.exception]
    found = messages(at, case.expect)
    assert any(case.needle.lower() in m.lower() for m in found), (case.needle, found, messages(at, "error"))
    assert not marker.exists() and not (ROOT / "pwned").exists()
    assert files_under(tmp, home) == before, "a file appeared (or went) outside the lab home"
    if case.dos:
        assert max_rss() - rss < MAX_RSS_GROWTH, f"max RSS grew by {(max_rss() - rss) / 1e9:.1f} GB"
        still_serves(marker)


def test_the_corpus_is_large_and_covers_every_surface():
    assert len(CASES) >= 60
    pages = {c.page for c in CASES}
    assert {"pages/tensors.py", "pages/autograd.py", "pages/builder.py", "pages/train.py", "pages/runs.py",
            "pages/predict.py", "pages/export.py", "pages/profiler.py"} <= pages
    assert sum(1 for c in CASES if "s" in c.params) >= 20  # share tokens
    assert sum(1 for c in CASES if c.dos) >= 20


@pytest.mark.parametrize("key,value", [
    ("tr_lr", float("nan")), ("tr_lr", float("inf")), ("tr_lr", -1.0), ("tr_lr", 1e9), ("tr_batch_size", 10**9),
    ("tr_batch_size", -1), ("tr_epochs", 10**9), ("tr_weight_decay", float("nan")), ("tr_weight_decay", 1e9),
])
def test_train_form_never_takes_values_outside_its_widgets(lab, key, value):
    """A forged widget message with NaN or a huge value never reaches the trainer: Streamlit keeps
    the widget inside its range, so the config the Start button would use is a valid one."""
    from pages.ui.train_views import FORM_RANGES

    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/train.py").run()
    at.number_input(key=key).set_value(value).run(timeout=HOSTILE_TIMEOUT)
    assert not at.exception
    got = at.number_input(key=key).value
    lo, hi = FORM_RANGES[key.removeprefix("tr_")]
    assert got == got and lo <= got <= hi, got  # got == got: not NaN
    values = {f: at.session_state[f"tr_{f}"] for f in ("lr", "batch_size", "epochs", "weight_decay")}
    TrainConfig(**values).validate()  # what Start would launch is valid
    assert not at.error


def test_run_names_are_shown_literally(lab):
    """A run name is text anyone can set; on the Runs page it must not become an image beacon or a link."""
    _tmp, home, _marker = lab
    run_id = seed_run(home)
    payload = "![t](https://evil.example/t.png) [click](javascript:alert(1)) **bold** <img src=x onerror=alert(1)>"
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/runs.py").run()
    at.multiselect(key="rn_sel").set_value([run_id]).run()
    at.button_group(key="rn_view").set_value("manage").run()
    at.text_input(key="rn_new_name").set_value(payload[:60]).run()
    at.button(key="rn_rename").click().run(timeout=HOSTILE_TIMEOUT)
    assert not at.exception and not at.error
    for view in ("manage", "open"):
        at.button_group(key="rn_view").set_value(view).run(timeout=HOSTILE_TIMEOUT)
        heading = at.subheader[0].value
        assert shown(heading).startswith(payload[:60].strip()), heading
        assert "![" not in heading and "](" not in heading and "**" not in heading  # every mark escaped


@pytest.mark.parametrize("params", [{}, {"run": ""}, {"run": " , "}])
def test_train_page_without_a_run_id_has_no_notice(lab, params):
    """The run-id notice is for hostile ids only, not for a page opened without one."""
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in params.items():
        at.query_params[key] = value
    at.switch_page("pages/train.py").run()
    assert not at.exception and not at.warning and not at.error
