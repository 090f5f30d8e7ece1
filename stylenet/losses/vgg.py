"""Frozen ImageNet VGG feature extractors: the loss networks.

VGG-16 is the loss network of Johnson et al. 2016; VGG-19 is the one of Gatys et al. 2016 (for the
optimization reference, `stylenet.reference.optimize`). Layers are addressed by name (``relu2_2``),
never by index. The network is truncated after the deepest requested layer, frozen (no gradients,
always in eval mode) and kept out of every state dict: its weights come from a weight file (found
by `stylenet.weights.store`), not from a training checkpoint. The input normalization the
weights were trained with is applied inside, from buffers.

``weights="random"`` gives a randomly initialized network. It is for unit tests only and warns
loudly: a random VGG makes a meaningless style loss.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from stylenet.errors import ConfigError
from stylenet.weights import TORCHVISION, InputNormalization, arch_label, resolve_weights

log = logging.getLogger(__name__)

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
_CFGS = {"vgg16": _VGG16_CFG, "vgg19": _VGG19_CFG}


def _features(cfg: Sequence[int | str]) -> nn.Sequential:
    """torchvision's ``vgg*().features`` (same modules, indices and init), without building the
    120M-parameter classifier that torchvision's constructor allocates and initializes too."""
    layers: list[nn.Module] = []
    channels = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        assert isinstance(v, int)
        conv = nn.Conv2d(channels, v, kernel_size=3, padding=1)
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        assert conv.bias is not None
        nn.init.zeros_(conv.bias)
        layers += [conv, nn.ReLU(inplace=True)]
        channels = v
    return nn.Sequential(*layers)


class VGGFeatures(nn.Module):
    """Frozen VGG-16 or VGG-19 returning the activations of named layers.

    Input: (B, 3, H, W) RGB in [0, 1]; the weights' input normalization happens inside (buffers).

    Args:
        layers: Names of the layers to return (e.g. ``["relu2_2", "relu4_3"]``); the network is
            truncated after the deepest one.
        arch: ``"vgg16"`` (Johnson et al.) or ``"vgg19"`` (Gatys et al.).
        weights: Weight file path, ``"random"`` (tests only) or None for the default lookup
            (see `stylenet.weights.store`).
        input_convention: ``"torchvision"`` or ``"caffe"`` to override what the weights'
            description says; None reads it from there.
    """

    mean: Tensor  # (1, 3, 1, 1) buffers: the weights' input normalization in [0, 1] units
    std: Tensor

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
            raise ConfigError(f"unknown VGG architecture {arch!r}; expected one of {list(LAYERS)}")
        self.arch = arch
        label = arch_label(arch)
        all_layers = LAYERS[arch]
        self.layers = list(dict.fromkeys(layers))  # ordered, de-duplicated
        if not self.layers:
            raise ValueError(f"{type(self).__name__} needs at least one layer name")
        unknown = [n for n in self.layers if n not in all_layers]
        if unknown:
            raise ConfigError(
                f"unknown {label} layer name(s) {unknown}; valid names are {list(all_layers)}"
            )
        depth = max(all_layers.index(n) for n in self.layers) + 1

        resolved = resolve_weights(weights, arch)
        state_dict, self.weights_source = resolved.state_dict, resolved.source
        if input_convention is not None:
            self.input_normalization = InputNormalization.named(input_convention)
        else:
            self.input_normalization = resolved.convention or TORCHVISION
        features = _features(_CFGS[arch])
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

    def forward(self, images: Tensor, layers: Iterable[str] | None = None) -> dict[str, Tensor]:
        """Activations of the requested layers: {name: (B, C, H', W')}.

        Args:
            images: (B, 3, H, W) RGB in [0, 1].
            layers: A subset of ``self.layers`` to return; the pass stops after the deepest of
                them (the content target needs relu2_2 only, not the whole network). None: all.
        """
        wanted = set(self.layers if layers is None else layers)
        if not wanted <= set(self.layers):
            raise ValueError(
                f"layers {sorted(wanted - set(self.layers))} were not requested "
                f"when this network was built (it has {self.layers})"
            )
        if self._bgr:  # mean/std are in the network's channel order
            images = images.flip(1)
        x = (images - self.mean) / self.std
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


def _drop_own_keys(
    module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any
) -> None:
    for key in [k for k in state_dict if k.startswith(prefix)]:
        del state_dict[key]


def _fill_own_keys(module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    # Loading a checkpoint that (by design) lacks the VGG weights: keep the current ones.
    for name, param in module.named_parameters():
        state_dict.setdefault(prefix + name, param.detach())
