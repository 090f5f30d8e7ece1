"""How much of the photo survived: LPIPS and SSIM between a photo and an image made from it.

`LPIPS` is Zhang et al. 2018's learned perceptual distance ("The Unreasonable Effectiveness of
Deep Features as a Perceptual Metric"), VGG variant, v0.1: unit-normalized VGG-16 activations at
relu1_2 ... relu5_3, squared differences weighted per channel by the linear heads the authors fit
to human judgments, averaged over pixels and summed over layers. 0 is the photo itself; larger is
further from it. The backbone is our own `VGGFeatures` (ImageNet VGG-16, found offline like the
loss network's); only the heads (``lpips/weights/v0.1/vgg.pth``, 6 KB) come from the ``lpips``
package, which is never imported (importing it costs seconds and loads scipy and
torchvision.models), and nothing is downloaded.

`ssim` is Wang et al. 2004's structural similarity: 1 is the photo itself.

Super-resolution scores (`sr_psnr_ssim`) follow the SR papers' convention: PSNR and SSIM of the
BT.601 luma (`rgb_to_y`), with a border of `scale` pixels cropped on each side.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylenet.errors import ConfigError
from stylenet.losses.vgg import VGGFeatures
from stylenet.weights.store import TORCHVISION, WeightsUnavailableError

# LPIPS v0.1, VGG: the outputs of lpips.pretrained_networks.vgg16's five slices.
LPIPS_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
# relu5_3 comes after four 2×2 max-pools: a side under 16 px leaves it empty.
LPIPS_MIN_SIDE = 16
_LPIPS_HEADS = ("weights", "v0.1", "vgg.pth")  # inside the lpips package
_EPS = 1e-10  # lpips.normalize_tensor's

# Wang et al. 2004, Sec. III-C: 11×11 circular-symmetric Gaussian window, σ = 1.5, K1 = 0.01,
# K2 = 0.03 (scikit-image's structural_similarity with gaussian_weights=True uses the same).
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03

# ITU-R BT.601 luma with studio swing, as MATLAB's rgb2ycbcr computes it (and BasicSR's
# rgb2ycbcr / bgr2ycbcr, y_only=True): Y = 16 + 65.481 R + 128.553 G + 24.966 B for RGB in
# [0, 1], Y on the 0–255 scale, in [16, 235]. SR papers score this Y, unrounded.
Y_WEIGHTS = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0


def lpips_heads_path() -> Path:
    """Where the installed ``lpips`` package keeps its VGG v0.1 linear heads.

    Found from the package's import spec, which does not run the package: ``import lpips`` (as
    ``importlib.resources.files("lpips")`` would do) costs seconds and loads scipy.

    Raises:
        WeightsUnavailableError: lpips is not installed, or its file is missing.
    """
    spec = importlib.util.find_spec("lpips")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder).joinpath(*_LPIPS_HEADS)
        if path.is_file():
            return path
    raise WeightsUnavailableError(
        "LPIPS needs the linear heads shipped in the lpips package "
        f"({'/'.join(('lpips', *_LPIPS_HEADS))}): pip install 'lpips>=0.1.4'"
    )


class LPIPS(nn.Module):
    """LPIPS distance (VGG, v0.1) between images in [0, 1]; frozen, kept out of state dicts.

    lpips' own ScalingLayer maps [-1, 1] input with shift 2·mean − 1 and scale 2·std, which is
    torchvision's ImageNet normalization of [0, 1] input: `VGGFeatures` applies exactly that, so
    images go in as they are (tests check both this and the distance against lpips' own model).

    Args:
        weights: VGG-16 weight file, or None for the loss network's lookup
            (`stylenet.weights.store`); it must be torchvision's ImageNet VGG-16, the
            backbone the heads were fit on (``"random"`` is for unit tests only).
        heads: The lpips v0.1 VGG heads file (default: the installed lpips package's).

    Raises:
        ConfigError: The weights expect another input convention than torchvision's.
        WeightsUnavailableError: No VGG-16 weights, or no lpips heads.
    """

    def __init__(
        self,
        *,
        weights: str | os.PathLike[str] | None = None,
        heads: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        self.vgg = VGGFeatures(LPIPS_LAYERS, arch="vgg16", weights=weights)
        if self.vgg.input_normalization != TORCHVISION:
            raise ConfigError(
                f"LPIPS needs torchvision's ImageNet VGG-16; {self.vgg.weights_source} expects "
                f"{self.vgg.input_normalization.name} input"
            )
        path = Path(heads) if heads is not None else lpips_heads_path()
        # The file's tensors were saved on a GPU: map them to the CPU.
        state = torch.load(path, map_location="cpu", weights_only=True)
        for i, name in enumerate(LPIPS_LAYERS):
            key = f"lin{i}.model.1.weight"  # lpips.NetLinLayer: Dropout, then a 1×1 conv
            channels = self.vgg.features.get_submodule(name.replace("relu", "conv")).out_channels
            weight = state.get(key)
            if weight is None or tuple(weight.shape) != (1, channels, 1, 1):
                raise ConfigError(f"{path} is not lpips' VGG heads file (no {key} of 1×{channels})")
            # (1, C, 1, 1): one non-negative weight per channel of the squared difference
            self.register_buffer(f"head_{name}", weight.float(), persistent=False)
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> LPIPS:
        """Always stays in eval mode."""
        return super().train(False)

    def embed(self, images: Tensor) -> dict[str, Tensor]:
        """Unit-normalized features {layer: (B, C, H', W')} of (B, 3, H, W) images in [0, 1]:
        compute a photo's once to compare it with several images (`distance`).

        Raises:
            ConfigError: A side is under `LPIPS_MIN_SIDE` pixels.
        """
        h, w = images.shape[-2:]
        if min(h, w) < LPIPS_MIN_SIDE:
            raise ConfigError(
                f"LPIPS needs images at least {LPIPS_MIN_SIDE} px on each side "
                f"(VGG-16's relu5_3); got {h}×{w}"
            )
        feats = self.vgg(images.float())
        return {
            name: f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + _EPS) for name, f in feats.items()
        }

    def distance(self, a: dict[str, Tensor], b: dict[str, Tensor]) -> Tensor:
        """LPIPS (B,) between two `embed` results."""
        total = a[LPIPS_LAYERS[0]].new_zeros(a[LPIPS_LAYERS[0]].shape[0])
        for name in LPIPS_LAYERS:
            head = getattr(self, f"head_{name}")
            # (B, C, H', W') -> (B, H', W') -> (B,)
            total = total + ((a[name] - b[name]).pow(2) * head).sum(dim=1).mean(dim=(1, 2))
        return total

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """LPIPS (B,) between (B, 3, H, W) images in [0, 1] of the same size."""
        if a.shape != b.shape:
            raise ValueError(f"LPIPS compares images of one shape; got {a.shape} and {b.shape}")
        return self.distance(self.embed(a), self.embed(b))


def _gaussian(size: int, sigma: float, device: torch.device) -> Tensor:
    """(size,) normalized Gaussian taps, centred."""
    x = torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(a: Tensor, b: Tensor, *, data_range: float = 1.0) -> Tensor:
    """Mean SSIM (B,) of (B, 3, H, W) images (Wang et al. 2004), over channels and pixels.

    Local statistics come from an 11×11 Gaussian window (σ = 1.5) placed only where it fits
    inside the image, with population (not sample) variances, K1 = 0.01, K2 = 0.03: the same
    number as ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1.0, channel_axis=-1)`` (tests check it).

    An image under 11 px on a side gets the largest odd window that fits (the same Gaussian,
    truncated there and renormalized) instead of an error; scikit-image refuses such images.
    """
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(
            f"ssim compares (B, C, H, W) images of one shape; got {a.shape}, {b.shape}"
        )
    channels, h, w = a.shape[1:]
    size = min(SSIM_WINDOW, h, w)
    size -= 1 - size % 2  # odd, so the window has a centre pixel
    g = _gaussian(size, SSIM_SIGMA, a.device)
    a, b = a.float(), b.float()
    # x, y, x², y², xy filtered in one depthwise pass: (B, 5C, H, W) -> (B, 5C, H-s+1, W-s+1)
    stack = torch.cat([a, b, a * a, b * b, a * b], dim=1)
    groups = stack.shape[1]
    stack = F.conv2d(stack, g.view(1, 1, size, 1).expand(groups, 1, size, 1), groups=groups)
    stack = F.conv2d(stack, g.view(1, 1, 1, size).expand(groups, 1, 1, size), groups=groups)
    mu_a, mu_b, aa, bb, ab = stack.split(channels, dim=1)
    var_a, var_b, cov = aa - mu_a**2, bb - mu_b**2, ab - mu_a * mu_b
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    luminance = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
    structure = (2 * cov + c2) / (var_a + var_b + c2)  # contrast × structure (Eq. 13)
    return (luminance * structure).mean(dim=(1, 2, 3))


def rgb_to_y(images: Tensor) -> Tensor:
    """BT.601 luma (B, 1, H, W) on the 0–255 scale (in [16, 235]) of (B, 3, H, W) RGB in [0, 1].

    MATLAB's ``rgb2ycbcr`` convention (see `Y_WEIGHTS`), which SR papers and BasicSR score on;
    not JPEG's full-range Y (0.299 R + 0.587 G + 0.114 B). Computed in float64, not rounded.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"rgb_to_y takes (B, 3, H, W) RGB images, got {tuple(images.shape)}")
    weights = torch.tensor(Y_WEIGHTS, dtype=torch.float64, device=images.device)
    # (B, 3, H, W) · (3,) over channels -> (B, 1, H, W)
    y = torch.einsum("bchw,c->bhw", images.to(torch.float64), weights)
    return (y + Y_OFFSET).unsqueeze(1)


def psnr(a: Tensor, b: Tensor, *, data_range: float = 1.0) -> Tensor:
    """PSNR (B,) in dB of (B, C, H, W) images: 10 log10(data_range² / MSE), the MSE over each
    image's channels and pixels, in float64; +inf for identical images.

    Args:
        a: Images.
        b: Images of the same shape.
        data_range: Peak value (1.0 for [0, 1] images, 255 for `rgb_to_y`'s Y).
    """
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(
            f"psnr compares (B, C, H, W) images of one shape; got {tuple(a.shape)}, "
            f"{tuple(b.shape)}"
        )
    mse = (a.to(torch.float64) - b.to(torch.float64)).pow(2).mean(dim=(1, 2, 3))
    return 10 * torch.log10(data_range**2 / mse)  # mse == 0 -> +inf


class SRScores(NamedTuple):
    """Per-image super-resolution scores, each (B,)."""

    psnr: Tensor
    ssim: Tensor


def sr_psnr_ssim(output: Tensor, target: Tensor, *, scale: int) -> SRScores:
    """PSNR and SSIM of a super-resolved batch as SR papers report them.

    On the Y channel (`rgb_to_y`) with `scale` pixels cropped from each side, PSNR with a peak of
    255 and `ssim`'s Gaussian SSIM: the formulas of BasicSR's ``calculate_psnr`` /
    ``calculate_ssim(..., crop_border=scale, test_y_channel=True)``. Where BasicSR differs: it
    scores images read back as 8 bits, so its output is rounded to 1/255 first (round yourself to
    match: ``(x * 255).round() / 255``); its PyTorch PSNR adds 1e-8 to the MSE (here identical
    images score +inf, as its NumPy PSNR does); SSIM is computed in float32 here (float64 there).

    Args:
        output: (B, 3, H, W) network output in [0, 1].
        target: (B, 3, H, W) high-resolution images in [0, 1].
        scale: Upsampling factor: the border cropped on each side.

    Raises:
        ValueError: Shapes differ, or nothing is left after the crop.
    """
    if output.shape != target.shape or output.dim() != 4:
        raise ValueError(
            f"sr_psnr_ssim compares (B, 3, H, W) images of one shape; got "
            f"{tuple(output.shape)}, {tuple(target.shape)}"
        )
    h, w = output.shape[-2:]
    if scale < 0 or min(h, w) <= 2 * scale:
        raise ValueError(f"cropping {scale} px from each side of {h}×{w} images leaves nothing")
    crop = (slice(None), slice(None), slice(scale, h - scale), slice(scale, w - scale))
    y_out, y_target = rgb_to_y(output)[crop], rgb_to_y(target)[crop]
    # SSIM on Y / 255 with data_range 1: the same number as on Y with data_range 255 (the
    # constants scale with the range) and better conditioned in ssim's float32.
    return SRScores(
        psnr=psnr(y_out, y_target, data_range=255.0),
        ssim=ssim(y_out / 255.0, y_target / 255.0, data_range=1.0),
    )


__all__ = [
    "LPIPS",
    "LPIPS_LAYERS",
    "LPIPS_MIN_SIDE",
    "Y_OFFSET",
    "Y_WEIGHTS",
    "SRScores",
    "lpips_heads_path",
    "psnr",
    "rgb_to_y",
    "sr_psnr_ssim",
    "ssim",
]
