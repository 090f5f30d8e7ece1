"""stylenet: feed-forward neural style transfer (Johnson, Alahi & Fei-Fei 2016)."""

from stylenet.losses import PerceptualLoss, VGG16Features
from stylenet.models import TransformerNet

__version__ = "0.1.0"

__all__ = ["PerceptualLoss", "TransformerNet", "VGG16Features", "__version__"]
