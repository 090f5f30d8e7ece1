"""Image transformation networks."""

from stylenet.models.transformer import TransformerConfig, TransformerNet

__all__ = ["TransformerConfig", "TransformerNet"]
