"""Model specs: a model as data, validated once into a typed ``ModelSpec``.

A spec's JSON is ``{"name": str, "input_shape": [C, H, W] or [F] or [T, F] or [C, D, H, W],
"layers": [layer, ...]}`` where a layer is ``{"type": str, "args": {...}}`` with literal arguments,
an optional ``"name"`` (the child's attribute name, as in the tutorials' classes), for an
activation or ``Flatten`` an optional ``"functional": true`` (a call in ``forward`` such as
``torch.relu(x)``, not a layer the model registers: the tutorials' ``NeuralNet``) and, for
``Sequential``, nested ``"layers"``. ``ModelSpec.parse`` (or ``from_json``) turns that data into a frozen
``ModelSpec`` whose layers are typed by their ``type`` (one arguments model per layer type,
with PyTorch's ranges and the lab's caps); anything wrong raises one ``SpecError`` naming the
layer, the argument and the fix. Afterwards the engine takes the typed spec and never checks it
again. ``to_dict``/``to_json`` write the same JSON back (only the arguments the spec gave).
"""
from __future__ import annotations

import json
import keyword
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    Strict,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    create_model,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError
from torch import nn

from core.errors import Code, LabError
from core.safe.jsontext import loads_user_json

DEFAULT_PARAM_CAP = 50_000_000
MAX_LAYERS = 200
MAX_DEPTH = 4  # Sequential blocks nest at most this deep
MAX_DIM = 65_536  # any single size argument (features, channels, hidden size)
# A model's input shape, without the batch dimension: 1 to 4 sizes (Conv3d's C, D, H, W), each 1..4096.
MAX_INPUT_DIMS = 4
MAX_INPUT_SIZE = 4096
MAX_JSON_CHARS = 200_000
# Elements one sample puts through the model (its input plus every layer's output), counted
# on the meta device: a small model on a huge input (or with a huge feature map) is refused
# before a forward pass could allocate gigabytes. The largest preset needs ~150,000.
MAX_SAMPLE_ACTIVATIONS = 4_000_000
# The same for a whole batch (forward demo, profiler): ~1 GB in float32.
MAX_BATCH_ACTIVATIONS = 256_000_000


class SpecError(LabError):
    """A model spec that cannot be built; the message names the layer and the fix (codes ``spec.*``)."""


# --------------------------------------------------------------------------- argument types
@dataclass(frozen=True)
class Between:
    """An argument's range (every element of a list argument): the validator, and what the
    Builder's widgets and the error message show."""

    lo: float
    hi: float

    def __call__(self, value: Any) -> Any:
        for v in value if isinstance(value, tuple) else (value,):
            if not self.lo <= v <= self.hi:
                raise PydanticCustomError("arg_range", "must be between {lo} and {hi}",
                                          {"lo": self.lo, "hi": self.hi, "value": v})
        return value


def _int_or_list(value: Any) -> str:
    return "list" if isinstance(value, (list, tuple)) else "int"


_Int = Annotated[int, Strict()]
# An int, or a list of 1 to 3 ints (kernel sizes, strides, paddings): PyTorch takes both.
_Ints = Annotated[Annotated[_Int, Tag("int")]
                  | Annotated[tuple[_Int, ...], Field(min_length=1, max_length=3), Tag("list")],
                  Discriminator(_int_or_list)]
Size = Annotated[int, Strict(), AfterValidator(Between(1, MAX_DIM))]
Kernel = Annotated[_Ints, AfterValidator(Between(1, 64))]
Padding = Annotated[_Ints, AfterValidator(Between(0, 64))]
PoolPadding = Annotated[_Ints, AfterValidator(Between(0, 32))]
OutputSize = Annotated[_Ints, AfterValidator(Between(1, 1024))]
NormShape = Annotated[_Ints, AfterValidator(Between(1, MAX_DIM))]
Fraction = Annotated[float, Strict(), Field(allow_inf_nan=False), AfterValidator(Between(0.0, 1.0))]
Dim = Annotated[int, Strict(), AfterValidator(Between(-8, 8))]
Stacked = Annotated[int, Strict(), AfterValidator(Between(1, 16))]
Flag = Annotated[bool, Strict()]


