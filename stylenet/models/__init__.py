"""Image transformation networks: plain `nn.Module`s, no training or I/O code."""

from stylenet.models.padding import PadCrop, StylePadCrop, pad_to_multiple
from stylenet.models.superres import SuperResolutionConfig, SuperResolutionNet
from stylenet.models.transformer import (
    ConditionalInstanceNorm2d,
    TransformerConfig,
    TransformerNet,
)

# Every image-to-image network stylenet trains and runs (a model card names one of them).
ImageNetwork = TransformerNet | SuperResolutionNet

__all__ = [
    "ConditionalInstanceNorm2d",
    "ImageNetwork",
    "PadCrop",
    "StylePadCrop",
    "SuperResolutionConfig",
    "SuperResolutionNet",
    "TransformerConfig",
    "TransformerNet",
    "pad_to_multiple",
]
