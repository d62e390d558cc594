"""The Model Builder's views below the layer stack: forward pass, model.train() vs model.eval(), the tutorials'
snippets.

Each view calls one engine function of ``core.lessons.builder`` and renders what it returns;
table headers and verdicts are UI text in the page's language, code and PyTorch's output stay code.
"""
from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import streamlit as st

from core.errors import Code
from core.i18n import t
from core.lessons.builder import (
    flatten_demo,
    hooks_demo,
    inference_demo,
    logits_demo,
    model_train_eval,
    parameters_table,
    subclass_demo,
    summaries_demo,
    train_eval_demo,
)
from core.ml.modules import build_model
from core.ml.spec import ModelSpec, SpecError
from pages.ui.text import lang, tr


def table(rows: list[dict] | pd.DataFrame, prefix: str | None = None, localized: Iterable[str] = (),
          formats: dict[str, str] | None = None) -> None:
    """A table whose headers are UI text (``prefix`` + column, spaces as ``_``) when ``prefix`` is given."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    names = {c: tr(prefix + str(c).replace(" ", "_").replace("-", "_")) for c in frame.columns} if prefix else {}
    config = {names.get(c, c): st.column_config.NumberColumn(format="localized") for c in localized}
    config.update({names.get(c, c): st.column_config.NumberColumn(format=f) for c, f in (formats or {}).items()})
    st.dataframe(frame.rename(columns=names), hide_index=True, width="stretch", column_config=config)


@st.cache_data(max_entries=32, show_spinner=False)
def _cached(fn_name: str, spec: ModelSpec | None, **kwargs):
    fns = {"flatten": flatten_demo, "logits": logits_demo, "inference": inference_demo, "summaries": summaries_demo,
           "subclass": subclass_demo, "hooks": hooks_demo, "train_eval": model_train_eval}
    return fns[fn_name](**kwargs) if spec is None else fns[fn_name](spec, **kwargs)


def forward_view(spec: ModelSpec) -> None:
    """M4 and M11: a forward pass on a random batch, and named_parameters()."""
    from core.lessons.builder import forward_demo

    batch = st.number_input(tr("builder.batch"), 1, 1024, 64, key="bld_batch", bind="query-params")
    try:
        result = forward_demo(spec, batch=int(batch), seed=0)
        st.success(tr("builder.forward", inp=Code(str(result["input_shape"])), out=Code(str(result["output_shape"]))))
        st.caption(tr("builder.forward_stats", mean=result["output_mean"], std=result["output_std"]))
    except SpecError as exc:  # a batch too large for this model's activations
        st.error(tr("error.bad_value", reason=exc))
    st.markdown(f"**{tr('builder.params')}**")
    table(parameters_table(build_model(spec)), prefix="builder.par.", localized=("count",), formats={"norm": "%.4f"})


def train_eval_view(spec: ModelSpec) -> None:
    """model.train() vs model.eval() on the learner's own model, then the tutorial's fixed example (M10)."""
    st.markdown(f"**{tr('builder.te.yours', name=Code(spec.name))}**")
    try:
        result = _cached("train_eval", spec, seed=0)
    except SpecError as exc:
        st.error(tr("error.bad_value", reason=exc))
    else:
        if result["rows"]:
            st.caption(tr("builder.te.yours_caption", batch=result["batch"]))
            table([{k: v for k, v in row.items()} for row in result["rows"]], prefix="builder.te.col.",
                  formats={"max_diff": "%.4g", "zeros_train": "%.1f"})
            st.caption(tr("builder.te.output", diff=result["output_diff"]))
        else:
            st.info(tr("builder.te.none", name=Code(spec.name), diff=result["output_diff"]))
    st.markdown(f"**{tr('builder.te.tutorial')}**")
    st.caption(tr("builder.traineval_caption"))
    table(train_eval_demo(), prefix="builder.m10.", formats={c: "%.4f" for c in (
        "train_mean", "train_std", "eval_mean", "eval_std", "max_diff")} | {"zeros_train": "%.1f"})
    st.code("drop = nn.Dropout(p=0.2)\nx = torch.randn(32, 100)\ndrop.train(); y_train = drop(x)\n"
            "drop.eval(); y_eval = drop(x)\nbn = nn.BatchNorm1d(256)\nln = nn.LayerNorm(256)", language="python")


def snippet_view(spec: ModelSpec, snippet: str) -> None:
    st.caption(tr(f"builder.snip.{snippet}.intro"))
    try:
        {"flatten": _flatten, "logits": _logits, "inference": _inference, "summaries": _summaries,
         "subclass": _subclass, "hooks": _hooks}[snippet](spec)
    except SpecError as exc:  # a model too large for the snippet's batch
        st.error(tr("error.bad_value", reason=exc))


def cell(key: str, **values) -> str:
    """UI text for a table cell: a table shows text literally, so nothing is Markdown-escaped."""
    return t(key, lang(), **values)


def _verdict(ok: bool) -> str:
    return cell("builder.yes") if ok else cell("builder.no")


def _flatten(spec: ModelSpec) -> None:
    result = _cached("flatten", None, seed=0)
    rows = [{"code": r["code"], "input": r["input"], "features": r["features"], "flat": r["flat"] or "—",
             "output": r["output"] or (cell("builder.flat.fails") if r["error"] else "—"),
             "batch_kept": _verdict(r["batch_kept"])} for r in result["rows"]]
    table(rows, prefix="builder.flat.col.")
    for message in dict.fromkeys(r["error"] for r in result["rows"] if r["error"]):
        st.markdown(tr("builder.flat.error", torch=Code(message)))
    st.markdown(tr("builder.flat.same" if result["same"] else "builder.flat.differ"))
    wrong = next(r for r in result["rows"] if not r["batch_kept"] and r["flat"])
    st.warning(tr("builder.flat.silent", code=Code(wrong["code"]), inp=Code(wrong["input"]), flat=Code(wrong["flat"]),
                  out=Code(wrong["output"]), batch=result["batch"]))
    st.code("x = self.pool(torch.relu(self.conv1(x)))   # (N, 16, 14, 14)\n"
            "x = x.view(-1, 16*14*14)\n"
            "x = x.view(x.size(0), -1)\n"
            "x = torch.flatten(x, 1)", language="python")


def _logits(spec: ModelSpec) -> None:
    result = _cached("logits", spec, seed=0)
    st.code(result["code"], language="python")
    st.markdown(f"**{tr('builder.logits.printed')}**")
    printed = result["logits"] if result["pred"] is None else (
        f"{result['logits']}\nPredicted class: {result['pred']}")
    st.code(printed, language="text")
    if result["probab"] is not None:
        st.markdown(f"**{tr('builder.logits.probab')}**")
        st.code(result["probab"], language="text")
    st.caption(tr("builder.logits.caption", shape=Code(result["shape"])))


def _inference(spec: ModelSpec) -> None:
    result = _cached("inference", spec, seed=0)
    st.code(result["code"], language="python")
    table([{"setting": r["setting"], "same_twice": _verdict(r["same_twice"]), "max_diff": r["max_diff"],
            "requires_grad": str(r["requires_grad"]), "grad_fn": r["grad_fn"]} for r in result["rows"]],
          prefix="builder.inf.col.", formats={"max_diff": "%.4g"})
    layers = result["mode_layers"]
    st.caption(tr("builder.inf.layers", layers=Code(", ".join(layers))) if layers else
               tr("builder.inf.no_layers", name=Code(spec.name)))


def _summaries(spec: ModelSpec) -> None:
    rows = _cached("summaries", spec, seed=0)
    errors = list(dict.fromkeys(r["error"] for r in rows if r["error"]))  # PyTorch's words, shown as code below

    def result(r: dict) -> str:
        if r["too_large"]:
            return cell("builder.sums.too_large")
        if r["error"] is not None:
            return cell("builder.sums.error", n=errors.index(r["error"]) + 1)
        return cell("builder.sums.ok", params=r["params"], out=r["output"])

    table([{"call": r["call"], "runs": r["runs"], "result": result(r)} for r in rows], prefix="builder.sums.col.")
    for n, message in enumerate(errors, 1):
        st.markdown(tr("builder.sums.error_text", n=n, torch=Code(message)))
    st.markdown(tr("builder.sums.explain"))


def _subclass(spec: ModelSpec) -> None:
    result = _cached("subclass", spec, seed=0)
    left, right = st.columns(2)
    left.markdown(f"**{tr('builder.sub.class')}**")
    left.code(result["subclass_code"], language="python")
    left.code(result["subclass_repr"], language="text", wrap_lines=True)
    right.markdown(f"**{tr('builder.sub.sequential')}**")
    right.code(result["sequential_code"], language="python")
    right.code(result["sequential_repr"], language="text", wrap_lines=True)
    a, b = result["params"]
    st.markdown(tr("builder.sub.same", a=a, b=b, diff=result["max_diff"]))
    calls = result["functional"]
    st.caption(tr("builder.sub.calls", calls=Code(", ".join(calls))) if calls else tr("builder.sub.no_calls"))


def _hooks(spec: ModelSpec) -> None:
    result = _cached("hooks", spec, seed=0)
    st.code(result["code"], language="python")
    table([{"call": r["call"], "model_hook": r["model_hook"], "layer_hook": r["layer_hook"]} for r in result["rows"]],
          prefix="builder.hooks.col.")
    st.caption(tr("builder.hooks.caption", layer=Code(result["layer"]),
                  same=_verdict(result["same"])))
