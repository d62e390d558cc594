"""TrainConfig: a typed config validated once, in the lab's words, with the CLI's flags from its schema."""
import argparse

import pytest

from core.ml.spec import ModelSpec
from core.ml.zoo import preset_spec
from core.runs.jobs import JobManager
from core.training.config import FIELDS, ConfigError, TrainConfig, field_default
from core.training.console import add_config_flags, config_from_args

MLP = {"name": "MLP", "input_shape": [1, 28, 28], "layers": [
    {"type": "Flatten"}, {"type": "Linear", "args": {"in_features": 784, "out_features": 10}}]}


class Counting:
    """A pydantic validator that counts the validations it does."""

    def __init__(self, inner, counts: dict, key: str) -> None:
        self.inner, self.counts, self.key = inner, counts, key

    def validate_python(self, *args, **kwargs):
        self.counts[self.key] += 1
        return self.inner.validate_python(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture
def counts(monkeypatch):
    counted = {"config": 0, "spec": 0}
    monkeypatch.setattr(TrainConfig, "__pydantic_validator__",
                        Counting(TrainConfig.__pydantic_validator__, counted, "config"))
    monkeypatch.setattr(ModelSpec, "__pydantic_validator__",
                        Counting(ModelSpec.__pydantic_validator__, counted, "spec"))
    return counted


def test_the_counter_counts(counts):
    TrainConfig(model_spec=MLP, augment=False)
    assert counts == {"config": 1, "spec": 1}


def test_a_start_validates_the_config_once(tmp_path, counts, monkeypatch):
    """What a Start click on the Train page does: the form's values (with the Builder's model, a spec
    validated when it was built) make one TrainConfig; JobManager.start stores it as it is."""
    spec = ModelSpec.parse(MLP)
    form = {name: field_default(name) for name in ("dataset", "optimizer", "lr", "scheduler", "loss")}
    jobs = JobManager(tmp_path / "home", cap=1)
    monkeypatch.setattr(jobs, "poll", lambda: [])  # no worker: the worker process validates its own copy
    counts.update(config=0, spec=0)
    config = TrainConfig(**form, model_spec=spec, augment=False, epochs=1, seed=3)
    run_id = jobs.start(config, name="counted")
    assert counts == {"config": 1, "spec": 0}
    stored = jobs.store.run(run_id)["config"]
    assert stored["model_spec"] == spec.to_dict() and stored["epochs"] == 1
    assert TrainConfig.from_dict(stored) == config  # the worker's one validation gives the same config
    assert counts == {"config": 2, "spec": 1}
    jobs.store.close()


def test_a_config_passes_as_it_is():
    config = TrainConfig(preset="cnn", augment=False)
    assert TrainConfig.from_dict(config) is config and config.validate() is config
    assert config.spec() is preset_spec("cnn")
    changed = config.replace(lr=0.01)
    assert changed.lr == 0.01 and changed.model_spec is None and config.lr == field_default("lr")
    with pytest.raises(Exception):  # noqa: B017 - frozen: replace() makes a new, validated config
        config.lr = 1.0  # type: ignore[misc]
    with pytest.raises(ConfigError, match="lr must be between 1e-08 and 10, got 20"):
        config.replace(lr=20)


def test_json_round_trip_keeps_the_stored_format():
    config = TrainConfig(model_spec=MLP, augment=False, lr=1)
    data = config.to_dict()
    assert list(data) == list(FIELDS) and data["lr"] == 1.0
    assert data["model_spec"]["layers"][0] == {"type": "Flatten", "args": {}}
    assert isinstance(config.model_spec, ModelSpec)
    assert TrainConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize("changes,message", [
    ({"epochs": 2.5}, "epochs must be a whole number, got 2.5"),
    ({"lr": float("nan")}, "lr must be a finite number, got nan"),
    ({"lr": "0.1"}, "lr must be a number, got '0.1'"),
    ({"batch_size": 10**9}, "batch_size must be between 1 and 100,000,000, got 1,000,000,000"),
    ({"optimizer": "lbfgs"}, "optimizer must be one of sgd, adam, adamw, rmsprop, adadelta, got 'lbfgs'"),
    ({"augment": "yes"}, "augment must be true or false, got 'yes'"),
    ({"preset": ""}, "preset must be a non-empty name, got ''"),
    ({"epochs": 300}, "epochs is 300, over the cap of 200 (PYTORCH_LAB_MAX_EPOCHS)"),
    ({"task": "regression"}, "dataset 'digits8k' is a classification dataset but task is 'regression'; "
                             "set task to classification or auto"),
    ({"dataset": "linear", "preset": "linear"}, "augment works on images; dataset 'linear' is not an image "
                                                "dataset, set augment to false (--no-augment)"),
    ({"model_spec": [1, 2]}, "model_spec must be a model spec object or null, got list"),
    ({"lrr": 1, "bogus": 2}, "unknown config key(s): bogus, lrr; known keys: preset, model_spec, dataset"),
])
def test_errors_keep_the_labs_wording_and_read_in_chinese(changes, message):
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict(changes)
    assert str(err.value).startswith(message)
    zh = err.value.message("zh")
    assert zh != str(err.value) and any("\u4e00" <= ch <= "\u9fff" for ch in zh)


def test_a_bad_model_spec_is_named_in_both_languages():
    bad = {**MLP, "layers": [{"type": "Bogus"}]}
    with pytest.raises(ConfigError) as err:
        TrainConfig(model_spec=bad)
    assert str(err.value).startswith("model: layer 0: unknown layer type 'Bogus'")
    assert err.value.message("zh").startswith("模型：第 0 层：未知的层类型")


def test_cli_flags_come_from_the_schema():
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe")
    parser.add_argument("--config")
    add_config_flags(parser)
    actions = {a.dest: a for a in parser._actions}
    assert set(FIELDS) <= set(actions)
    assert actions["optimizer"].choices == ("sgd", "adam", "adamw", "rmsprop", "adadelta")
    assert actions["epochs"].type is int and actions["lr"].type is float
    assert isinstance(actions["augment"], argparse.BooleanOptionalAction)
    args = parser.parse_args(["--preset", "cnn", "--no-augment", "--lr", "0.01", "--epochs", "2",
                              "--optimizer", "adam"])
    config = config_from_args(args)
    assert (config.preset, config.augment, config.lr, config.epochs, config.optimizer) == ("cnn", False, 0.01, 2,
                                                                                          "adam")
    with pytest.raises(SystemExit):
        parser.parse_args(["--optimizer", "lbfgs"])


def test_normalize_off_feeds_the_raw_pixel_values():
    """TrainConfig.normalize (the doctor's "inputs not normalized" fix): off, the images go in as 0-255."""
    from core.training.batches import load_data

    base = dict(limit_train=256, limit_test=64, val_size=64, augment=False)
    raw = load_data(TrainConfig(normalize=False, **base))
    normal = load_data(TrainConfig(**base))
    assert float(raw.train_x.min()) == 0.0 and float(raw.train_x.max()) == pytest.approx(255.0)
    assert abs(float(normal.train_x.mean())) < 0.1 and abs(float(normal.train_x.std()) - 1.0) < 0.1
