"""Export benchmark (issue #9 item 6): export time and onnxruntime vs eager latency.

Uses ``core.ml.export.export_model``, the Export page's path: each export writes the file,
reloads it and checks it against eager; the time reported is the export and serialization
(``ExportResult.seconds``), the reload-and-verify time is its own column. Latency compares
eager PyTorch (``torch.no_grad``, the page's eager runner) with the verified ONNX file in
onnxruntime and the traced TorchScript file, at batch 1 and 64, calls interleaved.

    python -m bench --only export          # through the suite
    python -m bench.export [--quick]       # alone
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings

import torch

from bench.common import Contention, interleave, md_table, median
from core.ml import export as E
from core.ml.modules import build_model
from core.ml.zoo import preset_spec

PRESETS = ("lab_cnn", "simple_cnn")  # the default CNN and the tutorials' SimpleCNN (M6)
FORMATS = ("onnx", "torchscript_trace", "torchscript_script")
RUNTIMES = (("onnx", "onnxruntime"), ("torchscript_trace", "TorchScript (trace)"))


def _log(text: str) -> None:
    print(f"[export] {text}", file=sys.stderr, flush=True)


def _latency(model: torch.nn.Module, shape: tuple[int, ...], results: dict, batches: tuple[int, ...],
             blocks: int, calls: dict[int, int]) -> list[dict]:
    """Median ms per call of eager and each runtime: blocks of calls, the blocks interleaved.

    Blocks, not single calls: onnxruntime's and torch's thread pools keep spinning briefly
    after a call, so alternating single calls would slow both sides down.
    """
    eager = E._torch_runner(E._eval_copy(model))  # the page's eager runner (speed_table uses the same)
    runners = {"eager": eager}
    for fmt, label in RUNTIMES:
        r = results.get(fmt)
        if r is not None and r.ok:
            runners[label] = E._runner_for(r)  # the page's loader for its own verified bytes
    gen = torch.Generator().manual_seed(0)
    rows = []
    for b in batches:
        x = torch.randn(b, *shape, generator=gen)

        def block(run, n=calls[b], x=x):
            def once() -> float:
                times = []
                for _ in range(n):
                    t0 = time.perf_counter()
                    run(x)
                    times.append(time.perf_counter() - t0)
                return median(times) * 1000
            return once

        runs = interleave({k: block(v) for k, v in runners.items()}, repeats=blocks, warmup=1)
        rows.append({"batch": b, **{k: median(v) for k, v in runs.items()}, "calls": blocks * calls[b]})
    return rows


def section(quick: bool = False) -> str:
    presets = PRESETS[:1] if quick else PRESETS
    repeats = 1 if quick else 3
    blocks = 2 if quick else 10
    calls = {1: 5, 64: 2} if quick else {1: 30, 64: 6}
    warmup = 0 if quick else 1
    export_rows, latency_rows = [], []
    with warnings.catch_warnings(), Contention() as busy:
        warnings.simplefilter("ignore")
        for preset in presets:
            spec = preset_spec(preset)
            model = build_model(spec, seed=0)
            shape = spec.input_shape
            seconds: dict[str, list[float]] = {f: [] for f in FORMATS}
            total: dict[str, list[float]] = {f: [] for f in FORMATS}
            last: dict[str, E.ExportResult] = {}

            def exporter(fmt, model=model, shape=shape, preset=preset, last=last, seconds=seconds, total=total):
                def once() -> float:
                    r = E.export_model(model, shape, fmt, name=preset)
                    last[fmt] = r
                    if r.ok:  # ONNX's seconds also hold the check that picks the dynamo or the legacy exporter
                        dynamo = r.info.get("exporter") == "dynamo"
                        seconds[fmt].append(r.info.get("dynamo_seconds", r.seconds) if dynamo else r.seconds)
                        total[fmt].append(r.seconds + r.info.get("verify_seconds", 0.0))
                    return r.seconds
                return once

            interleave({f: exporter(f) for f in FORMATS}, repeats=repeats, warmup=warmup)
            for fmt in FORMATS:
                r = last[fmt]
                kept = seconds[fmt][-repeats:]
                if r.ok and kept:
                    export_rows.append([preset, E.FORMATS[fmt].label, r.info.get("exporter", "") or "-",
                                        f"{median(kept):.2f}", f"{median(total[fmt][-repeats:]):.2f}",
                                        f"{r.size_bytes / 1024:.0f}", f"{r.max_abs_diff:.1e}", "yes"])
                else:
                    export_rows.append([preset, E.FORMATS[fmt].label, r.info.get("exporter", "") or "-", "-", "-",
                                        "-", "-", f"no: {r.error[:200]}"])
            _log(f"{preset}: " + ", ".join(f"{f} {median(v):.2f} s" for f, v in seconds.items() if v))
            for row in _latency(model, shape, last, (1, 64), blocks, calls):
                ort = row.get("onnxruntime")
                ts = row.get("TorchScript (trace)")
                latency_rows.append([preset, row["batch"], f"{row['eager']:.3f}",
                                     f"{ort:.3f}" if ort is not None else "-",
                                     f"{row['eager'] / ort:.2f}×" if ort else "-",
                                     f"{ts:.3f}" if ts is not None else "-", row["calls"]])
    lines = [
        "## Export", "",
        "Export time through `core.ml.export.export_model` (the Export page's path; ONNX uses the dynamo exporter, "
        "falling back to the legacy one). Export s is the exporter and serialization alone; page wait s is what "
        "the Export page waits for that file: exporting, then reloading the bytes (onnxruntime / "
        "`torch.jit.load`) and comparing with eager on fresh batches. "
        f"Median of {repeats} export(s) per format after {warmup} warm-up round(s), formats interleaved "
        "(the first export in a process also pays for imports and tracing caches).", "",
        md_table(["model", "format", "exporter", "export s", "page wait s", "file KB", "max abs diff", "verified"],
                 export_rows), "",
        f"Latency per call (ms): {blocks} blocks of {calls[1]} calls at batch 1 and of {calls[64]} at batch 64 per "
        "runtime, the blocks interleaved (single calls would be slowed by the other runtime's thread pool still "
        f"spinning); the median of the blocks' medians. {torch.get_num_threads()} torch threads; onnxruntime's "
        "default CPU session, as the page opens it. Speed-up is eager / onnxruntime.", "",
        md_table(["model", "batch", "eager ms", "onnxruntime ms", "onnxruntime speed-up", "TorchScript (trace) ms",
                  "calls"], latency_rows),
        "", busy.note(),
    ]
    if quick:
        lines += ["", "*Quick run (`--quick`): one model, few repeats, a smoke test of the code; these numbers are "
                  "not measurements.*"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Export time and runtime latency")
    p.add_argument("--quick", action="store_true", help="one model, few repeats (a smoke test)")
    print(section(p.parse_args(argv).quick))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
