"""stylenet: feed-forward neural style transfer (Johnson, Alahi & Fei-Fei 2016).

The paper is in `stylenet.models` (the transform network) and `stylenet.losses` (the perceptual
loss); `stylenet.load` runs a trained model. The README's code map shows the other layers.

The names below are imported on first use, so that ``import stylenet.cli.train`` can check its
inputs before paying for torchvision and Lightning.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stylenet.inference.api import Stylizer, load
    from stylenet.losses import PerceptualLoss, VGG16Features, VGGFeatures
    from stylenet.models import TransformerNet

__version__ = "0.1.0"

_LAZY = {
    "PerceptualLoss": "stylenet.losses",
    "Stylizer": "stylenet.inference.api",
    "TransformerNet": "stylenet.models",
    "VGG16Features": "stylenet.losses",
    "VGGFeatures": "stylenet.losses",
    "load": "stylenet.inference.api",
}

__all__ = [
    "PerceptualLoss",
    "Stylizer",
    "TransformerNet",
    "VGG16Features",
    "VGGFeatures",
    "__version__",
    "load",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stylenet' has no attribute {name!r}")
