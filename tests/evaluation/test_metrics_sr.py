"""Super-resolution scores (metrics.py: rgb_to_y, psnr, sr_psnr_ssim): the numbers
scikit-image gives on the Y channel with the border cropped, on real photo pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from stylenet.evaluation.metrics import psnr, rgb_to_y, sr_psnr_ssim
from stylenet.io.images import find_images, load_image_tensor
from stylenet.models.degradation import degrade


def _y_skimage(images: Tensor) -> np.ndarray:
    """(B, 3, H, W) -> (B, H, W) Y on the 0–255 scale, by scikit-image (MATLAB's rgb2ycbcr)."""
    from skimage.color import rgb2ycbcr

    return np.stack([rgb2ycbcr(x.permute(1, 2, 0).double().numpy())[..., 0] for x in images])


@pytest.fixture(scope="module")
def sr_pairs(photo_dir: Path) -> list[tuple[int, Tensor, Tensor]]:
    """(scale, output, target) on the package photos: a bicubic ×s upsample of the paper's
    low-res input, and a noisy copy, each against the photo."""
    gen = torch.Generator().manual_seed(0)
    pairs = []
    for path in find_images(photo_dir):
        photo = load_image_tensor(path)
        for s in (4, 8):
            h, w = photo.shape[-2:]
            hr = photo[None, :, : h // s * s, : w // s * s]
            bicubic = F.interpolate(degrade(hr, s), scale_factor=s, mode="bicubic").clamp(0, 1)
            noisy = (hr + 0.05 * torch.randn(hr.shape, generator=gen)).clamp(0, 1)
            pairs += [(s, bicubic, hr), (s, noisy, hr)]
    assert len(pairs) >= 16
    return pairs


def test_y_is_matlabs_bt601_luma() -> None:
    rgb = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.2, 0.5, 0.9]])
    images = rgb.T.reshape(1, 3, 2, 2)
    y = rgb_to_y(images)
    assert y.shape == (1, 1, 2, 2) and y.dtype == torch.float64
    want = 16 + 65.481 * rgb[:, 0] + 128.553 * rgb[:, 1] + 24.966 * rgb[:, 2]
    torch.testing.assert_close(y.flatten(), want.double(), atol=1e-4, rtol=0)
    assert y.flatten()[0] == 16 and y.flatten()[1] == pytest.approx(235, abs=1e-9)
    np.testing.assert_allclose(y[:, 0].numpy(), _y_skimage(images), atol=1e-12, rtol=0)


def test_psnr_known_values() -> None:
    a = torch.zeros(2, 3, 4, 5)
    b = torch.full_like(a, 0.1)
    torch.testing.assert_close(psnr(a, b), torch.full((2,), 20.0, dtype=torch.float64))
    torch.testing.assert_close(
        psnr(a * 255, b * 255, data_range=255.0), torch.full((2,), 20.0, dtype=torch.float64)
    )
    assert torch.isinf(psnr(b, b)).all()
    with pytest.raises(ValueError, match="one shape"):
        psnr(a, b[:, :, :3])


def test_sr_scores_match_scikit_image_on_real_photos(
    sr_pairs: list[tuple[int, Tensor, Tensor]],
) -> None:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    for s, output, target in sr_pairs:
        scores = sr_psnr_ssim(output, target, scale=s)
        y_out = _y_skimage(output)[0, s:-s, s:-s]
        y_target = _y_skimage(target)[0, s:-s, s:-s]
        want_psnr = peak_signal_noise_ratio(y_target, y_out, data_range=255)
        want_ssim = structural_similarity(
            y_target,
            y_out,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
        )
        # PSNR: both float64, measured max |diff| 4e-15 dB. SSIM: ours runs its filters in
        # float32, measured max |diff| 5e-6 over these pairs.
        assert scores.psnr.item() == pytest.approx(want_psnr, abs=1e-9)
        assert scores.ssim.item() == pytest.approx(want_ssim, abs=2e-5)
        assert 10 < want_psnr < 40 and 0.1 < want_ssim < 1


def test_sr_scores_batch_and_ignore_the_border() -> None:
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(3, 3, 40, 48, generator=gen)
    output = target.clone()
    output[:, :, :4] = 0  # 4-px borders only: ignored at ×4, not at ×2
    output[:, :, :, -4:] = 1
    scores = sr_psnr_ssim(output, target, scale=4)
    assert scores.psnr.shape == scores.ssim.shape == (3,)
    assert torch.isinf(scores.psnr).all()
    torch.testing.assert_close(scores.ssim, torch.ones(3), atol=1e-6, rtol=0)
    at_x2 = sr_psnr_ssim(output, target, scale=2)
    assert torch.isfinite(at_x2.psnr).all() and (at_x2.ssim < 1).all()
    # per image: the same numbers one at a time
    single = sr_psnr_ssim(output[1:2], target[1:2], scale=2)
    assert single.psnr.item() == pytest.approx(at_x2.psnr[1].item(), abs=1e-9)
    assert single.ssim.item() == pytest.approx(at_x2.ssim[1].item(), abs=1e-6)


def test_sr_scores_refuse_what_they_cannot_score() -> None:
    with pytest.raises(ValueError, match="leaves nothing"):
        sr_psnr_ssim(torch.rand(1, 3, 16, 40), torch.rand(1, 3, 16, 40), scale=8)
    with pytest.raises(ValueError, match="one shape"):
        sr_psnr_ssim(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 36), scale=4)
