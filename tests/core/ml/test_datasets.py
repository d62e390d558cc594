"""The learner's own image datasets (issue 21): decoding, the hostile files, the registry, the CLI, training."""
from __future__ import annotations

import io

import numpy as np
import pytest

from core.errors import LabError
from core.ml import datasets as D
from core.ml import userdata
from core.ml.data import dataset_info, find_dataset, load_dataset
from core.settings import load_settings
from tests.datafiles import (
    classes_csv,
    huge_png_header,
    many_files_zip,
    png_bytes,
    regression_csv,
    shape_image,
    shapes_npz,
    shapes_zip,
    zip_bomb,
    zip_of,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _code(exc: pytest.ExceptionInfo) -> str:
    assert isinstance(exc.value, LabError)
    return exc.value.code


def _files_outside(tmp_path, home) -> list[str]:
    return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if home not in (p, *p.parents))


# --------------------------------------------------------------------------- good files
def test_imagefolder_zip_decodes_resizes_and_names_classes():
    decoded = D.decode_imagefolder(shapes_zip(per_class=5, size=16), size=12, channels=1)
    assert decoded.classes == ["circle", "square", "triangle"]
    assert decoded.images.shape == (15, 12, 12) and decoded.images.dtype == np.uint8
    assert np.bincount(decoded.labels).tolist() == [5, 5, 5]
    assert decoded.images.max() > 200  # the white shapes survive the resize
    assert [n.key for n in decoded.notes] == ["datasets.note.resized"]


def test_zip_without_top_folder_and_colour():
    decoded = D.decode_imagefolder(shapes_zip(per_class=4, top="", mode="RGB"), size=16, channels=3)
    assert decoded.images.shape == (12, 3, 16, 16) and decoded.notes == []


def test_mixed_image_sizes_are_resized_and_said():
    decoded = D.decode_imagefolder(shapes_zip(per_class=4, sizes=(16, 20, 33)), size=16)
    assert decoded.images.shape == (12, 16, 16)
    assert decoded.notes[0].key == "datasets.note.mixed_sizes" and decoded.notes[0].params["n"] == 3


def test_npz_grey_and_rgb_channels():
    grey = D.decode_npz(shapes_npz(per_class=4), size=16, channels=3)
    assert grey.images.shape == (12, 3, 16, 16) and grey.classes == ["0", "1", "2"]
    rgb = np.stack([np.asarray(shape_image("circle", np.random.default_rng(i), 16, "RGB")) for i in range(6)])
    buffer = io.BytesIO()
    np.savez(buffer, images=rgb, labels=np.array([0, 1] * 3), classes=np.array(["a", "b"]))
    decoded = D.decode_npz(buffer.getvalue(), size=8, channels=1)
    assert decoded.images.shape == (6, 8, 8) and decoded.classes == ["a", "b"]


def test_register_split_is_reproducible_and_stays_in_the_lab_home(home, tmp_path):
    data = shapes_zip(per_class=10)
    one = D.add_file(data, "shapes.zip", "one", size=16, seed=3)
    two = D.add_file(data, "shapes.zip", "two", size=16, seed=3)
    a, b = userdata.read_arrays("one"), userdata.read_arrays("two")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert one.meta["train_size"] + one.meta["test_size"] == 30 and one.meta["test_size"] == 6
    assert two.meta["val_size"] == 3
    assert userdata.list_keys() == ["one", "two"]
    info = dataset_info("one")
    assert info.user and info.input_shape == (1, 16, 16) and info.outputs == 3 and info.image
    loaded = load_dataset("one", load_settings())
    assert loaded.input_shape == (1, 16, 16) and len(loaded.test_labels) == 6
    assert _files_outside(tmp_path, home) == []
    with pytest.raises(LabError) as exc:
        D.add_file(data, "shapes.zip", "one", size=16)
    assert _code(exc) == "datasets.exists"
    D.remove("one")
    assert find_dataset("one") is None and userdata.list_keys() == ["two"]
    with pytest.raises(LabError) as exc:
        D.remove("one")
    assert _code(exc) == "datasets.unknown"


@pytest.mark.parametrize("name", ["../etc", "A", "", "x" * 49, "digits8k", "a/b", ".hidden"])
def test_bad_names_are_refused(home, name):
    with pytest.raises(LabError) as exc:
        D.add_file(shapes_zip(per_class=3), "s.zip", name)
    assert _code(exc) in ("datasets.bad_name", "datasets.builtin_name")
    assert not (home / "datasets").exists() or userdata.list_keys() == []


# --------------------------------------------------------------------------- hostile files
def test_zip_bomb_is_refused_before_inflating():
    with pytest.raises(LabError) as exc:
        D.decode_imagefolder(zip_bomb(mb=20))
    assert _code(exc) == "datasets.bomb"


