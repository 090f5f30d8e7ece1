"""stylenet: feed-forward neural style transfer (Johnson, Alahi & Fei-Fei 2016)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stylenet.losses import PerceptualLoss, VGG16Features, VGGFeatures
from stylenet.models import TransformerNet

if TYPE_CHECKING:
    from stylenet.api import Stylizer

__version__ = "0.1.0"

__all__ = [
    "PerceptualLoss",
    "Stylizer",
    "TransformerNet",
    "VGG16Features",
    "VGGFeatures",
    "__version__",
    "load",
]


def load(path, **kwargs) -> Stylizer:
    """Load a trained model (model.pt, .ckpt, TorchScript, ONNX) as a callable `Stylizer`.

    See `stylenet.api.load` for the options. Imported lazily: ONNX Runtime and friends are only
    loaded when inference is wanted.
    """
    from stylenet.api import load as _load

    return _load(path, **kwargs)


def __getattr__(name: str):
    if name == "Stylizer":
        from stylenet.api import Stylizer

        return Stylizer
    raise AttributeError(f"module 'stylenet' has no attribute {name!r}")
