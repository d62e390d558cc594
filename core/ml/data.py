"""Datasets of the lab: the bundled MNIST digits, torchvision's MNIST/FashionMNIST, synthetic data.

``DATASETS`` is the one registry of them (``DatasetInfo``: title, task, shapes, classes,
sizes, torchvision class): the training config, the trainer's data loading, the run
views' progress and the Data and Train pages all read it. ``MNIST_MEAN`` / ``MNIST_STD``
are the one copy of the tutorials' MNIST statistics.

The training path is tensor-resident: a whole split is normalized once into one float
tensor (``ImageData.normalized``), and the trainer (``core.training``) takes each batch by
indexing those whole tensors with its own seeded permutation; no loader object sits in
between. A per-sample PIL pipeline through ``DataLoader`` costs far more per epoch on 2 cores.
``TensorLoader`` is the same batching as an iterable, for the Data page's batch view and the
benchmarks; the ``torch.utils.data`` view (``ArrayDataset`` + ``DataLoader``) stays for the
tutorials' example D1.

Refusals are ``core.errors.LabError``s (codes ``data.*``); ``DataUnavailable`` is the one for a
dataset whose files are missing and cannot be downloaded.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from core.errors import Code, LabError, Message, first_line
from core.ml import userdata
from core.settings import BUNDLED_DIGITS, Settings

DIGIT_CLASSES = [str(i) for i in range(10)]
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]



@dataclass(frozen=True)
class DatasetInfo:
    """One dataset the lab can train on: what it is, its shapes and its size."""

    key: str                        # the config's ``dataset`` value
    title: str                      # a short description for pickers
    task: str                       # "classification" or "regression"
    input_shape: tuple[int, ...]    # one sample as the model takes it: (C, H, W) for images
    outputs: int                    # classes (classification) or target values per sample (regression)
    train_size: int                 # training samples
    test_size: int                  # test samples (R1 has no test split: it evaluates on its training data)
    classes: tuple[str, ...] = ()   # class names, index = label (classification)
    torchvision: str | None = None  # the ``torchvision.datasets`` class; None: bundled file or generated here
    user: bool = False              # a learner's dataset in the lab home (core.ml.userdata)
    val_size: int = 0               # a learner's dataset: the validation images its upload asked for
    stamp: str = ""                 # a learner's dataset: its registration's id (a new upload, new data)

    @property
    def image(self) -> bool:
        """An image dataset (shown on the Data page; augmentation applies)."""
        return len(self.input_shape) == 3


DATASETS: dict[str, DatasetInfo] = {d.key: d for d in (
    DatasetInfo("digits8k", "MNIST digits, bundled, 8k", "classification", (1, 28, 28), 10, 7_000, 1_000,
                tuple(DIGIT_CLASSES)),
    DatasetInfo("mnist", "MNIST (torchvision, 70k)", "classification", (1, 28, 28), 10, 60_000, 10_000,
                tuple(DIGIT_CLASSES), "MNIST"),
    DatasetInfo("fashion_mnist", "FashionMNIST (torchvision, 70k)", "classification", (1, 28, 28), 10, 60_000,
                10_000, tuple(FASHION_CLASSES), "FashionMNIST"),
    DatasetInfo("linear", "R1: inputs [1, 2, 3] -> targets [2, 4, 6]", "regression", (1,), 1, 3, 3),
    DatasetInfo("synthetic", "R2: y = x @ w + b + noise, 10 features (448 / 64)", "regression", (10,), 1, 448, 64),
)}
IMAGE_DATASETS = tuple(k for k, d in DATASETS.items() if d.image)  # what ``load_dataset`` loads
DEFAULT_DATASET = "digits8k"
assert tuple(DATASETS) == userdata.BUILTIN_NAMES


def user_info(key: str) -> DatasetInfo:
    """A learner's registered dataset (``core.ml.userdata``) as a ``DatasetInfo``, or ``LabError``."""
    meta = userdata.read_meta(key)
    try:
        task = str(meta.get("task", "classification"))
        return DatasetInfo(key, str(meta["title"]), task, tuple(int(d) for d in meta["input_shape"]),
                           int(meta.get("outputs", len(meta["classes"]))), int(meta["train_size"]),
                           int(meta["test_size"]),
                           tuple(str(c) for c in meta["classes"]), None, True, int(meta["val_size"]), str(meta["id"]))
    except (KeyError, TypeError, ValueError):
        raise LabError("datasets.damaged", name=Code(key)) from None


