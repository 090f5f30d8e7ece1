"""Perceptual loss: frozen VGG-16 features, Gram matrices, total variation."""

from stylenet.losses.functional import (
    content_loss,
    gram_matrix,
    pixel_loss,
    style_loss,
    total_variation,
)
from stylenet.losses.perceptual import PerceptualLoss
from stylenet.losses.vgg import VGG16_LAYERS, VGG16Features

__all__ = [
    "VGG16_LAYERS",
    "PerceptualLoss",
    "VGG16Features",
    "content_loss",
    "gram_matrix",
    "pixel_loss",
    "style_loss",
    "total_variation",
]
