"""Looking inside a model: attributions (Captum), every layer's activations, one convolution step's
dot product, and the penultimate features' 2-D PCA map over training.

- ``attribute(model, x, method, layer=None)``: an attribution map (H, W) in [0, 1] for one input by
  Captum's Saliency, SmoothGrad (NoiseTunnel over Saliency), Integrated Gradients or Grad-CAM on a
  chosen Conv2d layer (upsampled to the input). Gradients are taken with respect to the input (or
  the layer's output) only: a shared model's ``.grad`` stays untouched.
- ``activations(model, x)``: every layer's output for one input (the overview).
- ``conv_step(model, x, layer, channel, row, col)``: the numbers of one output position of a Conv2d:
  the input patch, the kernel, the bias, their dot product, and the values the next element-wise
  layers (batch norm, activation) make of it.
- ``penultimate(model, x)``, ``pca_frame(features)``, ``align_frames``: the features the last
  Linear layer reads, and their 2-D PCA map (kept per epoch by the worker: core.runs.trained).

Hooks are registered around one forward pass and removed after it; a lock keeps two sessions that
share one cached model from seeing each other's hooks.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.errors import Code, LabError, first_line

METHODS = ("saliency", "smoothgrad", "integrated_gradients", "gradcam")
SMOOTHGRAD_SAMPLES = 16
SMOOTHGRAD_STDEV = 0.3  # of the normalized input (MNIST's pixels span about 2.8)
IG_STEPS = 32
MAX_OVERVIEW_CHANNELS = 32
# Layers that act on each value alone: the stepper follows a conv output through them.
ELEMENTWISE = (nn.BatchNorm2d, nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh,
               nn.Dropout, nn.Dropout2d, nn.Identity, nn.Softplus, nn.Hardswish, nn.Mish, nn.PReLU, nn.ReLU6)

_HOOKS = threading.Lock()


class ExplainError(LabError):
    """What the explainer cannot do for this model or input (codes ``explain.*``)."""


@contextmanager
def _hooked(model: nn.Module, modules: dict[str, nn.Module], store: dict[str, tuple[torch.Tensor, torch.Tensor]]
            ) -> Iterator[None]:
    """Forward hooks that keep (input, output) of each named module for one pass, under the lock."""
    with _HOOKS:
        handles = [module.register_forward_hook(
            lambda mod, inp, out, name=name: store.__setitem__(name, (inp[0].detach() if inp else out.detach(),
                                                                      out.detach())))
            for name, module in modules.items()]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()


# --------------------------------------------------------------------------- layers
def _is_leaf(module: nn.Module) -> bool:
    """A layer of the overview: a module without children, or a block the lab shows as one (ResBlock, LSTM)."""
    return not list(module.children()) or not isinstance(module, nn.Sequential)


def layers(model: nn.Module) -> dict[str, nn.Module]:
    """The model's layers in forward order (Sequential blocks opened, ResBlock/LSTM kept whole)."""
    found: dict[str, nn.Module] = {}

    def walk(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            full = f"{prefix}.{name}" if prefix else name
            if _is_leaf(child):
                found[full] = child
            else:
                walk(full, child)

    walk("", model)
    if not found:
        found[type(model).__name__] = model
    return found


def conv_layers(model: nn.Module) -> list[str]:
    """Names of the model's Conv2d layers (the ones Grad-CAM and the stepper use), in forward order."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]


@dataclass
class Activation:
    name: str
    kind: str  # the module's class name
    shape: tuple[int, ...]  # without the batch dimension
    values: np.ndarray  # the first sample's output (float32)


def activations(model: nn.Module, x: torch.Tensor) -> tuple[list[Activation], torch.Tensor]:
    """Every layer's output for ``x`` (batch 1), in forward order, and the model's output (logits)."""
    model.eval()
    modules = layers(model)
    store: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    with _hooked(model, modules, store), torch.inference_mode():
        out = model(x)
    found = []
    for name, module in modules.items():
        if name in store:
            value = store[name][1]
            if isinstance(value, torch.Tensor):
                found.append(Activation(name, type(module).__name__, tuple(value.shape[1:]),
                                        value[0].float().numpy().copy()))
    return found, out.detach().float().reshape(1, -1)


# --------------------------------------------------------------------------- one convolution step
@dataclass
class ConvStep:
    layer: str
    channel: int
    row: int
    col: int
    out_h: int
    out_w: int
    patch: np.ndarray  # (in_channels per group, kh, kw): the input values the kernel covers (padding as 0)
    kernel: np.ndarray  # (in_channels per group, kh, kw)
    bias: float
    in_channels: tuple[int, int]  # the input channels [first, last) this output channel reads
    box: tuple[int, int, int, int]  # the patch in the unpadded input: top, left, bottom, right (may overhang)
    value: float  # sum(patch * kernel) + bias, summed exactly (math.fsum of float64 products)
    model_value: float  # what the model's own forward pass computed there (float32)
    after: list[tuple[str, str, float]]  # (layer, kind, value) of the element-wise layers that follow
    input_map: np.ndarray  # the first input channel read, unpadded (H, W)
    output_map: np.ndarray  # this output channel (out_h, out_w)
    channel_peaks: np.ndarray  # every output channel's largest value for this input (out_channels,)

    @property
    def products(self) -> np.ndarray:
        return self.patch.astype(np.float64) * self.kernel.astype(np.float64)


def conv_step(model: nn.Module, x: torch.Tensor, layer: str, channel: int, row: int, col: int) -> ConvStep:
    """The numbers of output position (row, col) of ``layer``'s output channel ``channel`` for input ``x``."""
    modules = layers(model)
    names = list(modules)
    conv = dict(model.named_modules()).get(layer)
    if not isinstance(conv, nn.Conv2d):
        raise ExplainError("explain.not_conv", layer=Code(layer))
    following: list[str] = []
    if layer in modules:  # the element-wise layers right after it (batch norm, activation)
        for name in names[names.index(layer) + 1:]:
            if not isinstance(modules[name], ELEMENTWISE):
                break
            following.append(name)
    store: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    watched = {layer: conv, **{n: modules[n] for n in following}}
    model.eval()
    with _hooked(model, watched, store), torch.inference_mode():
        model(x)
    if layer not in store:
        raise ExplainError("explain.layer_not_run", layer=Code(layer))
    inp, out = store[layer][0][0].float(), store[layer][1][0].float()
    out_c, out_h, out_w = out.shape
    if not (0 <= channel < out_c and 0 <= row < out_h and 0 <= col < out_w):
        raise ExplainError("explain.position", channel=channel, row=row, col=col, channels=out_c, h=out_h, w=out_w)
    kh, kw = conv.kernel_size
    sh, sw = conv.stride
    dh, dw = conv.dilation
    if isinstance(conv.padding, str):  # "same"/"valid": the padding PyTorch uses for them
        ph = (dh * (kh - 1)) // 2 if conv.padding == "same" else 0
        pw = (dw * (kw - 1)) // 2 if conv.padding == "same" else 0
    else:
        ph, pw = conv.padding
    per_group = conv.in_channels // conv.groups
    group = channel // (conv.out_channels // conv.groups)
    first = group * per_group
    mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
    padded = F.pad(inp[None, first:first + per_group], (pw, pw, ph, ph), mode=mode)[0]
    top, left = row * sh, col * sw
    patch = padded[:, top:top + dh * (kh - 1) + 1:dh, left:left + dw * (kw - 1) + 1:dw]
    kernel = conv.weight.detach()[channel].float()
    bias = float(conv.bias.detach()[channel]) if conv.bias is not None else 0.0
    products = patch.double() * kernel.double()  # float32 × float32 is exact in float64
    value = math.fsum(products.flatten().tolist()) + bias
    after = [(name, type(modules[name]).__name__, float(store[name][1][0, channel, row, col]))
             for name in following if name in store]
    return ConvStep(layer, channel, row, col, out_h, out_w, patch.numpy().copy(), kernel.numpy().copy(), bias,
                    (first, first + per_group), (top - ph, left - pw, top - ph + dh * (kh - 1) + 1,
                                                 left - pw + dw * (kw - 1) + 1),
                    value, float(out[channel, row, col]), after, inp[first].numpy().copy(), out[channel].numpy().copy(),
                    out.amax(dim=(1, 2)).numpy().copy())


# --------------------------------------------------------------------------- attributions (Captum)
def _scaled(attr: torch.Tensor) -> np.ndarray:
    """One input's attribution (C, H, W) as |value| per pixel (the largest over channels) in [0, 1]."""
    per_pixel = attr.detach().abs().float().amax(dim=0).numpy()
    top = float(per_pixel.max())
    return per_pixel / top if top > 0 else per_pixel


def attribute(model: nn.Module, x: torch.Tensor, method: str, target: int | None = None, layer: str | None = None,
              seed: int = 0) -> np.ndarray:
    """The attribution map (H, W) in [0, 1] of ``method`` (one of ``METHODS``) for the class ``target``
    (default: the predicted one) on one input ``x`` (1, C, H, W). Grad-CAM uses the Conv2d ``layer``
    (default: the last one) and is upsampled to the input; a model without a Conv2d gets ``ExplainError``."""
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, NoiseTunnel, Saliency

    if method not in METHODS:
        raise ExplainError("explain.unknown_method", method=Code(method), methods=Code(", ".join(METHODS)))
    model.eval()
    if x.dim() != 4 or x.shape[0] != 1:
        raise ExplainError("explain.image_input", shape=Code(str(list(x.shape))))

    def forward(inp: torch.Tensor) -> torch.Tensor:
        return model(inp).reshape(inp.shape[0], -1)

    with torch.no_grad():
        logits = forward(x)
    cls = int(logits.argmax()) if target is None else int(target)
    inp = x.detach().clone().requires_grad_(True)
    try:
        with _HOOKS, torch.enable_grad():
            if method == "saliency":
                attr = Saliency(forward).attribute(inp, target=cls, abs=True)
            elif method == "smoothgrad":
                generator = torch.random.fork_rng(devices=[])
                with generator:
                    torch.manual_seed(seed)  # the same picture on every rerun
                    attr = NoiseTunnel(Saliency(forward)).attribute(
                        inp, nt_type="smoothgrad", nt_samples=SMOOTHGRAD_SAMPLES, stdevs=SMOOTHGRAD_STDEV,
                        target=cls, abs=True)
            elif method == "integrated_gradients":
                baseline = torch.full_like(inp, float(x.min()))  # a blank image: the background value
                attr = IntegratedGradients(forward).attribute(inp, baselines=baseline, target=cls, n_steps=IG_STEPS,
                                                              internal_batch_size=IG_STEPS)
            else:
                convs = conv_layers(model)
                if not convs:
                    raise ExplainError("explain.no_conv")
                name = layer if layer in convs else convs[-1]
                module = dict(model.named_modules())[name]
                cam = LayerGradCam(forward, module).attribute(inp, target=cls, relu_attributions=True)
                attr = LayerAttribution.interpolate(cam, tuple(inp.shape[2:]), interpolate_mode="bilinear")
                attr = attr.clamp_min(0)
    except ExplainError:
        raise
    except RuntimeError as exc:  # e.g. an in-place activation after the chosen layer
        raise ExplainError("explain.failed", method=Code(method), reason=Code(first_line(exc))) from None
    return _scaled(attr[0])


# --------------------------------------------------------------------------- representation (PCA)
def penultimate(model: nn.Module, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """The features the model's last Linear layer reads (N, D), flattened; without a Linear layer,
    what its last layer reads."""
    feats, _ = penultimate_and_logits(model, x, batch)
    return feats


def penultimate_and_logits(model: nn.Module, x: torch.Tensor, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(features the last Linear layer reads (N, D), logits (N, classes)) for inputs ``x``, in batches."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    target = linears[-1] if linears else list(layers(model).values())[-1]
    feats, logits = [], []
    model.eval()
    for start in range(0, len(x), batch):
        store: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        with _hooked(model, {"last": target}, store), torch.inference_mode():
            out = model(x[start:start + batch])
        feats.append(store["last"][0].float().flatten(1))
        logits.append(out.float().reshape(out.shape[0], -1))
    return torch.cat(feats), torch.cat(logits)


@dataclass
class PcaFrame:
    coords: np.ndarray  # (N, 2) float32
    mean: np.ndarray  # (D,) float32
    components: np.ndarray  # (D, 2) float32: the first two principal directions
    explained: np.ndarray  # (2,) the share of the variance each explains


def pca_frame(features: torch.Tensor) -> PcaFrame:
    """The first two principal components of ``features`` (N, D): a randomized low-rank SVD of the
    centred data (``torch.pca_lowrank``: milliseconds where a full SVD of 500 × 1,152 takes a tenth of a
    second), with the share of the total variance each explains."""
    f = features.float()
    mean = f.mean(dim=0)
    centred = f - mean
    q = min(6, *centred.shape)
    torch_state = torch.random.get_rng_state()
    torch.manual_seed(0)  # the randomized SVD's sketch: the same map for the same features
    try:
        _, s, v = torch.pca_lowrank(centred, q=q, center=False, niter=4)
    finally:
        torch.random.set_rng_state(torch_state)
    components = torch.zeros(f.shape[1], 2)
    components[:, :min(2, v.shape[1])] = v[:, :2]
    coords = centred @ components
    total = float((centred.double() ** 2).sum()) or 1.0
    explained = np.array([float(s[i]) ** 2 / total if i < len(s) else 0.0 for i in range(2)], np.float32)
    return PcaFrame(coords.numpy(), mean.numpy(), components.numpy(), explained)


def align_signs(coords: np.ndarray, components: np.ndarray, previous: np.ndarray | None
                ) -> tuple[np.ndarray, np.ndarray]:
    """A principal direction's sign is arbitrary: flip each axis so the frame agrees with ``previous``
    (the same digits' coordinates one epoch earlier), so the map does not jump between frames."""
    if previous is None:
        return coords, components
    signs = np.where((coords * previous).sum(axis=0) < 0, -1.0, 1.0).astype(coords.dtype)
    return coords * signs, components * signs


def project(features: torch.Tensor, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Features (N, D) placed on a stored frame's map (N, 2)."""
    f = features.double().numpy()
    if f.shape[1] != mean.shape[0]:
        raise ExplainError("explain.map_features", got=f.shape[1], want=mean.shape[0])
    return ((f - mean.astype(np.float64)) @ components.astype(np.float64)).astype(np.float32)
