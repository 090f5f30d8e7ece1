"""Low-resolution inputs (Johnson et al. 2016, Sec. 4.2): Gaussian blur σ = 1 then bicubic
downsampling, checked against an independent SciPy + NumPy computation on real photos; the
(lr, hr) pairs dataset and the sizes it refuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor
from torch.utils.data import Dataset

from stylenet.errors import ConfigError
from stylenet.io.images import find_images, load_image_tensor
from stylenet.models import SuperResolutionNet
from stylenet.models.degradation import degrade
from stylenet.training.data import PhotoFolder
from stylenet.training.degradation import SuperResolutionPairs


def _keys(t: np.ndarray, a: float = -0.75) -> np.ndarray:
    """Keys' cubic convolution kernel with PyTorch's / OpenCV's a = -0.75."""
    t = np.abs(t)
    near = (a + 2) * t**3 - (a + 3) * t**2 + 1
    far = a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def _bicubic_down(x: np.ndarray, s: int, axis: int) -> np.ndarray:
    """Plain bicubic sampling at the centres of the n/s output pixels along `axis` (no
    antialiasing), edge pixels repeated beyond the border."""
    n = x.shape[axis]
    rows = []
    for i in range(n // s):
        centre = s * (i + 0.5) - 0.5  # output pixel centre in input coordinates
        taps = np.floor(centre) + np.arange(-1, 3)
        weights = _keys(centre - taps)
        index = np.clip(taps, 0, n - 1).astype(int)
        rows.append(np.tensordot(np.take(x, index, axis=axis), weights, axes=([axis], [0])))
    return np.stack(rows, axis=axis)


def _reference(hr: np.ndarray, s: int) -> np.ndarray:
    """(3, H, W) float64 -> (3, H/s, W/s): scipy's Gaussian (σ = 1, mirror borders), then
    bicubic."""
    from scipy.ndimage import gaussian_filter

    blurred = gaussian_filter(hr, sigma=(0, 1.0, 1.0), mode="mirror", truncate=4.0)
    return np.clip(_bicubic_down(_bicubic_down(blurred, s, 1), s, 2), 0, 1)


def _photos(photo_dir: Path, s: int) -> list[Tensor]:
    """The package photos (long side 96), cropped to multiples of s: (3, H, W) each."""
    out = []
    for path in find_images(photo_dir):
        image = load_image_tensor(path)
        h, w = image.shape[-2:]
        out.append(image[:, : h // s * s, : w // s * s])
    assert len(out) >= 4
    return out


@pytest.mark.parametrize("scale", [4, 8])
def test_matches_an_independent_computation_on_real_photos(photo_dir: Path, scale: int) -> None:
    for hr in _photos(photo_dir, scale):
        want = _reference(hr.double().numpy(), scale)
        # float64: measured max |diff| 7e-16 (the same arithmetic, reordered)
        got64 = degrade(hr.double(), scale).numpy()
        np.testing.assert_allclose(got64, want, atol=1e-12, rtol=0)
        # float32, as in training: measured max |diff| 2.5e-7
        got32 = degrade(hr, scale)
        assert got32.dtype == torch.float32
        np.testing.assert_allclose(got32.double().numpy(), want, atol=1e-6, rtol=0)


def test_is_near_pillows_antialiased_bicubic_at_x4(photo_dir: Path) -> None:
    # Not the same filter (Pillow widens its a = -0.5 cubic by the factor, we blur with σ = 1 and
    # sample a = -0.75 at the pixel centres), but the same image: measured mean |diff| 0.007 to
    # 0.031 at ×4 on these 96-px photos (more on busy ones; at ×8, 0.02 to 0.07).
    from PIL import Image
    from scipy.ndimage import gaussian_filter

    for hr in _photos(photo_dir, 4):
        h, w = hr.shape[-2:]
        blurred = gaussian_filter(hr.numpy(), sigma=(0, 1.0, 1.0), mode="mirror", truncate=4.0)
        pil = np.stack(
            [
                np.asarray(
                    Image.fromarray(c, "F").resize((w // 4, h // 4), Image.Resampling.BICUBIC)
                )
                for c in blurred
            ]
        ).clip(0, 1)
        assert np.abs(degrade(hr, 4).numpy() - pil).mean() < 0.04


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_a_constant_image_stays_constant(scale: int) -> None:
    for value in (0.0, 0.37, 1.0):
        hr = torch.full((2, 3, 8 * scale, 5 * scale), value)
        lr = degrade(hr, scale)
        assert lr.shape == (2, 3, 8, 5)
        torch.testing.assert_close(lr, torch.full_like(lr, value), atol=1e-6, rtol=0)


def test_shapes_range_and_determinism() -> None:
    gen = torch.Generator().manual_seed(0)
    hr = torch.rand(2, 3, 48, 40, generator=gen)
    lr = degrade(hr, 8)
    assert lr.shape == (2, 3, 6, 5) and lr.dtype == hr.dtype
    assert lr.min() >= 0 and lr.max() <= 1  # bicubic overshoots on noise: clamped
    assert torch.equal(degrade(hr[0], 8), lr[0])  # (3, H, W) in, (3, h, w) out
    assert torch.equal(degrade(hr, 8), lr)
    assert torch.equal(hr, torch.rand(2, 3, 48, 40, generator=gen.manual_seed(0)))  # untouched


def test_refuses_what_it_cannot_take() -> None:
    with pytest.raises(ValueError, match="multiples of scale=4"):
        degrade(torch.rand(3, 30, 32), 4)
    with pytest.raises(ValueError, match="float"):
        degrade(torch.zeros(3, 32, 32, dtype=torch.uint8), 4)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        degrade(torch.rand(1, 32, 32), 4)
    with pytest.raises(ValueError, match="scale must be >= 1"):
        degrade(torch.rand(3, 32, 32), 0)


def test_pairs_from_photo_folder(photo_dir: Path) -> None:
    crops = PhotoFolder(find_images(photo_dir), image_size=40, train=False)
    pairs = SuperResolutionPairs(crops, scale=8)
    assert len(pairs) == len(crops)
    lr, hr = pairs[1]
    assert hr.shape == (3, 40, 40) and lr.shape == (3, 5, 5)
    assert torch.equal(hr, crops[1])
    assert torch.equal(lr, degrade(crops[1], 8))
    net = SuperResolutionNet(scale=8, channels=4, num_residual_blocks=0)
    assert net(lr[None]).shape == (1, *hr.shape)


def test_pairs_refuse_crops_the_scale_does_not_divide(photo_dir: Path) -> None:
    crops = PhotoFolder(find_images(photo_dir), image_size=36, train=False)
    with pytest.raises(ConfigError, match=r"data\.image_size=36 is not a multiple of scale=8"):
        SuperResolutionPairs(crops, scale=8)
    small = PhotoFolder(find_images(photo_dir), image_size=32, train=False)
    with pytest.raises(ConfigError, match=r"data\.image_size=32 with scale=8 .*at least 5"):
        SuperResolutionPairs(small, scale=8)


class _Crops(Dataset[Tensor]):
    """Crops of a size the dataset does not declare."""

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> Tensor:
        return torch.rand(3, 44, 44)


def test_pairs_check_each_crop_without_image_size() -> None:
    pairs = SuperResolutionPairs(_Crops(), scale=8)
    with pytest.raises(ConfigError, match=r"data\.image_size=44 is not a multiple of scale=8"):
        pairs[0]