def _identifier(value: str) -> str:
    if not (value.isidentifier() and not value.startswith("_") and len(value) <= 40):
        raise PydanticCustomError("identifier", "must be a Python identifier not starting with '_'")
    # Python reads identifiers NFKC-normalized: `self.ﬁ` is `self.fi`, so two layers named "ﬁ" and
    # "fi" would be one attribute in the generated code. A name must be written as Python reads it.
    normalized = unicodedata.normalize("NFKC", value)
    if normalized != value:
        raise PydanticCustomError("identifier_nfkc", "Python reads this name as {normalized}",
                                  {"normalized": normalized})
    if keyword.iskeyword(value):
        raise PydanticCustomError("identifier_reserved", "a Python keyword cannot be a name")
    return value


# Names the generated code itself uses (a model class named `torch` would hide the module).
CODE_NAMES = frozenset({"torch", "nn", "OrderedDict", "ResBlock", "LSTM", "GRU"})
# Attributes an `nn.Sequential` already has (`forward`, `training`, `append`...): a child of that
# name cannot be registered (PyTorch raises "attribute 'forward' already exists").
MODULE_ATTRIBUTES = frozenset(dir(nn.Sequential()))


def _model_name(value: str) -> str:
    if value in CODE_NAMES:
        raise PydanticCustomError("identifier_reserved", "the generated code uses this name")
    return value


def _layer_name(value: str) -> str:
    if value in MODULE_ATTRIBUTES:
        raise PydanticCustomError("identifier_reserved", "nn.Module already has an attribute of this name")
    return value


Name = Annotated[str, Strict(), AfterValidator(_identifier), AfterValidator(_model_name)]
LayerName = Annotated[str, Strict(), AfterValidator(_identifier), AfterValidator(_layer_name)]


def _input_shape(value: Any, handler: ValidatorFunctionWrapHandler) -> tuple[int, ...]:
    try:
        shape: tuple[int, ...] = handler(value)
    except ValidationError:
        shape = ()
    if not 1 <= len(shape) <= MAX_INPUT_DIMS or not all(1 <= s <= MAX_INPUT_SIZE for s in shape):
        raise PydanticCustomError("input_shape", "must be 1 to 4 sizes between 1 and 4096")
    return shape


# The one rule for a model's input shape (the Builder's text field, the profiler and export use it too).
InputShape = Annotated[tuple[_Int, ...], WrapValidator(_input_shape)]
_INPUT_SHAPE: TypeAdapter[tuple[int, ...]] = TypeAdapter(InputShape)


def check_input_shape(value: Any) -> tuple[int, ...]:
    """A model's input shape without the batch dimension: 1 to 3 sizes in 1..4096, else ``SpecError``."""
    try:
        return _INPUT_SHAPE.validate_python(value)
    except ValidationError:
        raise _shape_error(value) from None


def _shape_error(value: Any) -> SpecError:
    return SpecError("spec.input_shape", dims=MAX_INPUT_DIMS, size=MAX_INPUT_SIZE, got=_got(value))


# --------------------------------------------------------------------------- arguments, one model per layer type
class Args(BaseModel):
    """A layer's arguments. Only those the spec gives are kept and written back; the others
    take PyTorch's defaults (shown as the fields' defaults). A null argument counts as not given."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_not_given(cls, data: Any) -> Any:
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data

    @model_serializer(mode="wrap")
    def _given_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if k in self.model_fields_set}

    def given(self) -> dict[str, Any]:
        """The given arguments as Python values (tuples for lists): the module's keyword arguments."""
        return {name: getattr(self, name) for name in type(self).model_fields if name in self.model_fields_set}


