"""The tutorials' model zoo: every model of the tutorials as a spec (data, not code), validated once at import."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import Code
from core.i18n import t
from core.ml.modules import infer_shapes, parameter_count
from core.ml.spec import ModelSpec, SpecError


# --------------------------------------------------------------------------- zoo
def L(kind: str, name: str | None = None, layers: list | None = None, functional: bool = False, **args) -> dict:
    layer: dict[str, Any] = {"type": kind, "args": args}
    if name:
        layer["name"] = name
    if functional:
        layer["functional"] = True
    if layers is not None:
        layer["layers"] = layers
    return layer


@dataclass(frozen=True)
class Preset:
    """A model of the zoo. Its title (``zoo.title.<key>``) and note (``zoo.note.<key>``) are UI text
    in core/i18n, so each page shows them in its language; ``title`` is the English one (CLI, logs)."""

    key: str
    example: str  # SEED_EXAMPLES id, "" for the lab's own
    task: str  # "classification", "regression" or "shapes" (a shape demo, not trained)
    spec: ModelSpec
    params: int  # the count the tutorials state (checked by the tests)
    note: str = ""  # the catalogue key of a one-line note, or ""

    @property
    def title(self) -> str:
        return t(f"zoo.title.{self.key}", "en")


def _preset(key, example, task, name, input_shape, layers, params, note=False):
    spec = ModelSpec.parse({"name": name, "input_shape": input_shape, "layers": layers})
    return Preset(key, example, task, spec, params, f"zoo.note.{key}" if note else "")


_MNIST = [1, 28, 28]
PRESETS: dict[str, Preset] = {p.key: p for p in [
    _preset("linear", "M1", "regression", "LinearModel", [1],
            [L("Linear", "linear", in_features=1, out_features=1)], 2),
    _preset("neural_net", "M2", "regression", "NeuralNet", [10],
            [L("Linear", "fc1", in_features=10, out_features=20), L("ReLU", functional=True),
             L("Linear", "fc2", in_features=20, out_features=1)], 241, note=True),
    _preset("mlp_sequential", "M3", "regression", "Sequential", [10],
            [L("Linear", in_features=10, out_features=50), L("ReLU"), L("Linear", in_features=50, out_features=20),
             L("ReLU"), L("Linear", in_features=20, out_features=1)], 1591),
    _preset("neural_network", "M4", "classification",
            "NeuralNetwork", _MNIST,
            [L("Flatten", "flatten"),
             L("Sequential", "linear_relu_stack", layers=[
                 L("Linear", in_features=784, out_features=512), L("ReLU"),
                 L("Linear", in_features=512, out_features=512), L("ReLU"),
                 L("Linear", in_features=512, out_features=10)])], 669706),
    _preset("cnn", "M5", "classification", "CNN", _MNIST,
            [L("Conv2d", "conv1", in_channels=1, out_channels=16, kernel_size=3, padding=1), L("ReLU", "relu"),
             L("MaxPool2d", "pool", kernel_size=2), L("Flatten", "flatten"),
             L("Linear", "fc", in_features=16 * 14 * 14, out_features=10)], 31530),
    _preset("simple_cnn", "M6", "classification", "SimpleCNN", _MNIST,
            [L("Conv2d", "conv1", in_channels=1, out_channels=32, kernel_size=3, padding=1), L("ReLU", "relu1"),
             L("MaxPool2d", "pool1", kernel_size=2),
             L("Conv2d", "conv2", in_channels=32, out_channels=64, kernel_size=3, padding=1), L("ReLU", "relu2"),
             L("MaxPool2d", "pool2", kernel_size=2), L("Flatten", "flatten"),
             L("Linear", "fc", in_features=64 * 7 * 7, out_features=10)], 50186),
    _preset("cnn_rgb16", "M7", "shapes", "CNN3", [3, 16, 16],
            [L("Conv2d", "conv", in_channels=3, out_channels=16, kernel_size=3), L("ReLU", "relu"),
             L("Flatten", "flatten"), L("Linear", "fc", in_features=16 * 14 * 14, out_features=10)], 31818,
            note=True),
    # The tutorial's NetWithResBlock: forward is input_layer, resblock, pool, torch.flatten(x, 1), fc.
    _preset("resblock_net", "M8", "classification", "NetWithResBlock", _MNIST,
            [L("Conv2d", "input_layer", in_channels=1, out_channels=16, kernel_size=3, padding=1),
             L("ResBlock", "resblock", channels=16), L("AdaptiveAvgPool2d", "pool", output_size=[1, 1]),
             L("Flatten", functional=True, start_dim=1), L("Linear", "fc", in_features=16, out_features=10)], 5034,
            note=True),
    _preset("conv2d_rgb", "M9", "shapes", "Conv2dDemo", [3, 32, 32],
            [L("Conv2d", in_channels=3, out_channels=64, kernel_size=3, stride=1, padding=1)], 1792),
    _preset("conv1d", "M9", "shapes", "Conv1dDemo", [2, 100],
            [L("Conv1d", in_channels=2, out_channels=32, kernel_size=5)], 352),
    _preset("lstm_seq", "M9", "shapes", "LSTMDemo", [5, 10],
            [L("LSTM", input_size=10, hidden_size=20, num_layers=2, dropout=0.2, output="sequence")], 5920),
    _preset("gru_seq", "M9", "shapes", "GRUDemo", [5, 10],
            [L("GRU", input_size=10, hidden_size=20, num_layers=2, output="sequence")], 4440),
    _preset("conv3d", "M18", "shapes", "Conv3dDemo", [3, 8, 32, 32],
            [L("Conv3d", in_channels=3, out_channels=16, kernel_size=3, padding=1)], 1312, note=True),
    _preset("lstm_mnist", "", "classification", "RowLSTM", _MNIST,
            [L("Flatten", "rows", start_dim=1, end_dim=2),
             L("LSTM", "lstm", input_size=28, hidden_size=128, output="last"),
             L("Linear", "fc", in_features=128, out_features=10)], 82186),
    _preset("gru_mnist", "", "classification", "RowGRU", _MNIST,
            [L("Flatten", "rows", start_dim=1, end_dim=2),
             L("GRU", "gru", input_size=28, hidden_size=128, output="last"),
             L("Linear", "fc", in_features=128, out_features=10)], 61962),
    _preset("lab_cnn", "", "classification", "LabCNN", _MNIST,
            [L("Conv2d", in_channels=1, out_channels=32, kernel_size=5, padding=2, bias=False),
             L("BatchNorm2d", num_features=32), L("ReLU"), L("MaxPool2d", kernel_size=2),
             L("Conv2d", in_channels=32, out_channels=64, kernel_size=3, padding=1, bias=False),
             L("BatchNorm2d", num_features=64), L("ReLU"), L("MaxPool2d", kernel_size=2),
             L("Conv2d", in_channels=64, out_channels=128, kernel_size=3, padding=1, bias=False),
             L("BatchNorm2d", num_features=128), L("ReLU"), L("MaxPool2d", kernel_size=2),
             L("Flatten"), L("Dropout", p=0.3),
             L("Linear", in_features=128 * 3 * 3, out_features=10)], 104938, note=True),
    _preset("lab_fast", "", "classification", "LabFastCNN", _MNIST,
            [L("Conv2d", in_channels=1, out_channels=32, kernel_size=5, stride=2, padding=2, bias=False),
             L("BatchNorm2d", num_features=32), L("ReLU"),
             L("Conv2d", in_channels=32, out_channels=64, kernel_size=3, padding=1, bias=False),
             L("BatchNorm2d", num_features=64), L("ReLU"), L("MaxPool2d", kernel_size=2),
             L("Conv2d", in_channels=64, out_channels=128, kernel_size=3, padding=1, bias=False),
             L("BatchNorm2d", num_features=128), L("ReLU"), L("MaxPool2d", kernel_size=2),
             L("Flatten"), L("Dropout", p=0.3),
             L("Linear", in_features=128 * 3 * 3, out_features=10)], 104938, note=True),
]}
DEFAULT_PRESET = "lab_fast"


def preset_spec(key: str) -> ModelSpec:
    """A preset's spec (frozen, so shared: an edit makes a new one)."""
    if key not in PRESETS:
        raise SpecError("spec.unknown_preset", preset=Code(repr(key)), presets=Code(", ".join(PRESETS)))
    return PRESETS[key].spec


def zoo_rows(lang: str = "en") -> list[dict]:
    """One row per preset: key, example id, title (in ``lang``), input/output shapes (batch 1), parameters."""
    rows = []
    for key, p in PRESETS.items():
        steps = infer_shapes(p.spec, batch=1)
        rows.append({"preset": key, "example": p.example or "—", "title": t(f"zoo.title.{key}", lang),
                     "input": str((1, *p.spec.input_shape)),
                     "output": str(steps[-1].output_shape), "params": parameter_count(p.spec)})
    return rows
