import gzip
import struct

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from core.ml import data as D
from core.settings import BUNDLED_DIGITS, load_settings


@pytest.fixture(scope="module")
def digits():
    return D.load_bundled()


def test_bundled_file_has_800_digits_per_class():
    with np.load(BUNDLED_DIGITS) as npz:
        images, labels = npz["images"], npz["labels"]
    assert images.shape == (8000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == [800] * 10
    assert (BUNDLED_DIGITS.parent / "mnist_digits_8k.README.md").read_text().count("CC BY-SA 3.0")


def test_bundled_split_is_stratified_and_reproducible(digits):
    assert len(digits.train_labels) == 7000 and len(digits.test_labels) == 1000
    assert torch.bincount(digits.test_labels).tolist() == [100] * 10
    again = D.load_bundled()
    assert torch.equal(digits.train_labels, again.train_labels)
    assert torch.equal(digits.test_images, again.test_images)
    other = D.load_bundled(seed=1)
    assert not torch.equal(digits.train_labels, other.train_labels)
    # No image is in both splits (the file holds distinct digits).
    train_keys = {bytes(x) for x in digits.train_images.numpy()[:2000]}
    assert not any(bytes(x) in train_keys for x in digits.test_images.numpy())


def test_normalization_statistics_match_mnist(digits):
    # The tutorials' constants (0.1307, 0.3081) hold for these real digits too.
    assert digits.mean == pytest.approx(D.MNIST_MEAN, abs=0.005)
    assert digits.std == pytest.approx(D.MNIST_STD, abs=0.005)
    x = digits.normalized("train")
    assert x.shape == (7000, 1, 28, 28) and x.dtype == torch.float32
    assert float(x.mean()) == pytest.approx(0.0, abs=1e-3)
    assert float(x.std()) == pytest.approx(1.0, abs=1e-3)


def test_normalization_table_d2(digits):
    table = D.normalization_table(digits.train_images[:1000]).set_index("step")
    assert table.loc["uint8", "max"] == 255
    assert table.loc["ToTensor()", "min"] == 0 and table.loc["ToTensor()", "max"] == 1
    half = table.loc["Normalize((0.5,), (0.5,))"]
    assert half["min"] == -1 and half["max"] == 1
    mnist = table.loc["Normalize((0.1307,), (0.3081,))"]
    assert mnist["min"] == pytest.approx(-0.4242, abs=1e-3)
    assert mnist["max"] == pytest.approx(2.8215, abs=1e-3)


def test_tensor_loader_batches_by_index_and_is_seeded(digits):
    x, y = digits.normalized("train"), digits.labels("train")
    loader = D.TensorLoader(x, y, batch_size=64, shuffle=True, seed=3)
    assert len(loader) == -(-7000 // 64)
    batches = list(loader)
    assert batches[0][0].shape == (64, 1, 28, 28) and batches[-1][0].shape[0] == 7000 % 64
    seen = torch.cat([b[1] for b in batches])
    assert torch.equal(torch.sort(seen).values, torch.sort(y).values)
    again = D.TensorLoader(x, y, batch_size=64, shuffle=True, seed=3)
    assert torch.equal(next(iter(again))[1], batches[0][1])
    second_epoch = next(iter(loader))  # the next epoch draws a new order
    assert not torch.equal(second_epoch[1], batches[0][1])
    assert len(D.TensorLoader(x, y, 64, drop_last=True)) == 7000 // 64
    with pytest.raises(ValueError):
        D.TensorLoader(x, y[:10], 64)
    with pytest.raises(ValueError):
        D.TensorLoader(x, y, 0)


def test_custom_dataset_example_d1():
    result = D.custom_dataset_example(batch_size=32)
    assert result["len"] == 100
    assert result["item_shapes"] == ((10,), ())
    assert result["batches"] == [((32, 10), (32,))] * 3 + [((4, 10), (4,))]
    ds = D.ArrayDataset(torch.arange(6.0).view(3, 2), torch.tensor([0, 1, 0]), transform=lambda v: v * 2)
    assert torch.equal(ds[1][0], torch.tensor([4.0, 6.0]))
    assert [tuple(b[0].shape) for b in DataLoader(ds, batch_size=2)] == [(2, 2), (1, 2)]


def test_dataloader_batch_preview(digits):
    batch = D.dataloader_batch(digits, batch_size=16, seed=0)
    assert batch["x_shape"] == (16, 1, 28, 28) and batch["x_dtype"] == "torch.float32"
    assert batch["y_shape"] == (16,) and batch["y_dtype"] == "torch.int64"


@pytest.mark.parametrize("kind", D.AUGMENTATIONS)
def test_augment_preview(digits, kind):
    before, after, table = D.augment_preview(digits.train_images[:4], kind, seed=0)
    assert before.shape == after.shape
    assert list(table["tensor"]) == ["before", "after"]
    if kind == "hflip":
        assert torch.equal(after, before.flip(-1))
    if kind == "imagenet":  # D3: 3 channels, ImageNet-normalized values go below 0
        assert before.shape[1] == 3 and table.loc[1, "min"] < -2
    with pytest.raises(ValueError):
        D.augment_preview(digits.train_images[:1], "nope")


def test_class_counts(digits):
    counts = D.class_counts(digits)
    assert counts["train"].sum() == 7000 and counts["test"].tolist() == [100] * 10


def test_regression_data():
    x, y = D.regression_linear()
    assert x.flatten().tolist() == [1, 2, 3] and y.flatten().tolist() == [2, 4, 6]
    x, y = D.regression_synthetic(n=100, seed=1)
    assert x.shape == (100, 10) and y.shape == (100, 1)
    assert torch.equal(D.regression_synthetic(n=100, seed=1)[1], y)
    with pytest.raises(ValueError):
        D.regression_synthetic(n=0)


def _write_idx(path, array: np.ndarray, compress: bool) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(payload)
    path.write_bytes(payload)


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_torchvision_path_reads_idx_files_on_disk(tmp_path, name, folder):
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("t10k", 10)):
        _write_idx(raw / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), compress=False)
        _write_idx(raw / f"{split}-labels-idx1-ubyte", np.arange(n) % 10, compress=False)
    settings = load_settings({"PYTORCH_LAB_DATA_ROOT": str(tmp_path), "PYTORCH_LAB_DOWNLOAD": "0"})
    data = D.load_dataset(name, settings)
    assert data.train_images.shape == (30, 28, 28) and data.test_images.shape == (10, 28, 28)
    assert data.train_labels.tolist() == [i % 10 for i in range(30)]
    assert data.classes == (D.FASHION_CLASSES if name == "fashion_mnist" else D.DIGIT_CLASSES)


