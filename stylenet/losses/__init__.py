"""Perceptual loss: frozen VGG-16 (or VGG-19) features, Gram matrices, total variation, and the
stability terms of the network (noise, motion: `motion` makes the known camera moves).

One module per term (`terms`: ContentLoss, StyleLoss, TotalVariation, PixelLoss, NoiseStability,
MotionStability; `TERM_NAMES`), summed by `PerceptualLoss` over one VGG pass. The VGG names
(and so torchvision) are imported on first use, so that ``stylenet-train`` can check its
config's loss weights (`TERM_NAMES`) before paying for torchvision.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from stylenet.losses.functional import (
    content_loss,
    gram_matrix,
    pixel_loss,
    style_loss,
    total_variation,
)
from stylenet.losses.terms import (
    TERM_NAMES,
    ContentLoss,
    LossTerm,
    MotionStability,
    NeedsTransform,
    NoiseStability,
    PixelLoss,
    StyleLoss,
    TermInputs,
    TotalVariation,
)

if TYPE_CHECKING:
    from stylenet.losses.perceptual import PerceptualLoss
    from stylenet.losses.vgg import VGG16_LAYERS, VGG19_LAYERS, VGG16Features, VGGFeatures
    from stylenet.weights.store import InputNormalization, WeightsUnavailableError

_LAZY = {
    "PerceptualLoss": "stylenet.losses.perceptual",
    "VGG16_LAYERS": "stylenet.losses.vgg",
    "VGG19_LAYERS": "stylenet.losses.vgg",
    "VGG16Features": "stylenet.losses.vgg",
    "VGGFeatures": "stylenet.losses.vgg",
    "InputNormalization": "stylenet.weights.store",
    "WeightsUnavailableError": "stylenet.weights.store",
}

__all__ = [
    "TERM_NAMES",
    "VGG16_LAYERS",
    "VGG19_LAYERS",
    "ContentLoss",
    "InputNormalization",
    "LossTerm",
    "MotionStability",
    "NeedsTransform",
    "NoiseStability",
    "PerceptualLoss",
    "PixelLoss",
    "StyleLoss",
    "TermInputs",
    "TotalVariation",
    "VGG16Features",
    "VGGFeatures",
    "WeightsUnavailableError",
    "content_loss",
    "gram_matrix",
    "pixel_loss",
    "style_loss",
    "total_variation",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stylenet.losses' has no attribute {name!r}")