class NoArgs(Args):
    pass


class LinearArgs(Args):
    in_features: Size
    out_features: Size
    bias: Flag = True


class ConvArgs(Args):
    in_channels: Size
    out_channels: Size
    kernel_size: Kernel
    stride: Kernel = 1
    padding: Padding = 0
    bias: Flag = True


class PoolArgs(Args):
    kernel_size: Kernel
    stride: Kernel | None = None  # PyTorch's default: the kernel size
    padding: PoolPadding = 0


class AdaptivePoolArgs(Args):
    output_size: OutputSize


class BatchNormArgs(Args):
    num_features: Size


class LayerNormArgs(Args):
    normalized_shape: NormShape


class DropoutArgs(Args):
    p: Fraction = 0.5


class LeakyReLUArgs(Args):
    negative_slope: Fraction = 0.01


class SoftmaxArgs(Args):
    dim: Dim = -1


class FlattenArgs(Args):
    start_dim: Dim = 1
    end_dim: Dim = -1


class RecurrentArgs(Args):
    input_size: Size
    hidden_size: Size
    num_layers: Stacked = 1
    dropout: Fraction = 0.0
    bidirectional: Flag = False
    # Which output feeds the next layer: the last step, the whole sequence, or the final hidden state.
    output: Literal["last", "sequence", "hidden"] = "last"


class ResBlockArgs(Args):
    channels: Size
    bias: Flag = True  # the tutorial's convolutions have biases (nn.Conv2d's default)
    batchnorm: Flag = True


# --------------------------------------------------------------------------- layers
class Layer(BaseModel):
    """One layer; its ``type`` picks the class below and so its arguments model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    args: Args
    name: LayerName | None = None
    # A call in forward (`x = torch.relu(x)`) rather than a registered layer; activations and Flatten only.
    functional: Flag = False

    @model_validator(mode="before")
    @classmethod
    def _missing_args_are_empty(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("args"):
            return {**data, "args": {}}
        return data

    @model_serializer(mode="wrap")
    def _json(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        if data.get("name") is None:
            data.pop("name", None)
        if not data.get("functional"):
            data.pop("functional", None)
        return data

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class SequentialLayer(Layer):
    """A block of layers (``nn.Sequential``); one subclass per nesting depth types what it may hold."""

    type: Literal["Sequential"]
    args: NoArgs
    layers: tuple[Layer, ...]


# Layer type -> its arguments model, in the order the Builder lists them (a data table).
LAYER_ARGS: dict[str, type[Args]] = {
    "Linear": LinearArgs, "Conv1d": ConvArgs, "Conv2d": ConvArgs, "Conv3d": ConvArgs, "MaxPool2d": PoolArgs,
    "AvgPool2d": PoolArgs, "AdaptiveAvgPool2d": AdaptivePoolArgs, "BatchNorm1d": BatchNormArgs,
    "BatchNorm2d": BatchNormArgs, "LayerNorm": LayerNormArgs, "Dropout": DropoutArgs, "ReLU": NoArgs,
    "LeakyReLU": LeakyReLUArgs, "Sigmoid": NoArgs, "Tanh": NoArgs, "Softmax": SoftmaxArgs, "Flatten": FlattenArgs,
    "LSTM": RecurrentArgs, "GRU": RecurrentArgs, "ResBlock": ResBlockArgs,
}
ARGS: dict[str, type[Args]] = {**LAYER_ARGS, "Sequential": NoArgs}
LAYER_TYPES = tuple(ARGS)
# Layers that may be a function call in forward instead of a module (``"functional": true``).
FUNCTIONAL_TYPES = ("ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "Flatten")


def _model_class(name: str, base: type[Layer], **fields: Any) -> type[Layer]:
    cls: type[Layer] = create_model(name, __base__=base, __module__=__name__, **fields)
    globals()[name] = cls  # importable by name, so a spec pickles (session state, processes)
    return cls


def _too_deep(value: Any) -> Any:
    raise PydanticCustomError("too_deep", "Sequential blocks nest too deep")


# One layer class per type (``LinearLayer``...), tagged by ``type``.
LEAF_LAYERS = tuple(_model_class(f"{kind}Layer", Layer, type=(Literal[kind], ...), args=(args, ...))
                    for kind, args in LAYER_ARGS.items())
# Layers at depth d may be Sequential blocks holding layers of depth d + 1; a block at
# MAX_DEPTH holds only refusals ("Sequential blocks nest at most 4 deep").
_inner: Any = Annotated[Any, BeforeValidator(_too_deep)]
for _depth in range(MAX_DEPTH, -1, -1):
    _block = _model_class(f"Sequential{_depth}", SequentialLayer,
                          layers=(Annotated[tuple[_inner, ...], Field(min_length=1)], ...))
    _inner = Annotated[Union[(*LEAF_LAYERS, _block)], Field(discriminator="type")]
if TYPE_CHECKING:
    TopLayer = Layer
else:
    TopLayer = _inner


@dataclass(frozen=True)
class ArgInfo:
    """What the Builder's widgets and the code generator need to know about one argument."""

    kind: str  # "int", "float", "bool", "ints" (an int or a list of 1 to 3 ints), "choice"
    default: Any  # None when required (or PyTorch's default depends on another argument)
    required: bool
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()