def find_dataset(name: object) -> DatasetInfo | None:
    """The dataset named ``name``: one of ``DATASETS`` or a learner's registered dataset; None if neither."""
    if isinstance(name, str) and name in DATASETS:
        return DATASETS[name]
    if not userdata.is_user_key(name):
        return None
    try:
        return user_info(str(name))
    except LabError:
        return None


def dataset_info(name: str) -> DatasetInfo:
    """Like ``find_dataset`` but a name that is neither is a ``LabError``."""
    info = find_dataset(name)
    if info is None:
        raise LabError("data.unknown_dataset", name=Code(repr(name)), choices=Code(", ".join(IMAGE_DATASETS)))
    return info

# The tutorials' normalization constants (D2, D3): the one copy of the MNIST statistics.
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
MNIST_NORMALIZE = f"Normalize(({MNIST_MEAN},), ({MNIST_STD},))"  # the tutorials' call, as a label
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DataUnavailable(LabError, RuntimeError):
    """A dataset's files are not on disk and could not be downloaded (``data.*`` codes).

    A ``LabError``, hence a ``ValueError``, and still a ``RuntimeError`` as it always was: a
    caller that tells it apart from a bad config catches it first.
    """


@dataclass
class ImageData:
    """One image classification dataset, split into train and test, as uint8 tensors."""

    name: str
    title: str
    classes: list[str]
    train_images: torch.Tensor  # uint8 (N, H, W) grey, or (N, 3, H, W) colour (a learner's dataset)
    train_labels: torch.Tensor  # int64 (N,)
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: Message  # where the images come from, in the page's language (paths as code)
    mean: float = field(init=False)
    std: float = field(init=False)

    def __post_init__(self) -> None:
        # Statistics of the training split (for MNIST, close to the tutorials' MNIST_MEAN and MNIST_STD).
        self.mean, self.std = pixel_stats(self.train_images)

    @property
    def input_shape(self) -> tuple[int, ...]:
        shape = tuple(self.train_images.shape[1:])
        return (1, *shape) if len(shape) == 2 else shape

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of the images."""
        h, w = self.train_images.shape[-2:]
        return int(h), int(w)

    def normalized(self, split: str) -> torch.Tensor:
        """The whole split as one float32 tensor (N, 1, H, W), normalized with train stats."""
        images = self.train_images if split == "train" else self.test_images
        return normalize(images, self.mean, self.std)

    def labels(self, split: str) -> torch.Tensor:
        return self.train_labels if split == "train" else self.test_labels


def normalize(images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 (N, H, W) or (N, C, H, W) -> float32 (N, C, H, W): ToTensor + Normalize in one vectorized pass."""
    x = (images.unsqueeze(1) if images.ndim == 3 else images).to(torch.float32).div_(255.0)
    return x.sub_(mean).div_(std)


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a reproducible, class-balanced train/test split."""
    if not 0.0 < test_fraction < 1.0:
        raise LabError("data.test_fraction", value=test_fraction)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        n_test = max(1, round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    train_idx, test_idx = np.concatenate(train), np.concatenate(test)
    rng.shuffle(train_idx)
    rng.shuffle(test_idx)
    return train_idx, test_idx


VAL_SEED = 1  # the validation split's seed (the bundle's own train/test split uses seed 0)


def validation_split(labels: np.ndarray, size: int, seed: int = VAL_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(fit, validation) indices into a training split: about ``size`` images held out for model
    selection, class-balanced (rounded per class: 500 of the bundle's 7,000 is exactly 50 per class)
    and seeded. ``size`` 0: every image is for fitting, none held out."""
    labels = np.asarray(labels)
    if size <= 0:
        return np.arange(len(labels)), np.empty(0, dtype=np.int64)
    if size >= len(labels):
        raise LabError("data.val_size", size=size, n=len(labels))
    return stratified_split(labels, size / len(labels), seed)


def pixel_stats(images: torch.Tensor) -> tuple[float, float]:
    """Mean and standard deviation of uint8 images scaled to [0, 1] (the normalization of a training split)."""
    x = images.float().div_(255.0)
    return float(x.mean()), float(x.std())