def test_missing_torchvision_files_give_a_clear_error_quickly(tmp_path):
    import time

    settings = load_settings({"PYTORCH_LAB_DATA_ROOT": str(tmp_path), "PYTORCH_LAB_DOWNLOAD": "0"})
    with pytest.raises(D.DataUnavailable, match="downloads are off"):
        D.load_dataset("mnist", settings)
    # With downloads on, an offline machine gets an answer within the timeout, not a hang.
    settings = load_settings({"PYTORCH_LAB_DATA_ROOT": str(tmp_path), "PYTORCH_LAB_DOWNLOAD_TIMEOUT": "3"})
    start = time.monotonic()
    try:
        D.load_dataset("mnist", settings)
    except D.DataUnavailable as exc:
        assert "bundled digits" in str(exc)
    assert time.monotonic() - start < 3 * 2 + 5  # two splits, each bounded by the timeout
    with pytest.raises(ValueError, match="unknown dataset"):
        D.load_dataset("imagenet", settings)


def test_one_dataset_registry():
    """DATASETS describes every dataset once: shapes, classes, sizes and where it comes from."""
    assert D.IMAGE_DATASETS == ("digits8k", "mnist", "fashion_mnist") and D.DEFAULT_DATASET in D.IMAGE_DATASETS
    for key, info in D.DATASETS.items():
        assert info.key == key and info.title and info.task in ("classification", "regression")
        assert info.train_size > 0 and info.test_size > 0
        if info.task == "classification":
            assert info.image and info.outputs == len(info.classes)
        else:
            assert not info.image and not info.classes and info.torchvision is None
    assert [D.DATASETS[k].torchvision for k in D.IMAGE_DATASETS] == [None, "MNIST", "FashionMNIST"]
    assert list(D.DATASETS["fashion_mnist"].classes) == D.FASHION_CLASSES


def test_registry_matches_the_bundled_digits(digits):
    info = D.DATASETS["digits8k"]
    assert (len(digits.train_labels), len(digits.test_labels)) == (info.train_size, info.test_size)
    assert digits.input_shape == info.input_shape and digits.classes == list(info.classes)
    assert digits.title == info.title