def _annotations(tp: Any) -> list[Any]:
    """Every type and metadata object inside an annotation (through Annotated, Union, Optional)."""
    found = [tp]
    for inner in get_args(tp):
        found += _annotations(inner)
    return found


def _arg_info(field: Any) -> ArgInfo:
    parts = _annotations(field.annotation) + list(field.metadata)
    between = next((m.func for m in parts if isinstance(getattr(m, "func", None), Between)), None)
    literal = next((p for p in parts if get_origin(p) is Literal), None)
    if literal is not None:
        kind = "choice"
    elif field.annotation is bool:
        kind = "bool"
    elif field.annotation is float:
        kind = "float"
    elif field.annotation is int:
        kind = "int"
    else:
        kind = "ints"
    required = field.is_required()
    return ArgInfo(kind, None if required else field.default, required,
                   between.lo if between else None, between.hi if between else None,
                   tuple(get_args(literal)) if literal is not None else ())


ARG_INFO: dict[str, dict[str, ArgInfo]] = {
    kind: {name: _arg_info(field) for name, field in model.model_fields.items()} for kind, model in ARGS.items()}


def arg_info(kind: str) -> dict[str, ArgInfo]:
    """The arguments of a layer type (name -> ArgInfo), in PyTorch's order."""
    return ARG_INFO[kind]


def _check_block(layers: tuple[Layer, ...], prefix: str, top: bool) -> None:
    """Names unique within a block (a repeated name would replace a child); functional layers
    only at the top level (an ``nn.Sequential`` holds modules, not calls) and only of the types
    that have a function (``torch.relu``...), and without a name (a call has no attribute)."""
    names = [x.name for x in layers if x.name is not None]
    if len(names) != len(set(names)):
        raise SpecError("spec.names_unique")
    for i, layer in enumerate(layers):
        path = f"{prefix}{i}"
        if layer.functional:
            where = {"layer": path, "kind": Code(layer.type)}
            if layer.type not in FUNCTIONAL_TYPES:
                raise SpecError("spec.functional_type", **where, types=Code(", ".join(FUNCTIONAL_TYPES)))
            if not top:
                raise SpecError("spec.functional_nested", **where)
            if layer.name is not None:
                raise SpecError("spec.functional_name", **where, name=Code(layer.name))
        if isinstance(layer, SequentialLayer):
            _check_block(layer.layers, f"{path}.", top=False)