def load_bundled(path: Path = BUNDLED_DIGITS, test_fraction: float = 0.125, seed: int = 0) -> ImageData:
    """The 8,000 bundled MNIST digits: 7,000 train / 1,000 test, 100 test digits per class."""
    with np.load(path) as npz:
        images, labels = npz["images"], npz["labels"]
    if images.dtype != np.uint8 or images.ndim != 3 or len(images) != len(labels):
        raise LabError("data.not_digits_file", path=Code(str(path)))
    train_idx, test_idx = stratified_split(labels, test_fraction, seed)
    info = DATASETS["digits8k"]
    return ImageData(
        name="digits8k",
        title=info.title,
        classes=list(info.classes),
        train_images=torch.from_numpy(images[train_idx]),
        train_labels=torch.from_numpy(labels[train_idx].astype(np.int64)),
        test_images=torch.from_numpy(images[test_idx]),
        test_labels=torch.from_numpy(labels[test_idx].astype(np.int64)),
        source=Message("data.source.bundled", path=Code("assets/mnist_digits_8k.npz"),
                       readme=Code("assets/mnist_digits_8k.README.md")),
    )


_download_lock = threading.Lock()


def _torchvision_split(cls, root: Path, train: bool, download: bool, timeout: float):
    """Open one torchvision split, downloading at most ``timeout`` seconds when asked."""
    if not download:
        return cls(str(root), train=train, download=False)
    result: dict[str, object] = {}

    def work() -> None:
        try:
            result["ds"] = cls(str(root), train=train, download=True)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, which reports it
            result["error"] = exc

    # torchvision's downloader has no timeout of its own; a daemon thread bounds the wait
    # so a machine without internet gets an answer within seconds instead of a hang.
    with _download_lock:
        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        worker.join(timeout)
    if worker.is_alive():
        raise DataUnavailable("data.download_timeout", seconds=timeout)
    error = result.get("error")
    if isinstance(error, BaseException):
        raise DataUnavailable("data.download_failed", reason=Code(first_line(error, limit=200)))
    return result["ds"]


def load_torchvision(name: str, settings: Settings) -> ImageData:
    """MNIST or FashionMNIST through torchvision from ``settings.data_root``.

    Files already on disk are used as they are; otherwise a download is tried (when
    allowed) with a time limit. Raises ``DataUnavailable`` with a clear message.
    """
    import torchvision.datasets as tvd

    info = DATASETS.get(name)
    if info is None or info.torchvision is None:
        raise LabError("data.unknown_torchvision", name=Code(repr(name)))
    cls_name = info.torchvision
    cls = getattr(tvd, cls_name)
    root = settings.data_root
    try:
        train = cls(str(root), train=True, download=False)
        test = cls(str(root), train=False, download=False)
    except RuntimeError as missing:
        raw = Code(str(root / cls_name / "raw"))
        if not settings.allow_download:
            raise DataUnavailable("data.downloads_off", dataset=Code(cls_name), raw=raw,
                                  setting=Code("PYTORCH_LAB_DOWNLOAD=0")) from missing
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataUnavailable("data.no_root", root=Code(str(root)), reason=Code(str(exc))) from exc
        try:
            train = _torchvision_split(cls, root, True, True, settings.download_timeout)
            test = _torchvision_split(cls, root, False, True, settings.download_timeout)
        except DataUnavailable as exc:
            raise DataUnavailable("data.unavailable", dataset=Code(cls_name), root=Code(str(root)), reason=exc,
                                  raw=raw) from None
    return ImageData(
        name=name,
        title=info.title,
        classes=list(info.classes),
        train_images=train.data.to(torch.uint8),
        train_labels=train.targets.to(torch.int64),
        test_images=test.data.to(torch.uint8),
        test_labels=test.targets.to(torch.int64),
        source=Message("data.source.torchvision", dataset=Code(f"torchvision.datasets.{cls_name}"),
                       root=Code(str(root))),
    )


def load_user(key: str) -> ImageData:
    """A learner's registered dataset (its train and test splits as they were made at upload)."""
    info = user_info(key)
    arrays = userdata.read_arrays(key)
    meta = userdata.read_meta(key)
    if not info.image or "train_images" not in arrays:
        raise LabError("datasets.not_images", name=Code(key))
    return ImageData(
        name=key, title=info.title, classes=list(info.classes),
        train_images=torch.from_numpy(arrays["train_images"]),
        train_labels=torch.from_numpy(arrays["train_labels"].astype(np.int64)),
        test_images=torch.from_numpy(arrays["test_images"]),
        test_labels=torch.from_numpy(arrays["test_labels"].astype(np.int64)),
        source=Message("data.source.user", name=Code(key), file=Code(str(meta.get("source", "")))),
    )