def test_many_tiny_files_are_refused():
    with pytest.raises(LabError) as exc:
        D.decode_imagefolder(many_files_zip(100_000))
    assert _code(exc) == "datasets.too_many_files" and exc.value.params["n"] == 100_000


def test_huge_png_header_is_refused_before_decoding():
    with pytest.raises(LabError) as exc:
        D.decode_imagefolder(zip_of({"a/x.png": huge_png_header(), "b/y.png": huge_png_header()}))
    assert _code(exc) == "datasets.image_bomb"
    with pytest.raises(LabError) as exc:  # over the lab's cap, under PIL's own
        D.decode_imagefolder(zip_of({"a/x.png": huge_png_header(5000, 5000), "b/y.png": huge_png_header(8, 8)}))
    assert _code(exc) == "datasets.image_too_large" and exc.value.params["width"] == 5000


@pytest.mark.parametrize("name", ["../evil/x.png", "/abs/x.png", "a\\..\\x.png", "C:/x/y.png", "a/../../x.png"])
def test_path_traversal_names_are_refused(name):
    with pytest.raises(LabError) as exc:
        D.decode_imagefolder(zip_of({name: b"x", "b/y.png": b"y"}))
    assert _code(exc) == "datasets.unsafe_path"


def test_symlinks_are_refused():
    with pytest.raises(LabError) as exc:
        D.decode_imagefolder(zip_of({"a/x.png": b"/etc/passwd", "b/y.png": b"y"}, symlinks=("a/x.png",)))
    assert _code(exc) == "datasets.symlink"


def test_one_class_only_and_too_few_images():
    with pytest.raises(LabError) as exc:
        D.decode_imagefolder(shapes_zip(per_class=5, classes=("circle",)))
    assert _code(exc) == "datasets.one_class"
    with pytest.raises(LabError) as exc:
        D.decode_imagefolder(shapes_zip(per_class=2))
    assert _code(exc) == "datasets.few_images"


@pytest.mark.parametrize("labels", [np.array([0, 1, -1] * 4), np.array([0, 1, 500] * 4)])
def test_labels_out_of_range(labels):
    with pytest.raises(LabError) as exc:
        D.decode_npz(shapes_npz(per_class=4, labels=labels))
    assert _code(exc) == "datasets.labels_range"


