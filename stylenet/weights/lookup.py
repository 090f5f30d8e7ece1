"""Where the loss network's ImageNet VGG weights come from (`resolve_weights`).

Weights are resolved in this order (first hit wins):

1. an explicit path (config ``loss.vgg.weights``): a .pth/.safetensors state dict of
   torchvision's ``vgg16().features`` (``vgg19()``) or of the whole network;
2. the environment variable ``STYLENET_VGG16_WEIGHTS`` (``STYLENET_VGG19_WEIGHTS``);
3. stylenet's own cache (filled by ``stylenet-weights``, see `stylenet.weights.fetch`);
4. torchvision's IMAGENET1K_V1 weights (torch hub cache, else download).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from stylenet.weights.store import (
    RANDOM_WEIGHTS,
    TORCHVISION,
    WEIGHTS_ENVS,
    InputNormalization,
    WeightsFileError,
    cached_weights_path,
    file_convention,
    load_features_state_dict,
)
from stylenet.weights.torchvision_hub import torchvision_features


@dataclass(frozen=True)
class ResolvedWeights:
    """Where `resolve_weights` found the weights.

    Attributes:
        state_dict: The `features` tensors; None for ``"random"``.
        source: Where they came from, in words (for logs).
        convention: The input convention they describe; None where only the caller can say
            (random init).
    """

    state_dict: dict[str, torch.Tensor] | None
    source: str
    convention: InputNormalization | None


def resolve_weights(weights: str | os.PathLike[str] | None, arch: str = "vgg16") -> ResolvedWeights:
    """Find the VGG `features` weights following the module docstring's order.

    Raises:
        WeightsFileError: A file given (argument or environment variable) or cached is missing,
            unreadable, or not `arch` features weights; the message names the file and where
            it was named.
        ConfigError: The file does not say which input convention its weights expect.
        WeightsUnavailableError: Nothing found and torchvision's download failed.
    """
    if weights is not None and str(weights) == RANDOM_WEIGHTS:
        return ResolvedWeights(None, "random init", None)
    if weights is not None:
        return _from_file(weights, arch, f"loss.vgg.weights={weights}")
    env_name = WEIGHTS_ENVS[arch]
    if env := os.environ.get(env_name):
        try:
            return _from_file(env, arch, f"{env_name}={env}")
        except WeightsFileError as err:  # the variable, not the path, is what the user set
            raise WeightsFileError(
                err.path, f"{err.reason}; the path comes from {env_name}"
            ) from err
    cached = cached_weights_path(arch)
    if cached.exists():
        try:
            return _from_file(cached, arch, f"stylenet cache {cached}")
        except WeightsFileError as err:
            raise WeightsFileError(
                err.path,
                f"{err.reason}; it is stylenet's cache, which `stylenet-weights --arch {arch} "
                "--force` fills again",
            ) from err
    return ResolvedWeights(torchvision_features(arch), "torchvision IMAGENET1K_V1", TORCHVISION)


def _from_file(path: str | os.PathLike[str], arch: str, source: str) -> ResolvedWeights:
    state_dict = load_features_state_dict(path, arch)
    return ResolvedWeights(state_dict, source, file_convention(path, arch))
