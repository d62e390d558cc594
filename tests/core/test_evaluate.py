"""``python -m core.evaluate CHECKPOINT --data FILE.npz``: the report, the same figure the lab's
trainer gives for the same images, and a one-line error with exit status 2 for every kind of bad
file or checkpoint."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core.evaluate import main
from core.ml.data import load_bundled
from core.training.config import TrainConfig, recipe
from core.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"name": "Small", "input_shape": [1, 28, 28], "layers": [
    {"type": "Conv2d", "args": {"in_channels": 1, "out_channels": 8, "kernel_size": 3, "stride": 2, "padding": 1}},
    {"type": "BatchNorm2d", "args": {"num_features": 8}},
    {"type": "ReLU"},
    {"type": "MaxPool2d", "args": {"kernel_size": 2}},
    {"type": "Flatten"},
    {"type": "Linear", "args": {"in_features": 8 * 7 * 7, "out_features": 10}},
]}
N = 300


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint of the default recipe's settings (EMA, TTA, validation split) on a small model, and the
    trainer's own test accuracy over the first N bundled test digits."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("evaluate")
    trainer = Trainer(TrainConfig(model_spec=SMALL, limit_train=1024, limit_test=N, val_size=100, epochs=2,
                                  lr=2e-2, precision="fp32", device="cpu"))
    for _ in trainer.run():
        pass
    ckpt = trainer.save(folder / "best.pt")
    digits = load_bundled()
    data = folder / "digits.npz"
    np.savez(data, images=digits.test_images[:N].numpy(), labels=digits.test_labels[:N].numpy())
    return {"ckpt": ckpt, "data": data, "acc": trainer.evaluate("test")["acc"], "folder": folder}


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_good_file_gets_the_report_with_the_labs_own_test_figure(trained, capsys):
    code, out, err = run(capsys, trained["ckpt"], "--data", trained["data"], "--json")
    assert code == 0 and err == ""
    report = json.loads(out)
    # The same weights (EMA), preprocessing (the run's normalization) and TTA as the trainer's test figure.
    assert report["accuracy"] == pytest.approx(trained["acc"], abs=1e-6)
    assert (report["weights"], report["tta"], report["n"]) == ("ema", True, N)
    assert report["classes"] == [str(i) for i in range(10)]
    confusion = np.array(report["confusion"])
    assert confusion.shape == (10, 10) and confusion.sum() == N and np.trace(confusion) == report["correct"]
    labels = load_bundled().test_labels[:N].numpy()
    for c in range(10):
        row = report["per_class"][str(c)]
        assert row["n"] == int((labels == c).sum()) == confusion[c].sum()
        assert row["accuracy"] == pytest.approx(confusion[c, c] / max(1, confusion[c].sum()))
    code, text, _ = run(capsys, trained["ckpt"], "--data", trained["data"])
    assert code == 0
    assert f"accuracy {trained['acc'] * 100:.2f}%" in text and "confusion matrix" in text and "per class" in text
    assert "ema weights, test-time augmentation" in text


def test_the_command_runs_as_a_module(trained):
    done = subprocess.run([sys.executable, "-m", "core.evaluate", str(trained["ckpt"]), "--data",
                           str(trained["data"]), "--json", "--threads", "1"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["n"] == N
    bad = subprocess.run([sys.executable, "-m", "core.evaluate", str(trained["ckpt"]), "--data",
                          str(trained["ckpt"])], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stdout == "" and len(bad.stderr.strip().splitlines()) == 1


def _npz(folder: Path, name: str, **arrays) -> Path:
    path = folder / f"{name}.npz"
    np.savez(path, **arrays)
    return path


GOOD_IMAGES = np.zeros((4, 28, 28), np.uint8)
GOOD_LABELS = np.array([0, 1, 2, 3])


@pytest.mark.parametrize("name,arrays,match", [
    ("float_images", dict(images=GOOD_IMAGES.astype(np.float32), labels=GOOD_LABELS), "images must be uint8"),
    ("wrong_shape", dict(images=np.zeros((4, 28, 27), np.uint8), labels=GOOD_LABELS), "images must be uint8"),
    ("flat_images", dict(images=np.zeros((4, 784), np.uint8), labels=GOOD_LABELS), "images must be uint8"),
    ("float_labels", dict(images=GOOD_IMAGES, labels=GOOD_LABELS.astype(np.float32)), "labels must be whole"),
    ("two_d_labels", dict(images=GOOD_IMAGES, labels=GOOD_LABELS.reshape(2, 2)), "labels must be whole"),
    ("too_many_labels", dict(images=GOOD_IMAGES, labels=np.arange(5)), "4 images but 5 labels"),
    ("label_ten", dict(images=GOOD_IMAGES, labels=np.array([0, 1, 2, 10])), "labels run from 0 to 10"),
    ("negative_label", dict(images=GOOD_IMAGES, labels=np.array([-1, 1, 2, 3])), "labels run from -1 to 3"),
    ("no_labels", dict(images=GOOD_IMAGES), "no array"),
    ("empty", dict(images=np.zeros((0, 28, 28), np.uint8), labels=np.zeros(0, np.int64)), "holds no images"),
    ("objects", dict(images=np.array([GOOD_IMAGES, None], dtype=object), labels=GOOD_LABELS), "not a NumPy"),
])
def test_a_bad_digits_file_is_one_line_and_exit_2(trained, capsys, name, arrays, match):
    path = _npz(trained["folder"], name, **arrays)
    code, out, err = run(capsys, trained["ckpt"], "--data", path)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and match in err, err


@pytest.mark.parametrize("kind", ["text", "npy", "missing"])
def test_a_file_that_is_no_npz_is_one_line_and_exit_2(trained, capsys, kind):
    path = trained["folder"] / f"bad-{kind}"
    if kind == "text":
        path.write_text("images,labels\n1,2\n")
    elif kind == "npy":
        path = path.with_suffix(".npy")
        np.save(path, GOOD_IMAGES)
    code, _, err = run(capsys, trained["ckpt"], "--data", path)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err


def test_a_checkpoint_that_is_not_the_labs_is_one_line_and_exit_2(trained, capsys):
    folder = trained["folder"]
    state_dict = folder / "weights.pt"
    torch.save(torch.load(trained["ckpt"], weights_only=True)["model_state_dict"], state_dict)
    garbage = folder / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    no_config = folder / "no_config.pt"
    ckpt = torch.load(trained["ckpt"], weights_only=True)
    torch.save({k: v for k, v in ckpt.items() if k != "config"}, no_config)
    regression = Trainer(recipe("r1").replace(epochs=1)).save(folder / "r1.pt")
    for path, match in ((state_dict, "state_dict"), (garbage, "not a valid PyTorch checkpoint"),
                        (no_config, "no training config"), (regression, "not on 28×28 digit images"),
                        (folder / "missing.pt", "no checkpoint at")):
        code, out, err = run(capsys, path, "--data", trained["data"])
        assert code == 2 and out == "", path
        assert err.startswith("error: ") and err.count("\n") == 1 and match in err, err