def count_layers(layers: tuple[Layer, ...]) -> int:
    return sum(1 + (count_layers(x.layers) if isinstance(x, SequentialLayer) else 0) for x in layers)


# --------------------------------------------------------------------------- the spec
class ModelSpec(BaseModel):
    """A validated model spec: ``name``, ``input_shape`` (without the batch dimension), ``layers``.

    Made by ``parse``/``from_json`` (errors as ``SpecError``). Frozen: an edit makes a new spec
    (``edit``), validated again as a whole.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name = "Model"
    input_shape: InputShape
    layers: tuple[TopLayer, ...]

    @model_validator(mode="after")
    def _whole_spec(self) -> ModelSpec:
        if count_layers(self.layers) > MAX_LAYERS:
            raise SpecError("spec.too_many_layers", n=MAX_LAYERS)
        _check_block(self.layers, "", top=True)
        return self

    @classmethod
    def parse(cls, data: Any) -> ModelSpec:
        """The typed spec of JSON-like data (a ``ModelSpec`` passes through), or one ``SpecError``."""
        if isinstance(data, ModelSpec):
            return data
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise spec_error(exc) from None

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        data = loads_user_json(text, MAX_JSON_CHARS, "json.spec", SpecError)  # coded json.* errors
        return cls.parse(data)

    def to_dict(self) -> dict[str, Any]:
        """The spec's JSON as data: lists for shapes, only the arguments given, ``name`` when set."""
        return self.model_dump(mode="json")

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def edit(self, **changes: Any) -> ModelSpec:
        """A new spec with some fields replaced (layers as typed layers or as data), validated as a whole."""
        return ModelSpec.parse({"name": self.name, "input_shape": self.input_shape, "layers": self.layers,
                                **changes})

    def head(self, n: int) -> ModelSpec:
        """The spec of the first ``n`` layers (a prefix of a valid spec is valid: no new check)."""
        return self.model_copy(update={"layers": self.layers[:n]})


# --------------------------------------------------------------------------- pydantic's errors in the lab's words
def _got(value: Any) -> Code:
    text = repr(value)
    return Code(text if len(text) <= 120 else text[:119] + "…")


def _path_of(loc: tuple) -> tuple[str, str | None, tuple]:
    """('layers', 1, 'Sequential', 'layers', 2, 'Linear', 'args', 'x') -> ('1.2', 'Linear', ('args', 'x'))."""
    path: list[str] = []
    kind: str | None = None
    i = 0
    while i + 1 < len(loc) and loc[i] == "layers" and isinstance(loc[i + 1], int):
        path.append(str(loc[i + 1]))
        kind, i = None, i + 2
        if i < len(loc) and loc[i] in ARGS:
            kind, i = loc[i], i + 1
    return ".".join(path), kind, tuple(loc[i:])


def _first(errors: list[Any]) -> Any:
    """The error the lab reports: the first, unless an object around it (or it) has unknown keys."""
    first = errors[0]
    unknown = [e for e in errors if e["type"] == "extra_forbidden" and e["loc"][-1] != "layers"
               and first["loc"][:len(e["loc"]) - 1] == e["loc"][:-1]]
    return min(unknown, key=lambda e: len(e["loc"])) if unknown else first


def _unknown_keys(errors: list[Any], parent: tuple) -> Code:
    return Code(", ".join(sorted(str(e["loc"][-1]) for e in errors
                                 if e["type"] == "extra_forbidden" and e["loc"][:-1] == parent)))