def test_mnist_statistics_have_one_source():
    assert D.MNIST_NORMALIZE == f"Normalize(({D.MNIST_MEAN},), ({D.MNIST_STD},))" == "Normalize((0.1307,), (0.3081,))"
    from core.ml import predict

    assert (predict.MNIST_MEAN, predict.MNIST_STD) == (D.MNIST_MEAN, D.MNIST_STD)


def write_mnist(root, n_train: int = 30, n_test: int = 10, folder: str = "MNIST") -> None:
    """Tiny raw IDX files where torchvision looks for them (as a user copies them in)."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        _write_idx(raw / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), compress=False)
        _write_idx(raw / f"{split}-labels-idx1-ubyte", np.arange(n) % 10, compress=False)


def test_shelf_uses_files_copied_in_after_a_failure(tmp_path, monkeypatch):
    """The lab looked for MNIST, found nothing; the user copies the files in: the next look finds them
    (no server restart). While nothing changes on disk, the failure is not retried (no download per click)."""
    settings = load_settings({"PYTORCH_LAB_DATA_ROOT": str(tmp_path), "PYTORCH_LAB_DOWNLOAD": "0"})
    now = [0.0]
    shelf = D.DatasetShelf(retry_seconds=60, clock=lambda: now[0])
    calls = []
    real = D.load_dataset
    monkeypatch.setattr(D, "load_dataset", lambda name, s: calls.append(name) or real(name, s))
    with pytest.raises(D.DataUnavailable, match="downloads are off"):
        shelf.get("mnist", settings)
    with pytest.raises(D.DataUnavailable):
        shelf.get("mnist", settings)
    assert calls == ["mnist"]  # remembered: the files did not change
    now[0] = 61.0
    with pytest.raises(D.DataUnavailable):
        shelf.get("mnist", settings)
    assert calls == ["mnist", "mnist"]  # retried after retry_seconds
    write_mnist(tmp_path)
    data = shelf.get("mnist", settings)  # at once: the files changed
    assert data.train_images.shape == (30, 28, 28) and calls == ["mnist"] * 3
    assert shelf.get("mnist", settings) is data and len(calls) == 3  # a success is kept
    assert "torchvision.datasets.MNIST" in str(data.source) and str(tmp_path) in str(data.source)


def test_value_histograms_are_binned_on_the_server(digits):
    """D2's histograms send a few bars, not millions of raw pixel values, to the browser."""
    from core.ml.plots import value_histograms

    x = digits.train_images[:2000].float() / 255
    series = {"a": x, "b": (x - 0.5) / 0.5, "c": (x - D.MNIST_MEAN) / D.MNIST_STD}
    fig = value_histograms(series, bins=60)
    assert len(fig.data) == 3 and all(len(trace.x) == 60 for trace in fig.data)
    assert sum(len(trace.x) + len(trace.y) for trace in fig.data) == 360  # x.numel() is 1,568,000 per series
    for trace, values in zip(fig.data, series.values(), strict=True):
        assert sum(v or 0 for v in trace.y) == values.numel()  # every value is counted once
    lo, hi = float((x - 0.5).div(0.5).min()), float(((x - D.MNIST_MEAN) / D.MNIST_STD).max())
    assert fig.data[0].x[0] == pytest.approx(lo + (hi - lo) / 120) and fig.data[0].x[-1] < hi


def test_loader_workers_are_timed_here(digits):
    """D4: the same epoch through DataLoader with 0 and 2 workers, measured (nothing hard-coded)."""
    table = D.loader_workers_example(digits.train_images[:96], digits.train_labels[:96], batch_size=32)
    assert list(table["pipeline"]) == ["normalize", "normalize", "affine", "affine"]
    assert list(table["num_workers"]) == [0, 2, 0, 2]
    assert (table["epoch_s"] > 0).all() and (table["first_batch_ms"] > 0).all()
    assert table["images_per_s"].tolist() == pytest.approx((96 / table["epoch_s"]).tolist())
    for _, rows in table.groupby("pipeline"):
        base = rows["epoch_s"].iloc[0]
        assert rows["speedup"].tolist() == pytest.approx((base / rows["epoch_s"]).tolist())
    with pytest.raises(ValueError):
        D.loader_workers_example(digits.train_images[:4], digits.train_labels[:4], workers=(9,))
    with pytest.raises(ValueError):
        D.loader_workers_example(digits.train_images[:4], digits.train_labels[:3])
