"""Perceptual loss: frozen VGG-16 (or VGG-19) features, Gram matrices, total variation."""

from stylenet.losses.functional import (
    content_loss,
    gram_matrix,
    pixel_loss,
    style_loss,
    total_variation,
)
from stylenet.losses.perceptual import PerceptualLoss
from stylenet.losses.vgg import VGG16_LAYERS, VGG19_LAYERS, VGG16Features, VGGFeatures
from stylenet.weights.store import InputNormalization, WeightsUnavailableError

__all__ = [
    "VGG16_LAYERS",
    "VGG19_LAYERS",
    "InputNormalization",
    "PerceptualLoss",
    "VGG16Features",
    "VGGFeatures",
    "WeightsUnavailableError",
    "content_loss",
    "gram_matrix",
    "pixel_loss",
    "style_loss",
    "total_variation",
]
