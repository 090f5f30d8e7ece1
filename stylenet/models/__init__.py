"""Image transformation networks: plain `nn.Module`s, no training or I/O code."""

from stylenet.models.padding import PadCrop, StylePadCrop, pad_to_multiple
from stylenet.models.transformer import (
    ConditionalInstanceNorm2d,
    TransformerConfig,
    TransformerNet,
)

__all__ = [
    "ConditionalInstanceNorm2d",
    "PadCrop",
    "StylePadCrop",
    "TransformerConfig",
    "TransformerNet",
    "pad_to_multiple",
]