def load_tabular(key: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A learner's CSV dataset: (train_x, train_y, test_x, test_y); features standardized at upload, targets
    float (N, 1) for regression, class indices for classification."""
    info = user_info(key)
    arrays = userdata.read_arrays(key)
    if "train_x" not in arrays:
        raise LabError("datasets.damaged", name=Code(key))
    def target(y: np.ndarray) -> torch.Tensor:
        if info.task == "regression":
            return torch.from_numpy(y.astype(np.float32)).reshape(-1, 1)
        return torch.from_numpy(y.astype(np.int64))
    return (torch.from_numpy(arrays["train_x"].astype(np.float32)), target(arrays["train_y"]),
            torch.from_numpy(arrays["test_x"].astype(np.float32)), target(arrays["test_y"]))


def load_dataset(name: str, settings: Settings) -> ImageData:
    if name == "digits8k":
        return load_bundled()
    if name not in DATASETS and userdata.is_user_key(name):
        return load_user(name)
    if name not in IMAGE_DATASETS:
        raise LabError("data.unknown_dataset", name=Code(repr(name)), choices=Code(", ".join(IMAGE_DATASETS)))
    return load_torchvision(name, settings)


def files_stamp(name: str, settings: Settings) -> tuple:
    """What is on disk for dataset ``name``: (file name, size, mtime) of each file in its raw folder
    (empty for the bundled digits). A stamp that changed means files were copied in or removed."""
    if name not in DATASETS:
        user = find_dataset(name)
        return (user.stamp,) if user is not None else ()
    info = DATASETS.get(name)
    if info is None or info.torchvision is None:
        return ()
    raw = settings.data_root / info.torchvision / "raw"
    try:
        files = [p for p in raw.iterdir() if p.is_file()]
        return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files))
    except OSError:
        return ()


class DatasetShelf:
    """The datasets a server's sessions share: a loaded dataset is kept; a failure is remembered only
    while the dataset's files stay as they were and for at most ``retry_seconds`` (so a download is not
    retried on every click, and MNIST files copied in later are used at once, without a restart).

    ``get`` returns the ``ImageData`` or raises ``DataUnavailable``; one lock serializes the loads.
    """

    def __init__(self, retry_seconds: float = 60.0, clock=time.monotonic) -> None:
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._loaded: dict[tuple[str, object], ImageData] = {}
        self._failed: dict[tuple[str, object], tuple[tuple, float, DataUnavailable]] = {}

    def get(self, name: str, settings: Settings) -> ImageData:
        key: tuple[str, object] = (name, str(settings.data_root) if name in DATASETS else files_stamp(name, settings))
        with self._lock:
            if key in self._loaded:
                return self._loaded[key]
            stamp = files_stamp(name, settings)
            failed = self._failed.get(key)
            if failed is not None and failed[0] == stamp and self._clock() - failed[1] < self.retry_seconds:
                raise failed[2]
            try:
                data = load_dataset(name, settings)
            except DataUnavailable as exc:
                self._failed[key] = (stamp, self._clock(), exc)
                raise
            self._failed.pop(key, None)
            self._loaded[key] = data
            return data


class TensorLoader:
    """Batches of a tensor-resident dataset, taken by index (the Data page's batch view, the benchmarks).

    Iterating yields ``(inputs, targets)``; with ``shuffle`` the order is a permutation
    drawn from a generator seeded with ``seed + epoch``, so the same seed gives the same
    batches on any run.
    """

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int,
                 shuffle: bool = False, seed: int = 0, drop_last: bool = False) -> None:
        if len(inputs) != len(targets):
            raise LabError("data.lengths_differ", inputs=len(inputs), targets=len(targets))
        if batch_size < 1:
            raise LabError("data.batch_size", batch_size=batch_size)
        self.inputs, self.targets = inputs, targets
        self.batch_size, self.shuffle, self.seed, self.drop_last = batch_size, shuffle, seed, drop_last
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.inputs)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self, epoch: int) -> torch.Tensor:
        n = len(self.inputs)
        if not self.shuffle:
            return torch.arange(n)
        gen = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(n, generator=gen)

    def __iter__(self):
        order = self.order(self.epoch)
        self.epoch += 1
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield self.inputs[idx], self.targets[idx]


class ArrayDataset(Dataset):
    """The tutorials' custom Dataset (D1): ``__len__`` and ``__getitem__`` over (data, labels)."""

    def __init__(self, data: torch.Tensor, labels: torch.Tensor, transform=None) -> None:
        if len(data) != len(labels):
            raise LabError("data.labels_length")
        self.data, self.labels, self.transform = data, labels, transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, idx: int):
        x = self.data[idx]
        if self.transform is not None:
            x = self.transform(x)
        return x, self.labels[idx]