def spec_error(exc: ValidationError) -> SpecError:
    """One ``SpecError`` in the lab's words for pydantic's errors about a spec."""
    errors = exc.errors(include_url=False)
    err = _first(errors)
    kind_of_error, loc, value = err["type"], tuple(err["loc"]), err.get("input")
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, SpecError):
        return cause
    path, kind, rest = _path_of(loc)
    if not path:  # the spec itself
        if kind_of_error == "extra_forbidden":
            return SpecError("spec.unknown_keys", keys=_unknown_keys(errors, ()))
        if not loc:
            return SpecError("spec.not_object")
        if loc == ("name",):
            if kind_of_error == "identifier_nfkc":
                return SpecError("spec.name_nfkc", got=_got(value), normalized=_got(err["ctx"]["normalized"]))
            if kind_of_error == "identifier_reserved":
                return SpecError("spec.name_reserved", got=_got(value), names=Code(", ".join(sorted(CODE_NAMES))))
            return SpecError("spec.bad_name", got=_got(value))
        if loc == ("input_shape",):
            return _shape_error(value if kind_of_error != "missing" else None)
        if loc == ("layers",):
            return SpecError("spec.layers_not_list")
        return SpecError("spec.invalid", where=Code(".".join(map(str, loc))), reason=Code(err["msg"]))
    if kind_of_error == "too_deep":
        return SpecError("spec.too_deep", layer=path, depth=MAX_DEPTH)
    if kind is None:
        if kind_of_error in ("union_tag_invalid", "union_tag_not_found"):
            return SpecError("spec.unknown_layer", layer=path, kind=_got(value.get("type")),
                             types=Code(", ".join(LAYER_TYPES)))
        return SpecError("spec.layer_not_object", layer=path, example=Code('{"type": "Linear", "args": {...}}'))
    where = {"layer": path, "kind": Code(kind)}
    if kind_of_error == "extra_forbidden" and rest == ("layers",):
        return SpecError("spec.only_sequential", **where)
    if kind_of_error == "extra_forbidden" and len(rest) == 1:
        return SpecError("spec.layer_unknown_keys", layer=path, keys=_unknown_keys(errors, loc[:-1]))
    if rest[:1] == ("name",):
        if kind_of_error == "identifier_nfkc":
            return SpecError("spec.layer_name_nfkc", **where, got=_got(value),
                             normalized=_got(err["ctx"]["normalized"]))
        if kind_of_error == "identifier_reserved":
            return SpecError("spec.layer_name_reserved", **where, got=_got(value))
        return SpecError("spec.bad_layer_name", **where, got=_got(value))
    if rest[:1] == ("layers",):
        return SpecError("spec.sequential_empty", **where)
    if rest == ("args",):
        return SpecError("spec.args_not_object", **where)
    if rest[:1] != ("args",):
        return SpecError("spec.invalid", where=Code(".".join(map(str, loc))), reason=Code(err["msg"]))
    arg = str(rest[1])
    if kind_of_error == "extra_forbidden":
        allowed = ", ".join(ARG_INFO[kind])
        names = _unknown_keys(errors, loc[:-1])
        if not allowed:
            return SpecError("spec.unknown_args_none", **where, names=names)
        return SpecError("spec.unknown_args", **where, names=names, allowed=Code(allowed))
    where["arg"] = Code(arg)
    if kind_of_error == "missing":
        return SpecError("spec.arg_required", **where)
    if kind_of_error == "arg_range":
        ctx = err["ctx"]  # the value as given (an element of a list)
        given = ctx["value"] if isinstance(value, (list, tuple)) else value
        return SpecError("spec.arg_range", **where, lo=ctx["lo"], hi=ctx["hi"], value=given)
    if kind_of_error in ("too_short", "too_long"):
        return SpecError("spec.arg_ints", **where, got=_got(value))
    if kind_of_error in ("float_type", "finite_number", "float_parsing"):
        return SpecError("spec.arg_finite", **where, got=_got(value))
    if kind_of_error == "bool_type":
        return SpecError("spec.arg_bool", **where, got=_got(value))
    if kind_of_error == "literal_error":
        return SpecError("spec.arg_choice", **where, choices=Code(", ".join(ARG_INFO[kind][arg].choices)),
                         got=_got(value))
    return SpecError("spec.arg_int", **where, got=_got(value))

