"""The benchmark suite's code (bench/): sections render, the runner isolates failures, files are
written where they should be. No timings are asserted: numbers only have to be numbers."""
from __future__ import annotations

import re
import sys
import types

import numpy as np
import pytest

from bench import __main__ as runner
from bench import common as C
from bench import training as BT
from core.ml.data import load_bundled, load_torchvision
from core.ml.zoo import preset_spec
from core.settings import load_settings

NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?(e[+-]\d+)?[×%]?$")


def tables(markdown: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every markdown table as (header cells, data rows)."""
    found, block = [], []
    for line in [*markdown.splitlines(), ""]:
        if line.startswith("|"):
            block.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
        elif block:
            assert len(block) >= 2 and all(set(c) <= {"-"} for c in block[1]), block
            found.append((block[0], block[2:]))
            block = []
    return found


def parts(markdown: str) -> dict[str, str]:
    return {p.splitlines()[0]: p for p in runner.split_sections(markdown)}


def column(table, name: str) -> list[str]:
    header, rows = table
    return [row[header.index(name)] for row in rows]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """`python -m bench --quick --only training,export --no-write`, in process."""
    import contextlib
    import io

    out = io.StringIO()
    before = C.BENCHMARKS.read_bytes() if C.BENCHMARKS.exists() else None
    with contextlib.redirect_stdout(out):
        code = runner.main(["--quick", "--only", "training,export", "--no-write"])
    after = C.BENCHMARKS.read_bytes() if C.BENCHMARKS.exists() else None
    return code, out.getvalue(), before, after


def test_quick_run_has_every_heading_in_order_and_leaves_the_file_alone(quick_run):
    code, text, before, after = quick_run
    assert code == 0
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == ["## Trainer overhead", "## Data path", "## Hardware efficiency", "## Export"]
    assert "CPU:" in text and "torch " in text  # the machine facts are printed first
    assert before == after


def test_trainer_overhead_table(quick_run):
    section = parts(quick_run[1])["## Trainer overhead"]
    (main, extras) = tables(section)
    assert main[0] == ["model", "settings", "train samples", "bare samples/s", "lab samples/s", "lab / bare",
                       "median of paired ratios", "target"]
    assert column(main, "model") == ["default recipe (lab_cnn)", "r3: tutorials' CNN (M5)"]
    for name in ("bare samples/s", "lab samples/s", "lab / bare"):
        assert all(NUMBER.match(v) and float(v.rstrip("×").replace(",", "")) > 0 for v in column(main, name))
    assert set(column(main, "target")) <= {"met", "missed"}
    assert extras[0][:5] == ["model", "gradient norm", "RNG isolation", "loss/accuracy bookkeeping", "record"]
    assert len(extras[1]) == 2 and all(NUMBER.match(v) for row in extras[1] for v in row[1:])
    assert "not measurements" in section  # a quick run says so


def test_data_path_table(quick_run):
    section = parts(quick_run[1])["## Data path"]
    [table] = tables(section)
    assert table[0] == ["path", "setup s", "epoch s", "setup + epoch s", "epoch samples/s"]
    assert [p.split(":")[0].split(".")[0] for p in column(table, "path")] == ["torchvision", "core"]
    assert all(NUMBER.match(v) for row in table[1] for v in row[1:])
    assert re.search(r"\*\*[\d,]+×\*\* faster", section)


def test_hardware_efficiency_table(quick_run):
    section = parts(quick_run[1])["## Hardware efficiency"]
    [table] = tables(section)
    assert table[0] == ["precision", "memory layout", "samples/s", "achieved GFLOP/s", "% of fp32 GEMM peak",
                        "% of bf16 GEMM peak", "projected 60k epoch s", "target"]
    layouts = [v.split(" ")[0] for v in column(table, "memory layout")]
    assert layouts[:2] == ["contiguous", "channels_last"]
    assert sum("(lab default)" in v for v in column(table, "memory layout")) == len(table[1]) // 2
    assert set(column(table, "precision")) <= {"fp32", "bf16"}
    # SimpleCNN's FLOPs per sample are a property of the model, not of the machine.
    flops = float(re.search(r"\*\*([\d.]+) MFLOP per sample\*\*", section).group(1))
    assert flops == pytest.approx(BT.train_flops_per_sample(preset_spec("simple_cnn"))[0] / 1e6, abs=0.01)


def test_export_tables(quick_run):
    section = parts(quick_run[1])["## Export"]
    export, latency = tables(section)
    assert export[0] == ["model", "format", "exporter", "export s", "page wait s", "file KB", "max abs diff",
                         "verified"]
    assert column(export, "format") == ["ONNX", "TorchScript (trace)", "TorchScript (script)"]
    assert column(export, "verified") == ["yes", "yes", "yes"]
    assert latency[0] == ["model", "batch", "eager ms", "onnxruntime ms", "onnxruntime speed-up",
                          "TorchScript (trace) ms", "calls"]
    assert column(latency, "batch") == ["1", "64"]
    assert all(NUMBER.match(v) for v in column(latency, "onnxruntime ms") + column(latency, "eager ms"))


def test_a_failing_section_is_reported_and_the_rest_still_run(monkeypatch, capsys, tmp_path):
    boom = types.ModuleType("bench.boom")

    def section(quick: bool) -> str:
        raise RuntimeError("the disk is on fire")

    boom.section = section
    fine = types.ModuleType("bench.fine")
    fine.section = lambda quick: "## Fine\n\nquick\n" if quick else "## Fine\n\nfull\n"
    monkeypatch.setitem(sys.modules, "bench.boom", boom)
    monkeypatch.setitem(sys.modules, "bench.fine", fine)
    monkeypatch.setattr(runner, "SECTIONS", [("boom", ""), ("missing_module", ""), ("fine", "")])
    monkeypatch.setattr(runner, "NAMES", ["boom", "missing_module", "fine"])
    target = tmp_path / "BENCHMARKS.md"
    monkeypatch.setattr(runner, "BENCHMARKS", target)
    monkeypatch.setattr(runner, "write_benchmarks", lambda parts: C.write_benchmarks(parts, path=target))

    assert runner.main([]) == 1
    out, err = capsys.readouterr()
    assert "## boom: failed" in out and "the disk is on fire" in out
    assert "## missing_module: failed" in out and "ModuleNotFoundError" in out
    assert "## Fine" in out and "full" in out
    assert "FAILED sections: boom, missing_module" in err
    written = target.read_text()
    assert [line for line in written.splitlines() if line.startswith("#")] == [
        "# Benchmarks", "## boom: failed", "## missing_module: failed", "## Fine"]


def test_only_rejects_unknown_names_and_keeps_the_suite_order():
    assert runner.parse_only("export,training") == ["training", "export"]
    assert runner.parse_only(None) == runner.NAMES
    with pytest.raises(Exception, match="unknown section"):
        runner.parse_only("training,nope")


def test_update_replaces_one_section_and_keeps_the_others(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    C.write_benchmarks(["## A\n\nold a\n", "## B\n\nold b\n", "## C\n\nold c\n"], path=path)
    text = path.read_text()
    assert text.startswith("# Benchmarks\n") and "- CPU:" in text and "- ISA extensions:" in text
    C.update_benchmarks("## B\n\nnew b\n", path=path)
    C.update_benchmarks("## D\n\nnew d\n", path=path)
    text = path.read_text()
    assert "old b" not in text and "new b" in text and "old a" in text and "old c" in text
    assert [line for line in text.splitlines() if line.startswith("## ")] == ["## A", "## B", "## C", "## D"]
    with pytest.raises(ValueError, match="## "):
        C.update_benchmarks("no heading", path=path)


def test_md_table_and_interleave_order():
    assert C.md_table(["a", "b"], [[1, "x|y"]]).splitlines() == ["| a | b |", "| --- | --- |", "| 1 | x\\|y |"]
    calls = []
    runs = C.interleave({"a": lambda: calls.append("a") or 1.0, "b": lambda: calls.append("b") or 2.0},
                        repeats=3, warmup=1)
    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"]  # each round reverses the order
    assert runs == {"a": [1.0, 1.0, 1.0], "b": [2.0, 2.0, 2.0]}
    assert C.median([3, 1, 2]) == 2


def test_mnist_raw_files_hold_the_bundled_digits_for_both_readers(tmp_path):
    import torchvision.datasets as tvd

    BT.write_mnist_raw(tmp_path, n_train=9_000, n_test=50)
    digits = load_bundled()
    everything = np.concatenate([digits.train_images.numpy(), digits.test_images.numpy()])
    labels = np.concatenate([digits.train_labels.numpy(), digits.test_labels.numpy()])
    ds = tvd.MNIST(str(tmp_path), train=True, download=False)
    assert len(ds) == 9_000 and tuple(ds.data.shape[1:]) == (28, 28)
    np.testing.assert_array_equal(ds.data.numpy()[:8_000], everything)
    np.testing.assert_array_equal(ds.data.numpy()[8_000:], everything[:1_000])  # repeated to the size asked
    np.testing.assert_array_equal(ds.targets.numpy()[:8_000], labels)
    settings = load_settings({"PYTORCH_LAB_HOME": str(tmp_path), "PYTORCH_LAB_DATA_ROOT": str(tmp_path),
                              "PYTORCH_LAB_DOWNLOAD": "0"})
    lab = load_torchvision("mnist", settings)
    assert len(lab.train_images) == 9_000 and len(lab.test_images) == 50
    np.testing.assert_array_equal(lab.train_images.numpy(), ds.data.numpy())


@pytest.mark.parametrize("accum_steps", [1, 3])
def test_trimmed_step_bookkeeping_reports_the_batch_it_trained_on(accum_steps):
    """Trainer.step() keeps loss and accuracy as tensors and reads them once (the "Trainer overhead"
    work): the record still holds the loss and accuracy of exactly the samples of that step."""
    import torch
    import torch.nn.functional as F

    from core.training.config import TrainConfig
    from core.training.trainer import Trainer

    spec = {"name": "MLP", "input_shape": [1, 28, 28], "layers": [
        {"type": "Flatten"}, {"type": "Linear", "args": {"in_features": 784, "out_features": 10}}]}
    trainer = Trainer(TrainConfig(model_spec=spec, augment=False, limit_train=200, limit_test=50, batch_size=60,
                                  accum_steps=accum_steps, epochs=1, device="cpu"))
    for _ in range(2):
        x, y = trainer.next_batch()
        with torch.no_grad():
            out = trainer.core(x)
        record = trainer.step()
        assert record["samples"] == len(y) == 60
        assert record["loss"] == pytest.approx(float(F.cross_entropy(out, y)), rel=1e-5)
        assert record["acc"] == pytest.approx(float((out.argmax(1) == y).float().mean()))
    assert trainer.core.training  # train mode holds between steps without a walk over the modules
    trainer.evaluate()
    assert trainer.core.training


@pytest.mark.slow
@pytest.mark.postgres
def test_store_section_compares_sqlite_and_postgres(pg_server):
    """`bench/store.py` (quick): one table row per back end and writer count, numbers only; it starts
    its own throwaway PostgreSQL (``pg_server`` only makes the test skip, or fail in CI, without one)."""
    from bench import store as BS

    text = BS.section(quick=True)
    assert text.startswith("## Run store") and "not measurements" in text
    (table,) = tables(text)
    assert table[0] == ["store", "writers", "rows/s", "transactions/s", "vs SQLite"]
    assert column(table, "store") == ["SQLite", "PostgreSQL"] * 2 and column(table, "writers") == ["1", "1", "4", "4"]
    for name in ("rows/s", "transactions/s", "vs SQLite"):
        assert all(NUMBER.match(v) and float(v.rstrip("×").replace(",", "")) > 0 for v in column(table, name))
    assert "store" in runner.NAMES