def custom_dataset_example(batch_size: int = 32, seed: int = 0) -> dict:
    """D1: a custom Dataset over random (data, labels) and a shuffling DataLoader."""
    gen = torch.Generator().manual_seed(seed)
    data = torch.randn(100, 10, generator=gen)
    labels = torch.randint(0, 2, (100,), generator=gen)
    ds = ArrayDataset(data, labels)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
    batches = [(tuple(x.shape), tuple(y.shape)) for x, y in loader]
    return {"len": len(ds), "item_shapes": (tuple(ds[0][0].shape), tuple(ds[0][1].shape)),
            "batches": batches}


WORKER_PIPELINES = ("normalize", "affine")  # D4's per-sample transforms: light, and an augmentation


def _worker_transform(pipeline: str):
    import torchvision.transforms.v2 as T

    to_float = [T.ToDtype(torch.float32, scale=True), T.Normalize((MNIST_MEAN,), (MNIST_STD,))]
    if pipeline == "normalize":
        return T.Compose(to_float)
    return T.Compose([T.RandomAffine(degrees=15, translate=(0.1, 0.1), scale=(0.85, 1.15), shear=10), *to_float])


def loader_workers_example(images: torch.Tensor, labels: torch.Tensor, workers: tuple[int, ...] = (0, 2),
                           batch_size: int = 64, pipelines: tuple[str, ...] = WORKER_PIPELINES,
                           seed: int = 0, timeout: float = 60.0) -> pd.DataFrame:
    """D4: one epoch of ``DataLoader(dataset, batch_size, shuffle=True, num_workers=w)`` over a per-sample
    Dataset (the tutorials' way), timed here for each number of workers and each transform pipeline.

    ``images`` uint8 (N, H, W). Returns one row per (pipeline, num_workers): ``first_batch_ms`` (the
    workers' start-up is in it), ``epoch_s``, ``images_per_s`` and ``speedup`` against 0 workers.
    Nothing is assumed: the numbers are what this machine measured just now.
    """
    if len(images) != len(labels) or not 1 <= len(images) <= 20_000:
        raise LabError("data.workers_sample", n=len(images))
    if not workers or any(isinstance(w, bool) or not isinstance(w, int) or not 0 <= w <= 8 for w in workers):
        raise LabError("data.workers_range", workers=Code(repr(workers)))
    unknown = [p for p in pipelines if p not in WORKER_PIPELINES]
    if unknown:
        raise LabError("data.unknown_pipeline", kind=Code(repr(unknown[0])), choices=Code(", ".join(WORKER_PIPELINES)))
    rows = []
    for pipeline in pipelines:
        dataset = ArrayDataset(images.unsqueeze(1) if images.ndim == 3 else images, labels,
                               transform=_worker_transform(pipeline))
        base = None
        for w in workers:
            loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=w,
                                generator=torch.Generator().manual_seed(seed), timeout=timeout if w else 0)
            start = time.perf_counter()
            first = None
            count = 0
            for x, _ in loader:
                if first is None:
                    first = time.perf_counter() - start
                count += len(x)
            epoch = time.perf_counter() - start
            base = epoch if base is None and w == workers[0] else base
            rows.append({"pipeline": pipeline, "num_workers": w, "first_batch_ms": 1000 * (first or 0.0),
                         "epoch_s": epoch, "images_per_s": count / epoch, "speedup": (base or epoch) / epoch})
    return pd.DataFrame(rows)


def dataloader_batch(data: ImageData, batch_size: int = 64, seed: int = 0) -> dict:
    """One shuffled batch of the tensor-resident training split: shapes, dtypes, value range, labels."""
    loader = TensorLoader(data.normalized("train"), data.labels("train"), batch_size, shuffle=True, seed=seed)
    x, y = next(iter(loader))
    return {"x": x, "y": y, "x_shape": tuple(x.shape), "x_dtype": str(x.dtype),
            "y_shape": tuple(y.shape), "y_dtype": str(y.dtype), "batches": len(loader)}