def test_npz_shapes_keys_and_pickles_are_refused():
    with pytest.raises(LabError) as exc:
        D.decode_npz(shapes_npz(per_class=4, labels=np.zeros(5, dtype=np.int64)))
    assert _code(exc) == "datasets.npz_labels"
    buffer = io.BytesIO()
    np.savez(buffer, pictures=np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(LabError) as exc:
        D.decode_npz(buffer.getvalue())
    assert _code(exc) == "datasets.npz_keys"
    buffer = io.BytesIO()
    np.savez(buffer, images=np.array([object()] * 3, dtype=object), labels=np.arange(3))
    with pytest.raises(LabError) as exc:  # np.load never unpickles
        D.decode_npz(buffer.getvalue())
    assert _code(exc) == "datasets.not_archive"


def test_truncated_and_wrong_files():
    data = shapes_zip(per_class=4)
    for broken in (data[: len(data) // 2], b"not a zip at all", data[:-30]):
        with pytest.raises(LabError) as exc:
            D.decode_imagefolder(broken)
        assert _code(exc) in ("datasets.not_archive", "datasets.damaged_entry")
    with pytest.raises(LabError) as exc:
        D.decode_imagefolder(zip_of({"x.png": png_bytes(shape_image("circle", np.random.default_rng(0))),
                                     "a/y.png": b"", "b/y.png": b""}))
    assert _code(exc) == "datasets.layout"
    with pytest.raises(LabError) as exc:
        D.decode_imagefolder(zip_of({"a/x.txt": b"hello", "b/y.png": b""}))
    assert _code(exc) == "datasets.not_image"
    with pytest.raises(LabError) as exc:
        D.decode_file(data, "shapes.tar")
    assert _code(exc) == "datasets.format"


def test_every_refusal_has_both_languages():
    with pytest.raises(LabError) as exc:
        D.decode_imagefolder(zip_bomb(mb=5))
    assert "zip bomb" in exc.value.message("en") and "压缩炸弹" in exc.value.message("zh")


# --------------------------------------------------------------------------- the CLI and training
def test_cli_add_list_train_remove(home, tmp_path, capsys):
    from core.datasets import main
    from core.runs.cli import main as train

    path = tmp_path / "shapes.zip"
    path.write_bytes(shapes_zip(per_class=20))
    assert main(["add", "shapes", str(path), "--size", "16"]) == 0
    assert "python -m core.train --dataset shapes" in capsys.readouterr().out
    assert main(["list"]) == 0 and "shapes\t3 classes" in capsys.readouterr().out
    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(zip_bomb(mb=5))
    assert main(["add", "bomb", str(bomb)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "zip bomb" in err and err.count("\n") == 1
    assert train(["--dataset", "shapes", "--epochs", "1", "--no-store", "--quiet", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert '"status": "completed"' in out and '"test_acc"' in out
    assert main(["remove", "shapes"]) == 0 and main(["remove", "shapes"]) == 2
    assert _files_outside(tmp_path, home) == ["bomb.zip", "shapes.zip"]


def test_config_knows_registered_datasets_only(home):
    from core.training.config import TrainConfig

    D.add_file(shapes_zip(per_class=10), "s.zip", "mine", size=16)
    spec = D.dataset_model((1, 16, 16), 3)
    config = TrainConfig(dataset="mine", model_spec=spec.to_dict(), val_size=3, augment=False, epochs=1)
    assert config.dataset_info.user and config.validation_size == 3
    with pytest.raises(LabError) as exc:
        TrainConfig(dataset="theirs", model_spec=spec.to_dict())
    assert "digits8k" in str(exc.value)
    with pytest.raises(LabError) as exc:  # the lab's default model does not take 16x16 images
        TrainConfig(dataset="mine", val_size=3)
    assert exc.value.code == "config.input_shape"


# --------------------------------------------------------------------------- CSV
def test_csv_regression_registers_and_trains(home, capsys):
    from core.datasets import main
    from core.training.batches import load_data
    from core.training.config import TrainConfig
    from core.training.console import user_dataset_defaults
    from core.training.trainer import Trainer

    assert D.csv_columns(regression_csv()) == ["a", "b", "c", "y"]
    done = D.add_file(regression_csv(), "houses.csv", "houses", target="y", task="regression")
    assert done.meta["input_shape"] == [3] and done.meta["train_size"] == 64 and done.meta["test_size"] == 16
    info = dataset_info("houses")
    assert info.task == "regression" and not info.image and info.outputs == 1
    config = TrainConfig(dataset="houses", epochs=150, batch_size=64, optimizer="adam", lr=0.02, ema=0.0,
                         scheduler="none", **user_dataset_defaults({"dataset": "houses"}, False))
    assert config.resolved_loss == "mse" and config.spec().name == "DatasetMLP"
    data = load_data(config)
    assert tuple(data.train_x.shape) == (64, 3) and tuple(data.train_y.shape) == (64, 1)
    last = None
    for event in Trainer(config).run():
        last = event if event["kind"] == "epoch" else last
    assert last is not None and last["test_loss"] < 0.3 * float(data.test_y.var())  # it learned the plane
    assert main(["list"]) == 0 and "houses\tregression\t(3,)" in capsys.readouterr().out


def test_csv_classification_with_text_classes(home):
    from core.training.config import TrainConfig
    from core.training.console import user_dataset_defaults

    D.add_file(classes_csv(), "points.csv", "points", target="colour", task="classification")
    info = dataset_info("points")
    assert info.task == "classification" and info.classes == ("blue", "green", "red") and info.input_shape == (2,)
    config = TrainConfig(dataset="points", epochs=1, **user_dataset_defaults({"dataset": "points"}, False))
    assert config.resolved_loss == "cross_entropy"


@pytest.mark.parametrize("data, target, task, code, words", [
    (regression_csv(extra={"city": ["Paris", "Rome"] * 40, "street": ["x"] * 80}), "y", "regression",
     "datasets.csv_not_numeric", "city, street"),
    (regression_csv(extra={"gap": [1.0, None] * 40}), "y", "regression", "datasets.csv_missing", "gap"),
    (regression_csv(), "price", "regression", "datasets.csv_target", "a, b, c, y"),
    (classes_csv(), "colour", "regression", "datasets.csv_not_numeric", "colour"),
    (b"a,b\n1,2\n3", "b", "regression", "datasets.csv_missing", "b"),
    (b"\xff\xfe\x00garbage\x00\n\x01", "a", "regression", "datasets.csv_unreadable", ""),
])
def test_csv_refusals_name_the_columns(home, data, target, task, code, words):
    with pytest.raises(LabError) as exc:
        D.add_file(data, "t.csv", "t", target=target, task=task)
    assert _code(exc) == code and words in str(exc.value)
    assert userdata.list_keys() == []


def test_the_lab_homes_disk_cap_holds_for_datasets(home, monkeypatch):
    monkeypatch.setenv("PYTORCH_LAB_MAX_HOME_GB", "0.01")  # 10 MB
    (home / "runs").mkdir(parents=True)
    (home / "runs" / "big.bin").write_bytes(bytes(10_000_000))
    with pytest.raises(LabError) as exc:
        D.add_file(shapes_zip(per_class=5), "s.zip", "s", size=16)
    assert _code(exc) == "datasets.home_full" and userdata.list_keys() == []
