"""Image transformation networks: plain `nn.Module`s, no training or I/O code."""

from stylenet.models.padding import PadCrop, pad_to_multiple
from stylenet.models.transformer import TransformerConfig, TransformerNet

__all__ = ["PadCrop", "TransformerConfig", "TransformerNet", "pad_to_multiple"]