def value_stats(x: torch.Tensor) -> dict[str, float]:
    x = x.float()
    return {"min": float(x.min()), "max": float(x.max()), "mean": float(x.mean()), "std": float(x.std())}


def normalization_table(images: torch.Tensor) -> pd.DataFrame:
    """D2: value ranges of raw pixels, after ToTensor, and after the two usual Normalize calls.

    One row per step; ``step`` is the transform as code (``uint8`` for the raw pixels).
    """
    import torchvision.transforms.v2 as T

    raw = images.unsqueeze(1) if images.ndim == 3 else images  # uint8 (N,C,H,W) as torchvision expects
    to_tensor = T.Compose([T.ToDtype(torch.float32, scale=True)])
    steps = {
        "uint8": raw,
        "ToTensor()": to_tensor(raw),
        "Normalize((0.5,), (0.5,))": T.Compose([to_tensor, T.Normalize((0.5,), (0.5,))])(raw),
        MNIST_NORMALIZE: T.Compose([to_tensor, T.Normalize((MNIST_MEAN,), (MNIST_STD,))])(raw),
    }
    rows = [{"step": name, **value_stats(x)} for name, x in steps.items()]
    return pd.DataFrame(rows)


def class_counts(data: ImageData) -> pd.DataFrame:
    """Class balance of both splits, one row per class."""
    n = len(data.classes)
    return pd.DataFrame({
        "class": data.classes,
        "train": torch.bincount(data.train_labels, minlength=n).tolist(),
        "test": torch.bincount(data.test_labels, minlength=n).tolist(),
    })


AUGMENTATIONS = ("hflip", "rotation", "affine", "imagenet")


def augment_preview(images: torch.Tensor, kind: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, pd.DataFrame]:
    """Before/after images for one augmentation (D3), with per-channel value statistics.

    ``images`` are uint8 (N, H, W). Returns (before, after) as float images in [0, 1] for
    display, shaped (N, C, H, W), and a table of value ranges before and after.
    """
    import torchvision.transforms.v2 as T

    if kind not in AUGMENTATIONS:
        raise LabError("data.unknown_augmentation", kind=Code(repr(kind)), choices=Code(", ".join(AUGMENTATIONS)))
    torch.manual_seed(seed)
    before = images.unsqueeze(1) if images.ndim == 3 else images
    if kind == "hflip":
        pipeline = T.RandomHorizontalFlip(p=1.0)
    elif kind == "rotation":
        pipeline = T.RandomRotation(degrees=30)
    elif kind == "affine":
        pipeline = T.RandomAffine(degrees=15, translate=(0.1, 0.1), scale=(0.85, 1.15), shear=10)
    else:
        # D3 verbatim: RandomHorizontalFlip, ToTensor, Normalize(ImageNet mean/std) on RGB.
        before = before.expand(-1, 3, -1, -1) if before.shape[1] == 1 else before
        pipeline = T.Compose([
            T.RandomHorizontalFlip(),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ])
    after = torch.stack([pipeline(img) for img in before])
    before_f = before.float() / 255.0
    if after.dtype == torch.uint8:
        after_f = after.float() / 255.0
        after_display = after_f
    else:
        after_f = after
        # Undo the normalization for display only; the table shows the real values.
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        after_display = (after * std + mean).clamp(0, 1)
    table = pd.DataFrame([  # "tensor" names the row: "before" / "after" (the page translates them)
        {"tensor": "before", "shape": str(tuple(before_f.shape)), **value_stats(before_f)},
        {"tensor": "after", "shape": str(tuple(after_f.shape)), **value_stats(after_f)},
    ])
    return before_f, after_display, table


def regression_linear() -> tuple[torch.Tensor, torch.Tensor]:
    """R1: inputs [1, 2, 3] -> targets [2, 4, 6], shaped (3, 1) for Linear(1, 1)."""
    x = torch.tensor([[1.0], [2.0], [3.0]])
    return x, 2 * x


def regression_synthetic(n: int = 512, features: int = 10, noise: float = 0.1, seed: int = 0
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """R2: y = x @ w + b + noise for NeuralNet(10, 20, 1), reproducible from the seed."""
    if not (1 <= n <= 1_000_000 and 1 <= features <= 10_000):
        raise LabError("data.synthetic_size")
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=gen)
    w = torch.randn(features, 1, generator=gen)
    y = x @ w + 0.5 + noise * torch.randn(n, 1, generator=gen)
    return x, y
