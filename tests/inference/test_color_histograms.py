"""Histogram matching (color.py: match_histograms), the paper's SR post-processing (Johnson et
al. 2016, Sec. 4.2): scikit-image's numbers on a real photo, shapes, dtypes, edge cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from stylenet.inference import color
from stylenet.inference.color import match_histograms, match_histograms_uint8
from stylenet.io.images import find_images, float_to_uint8, load_image_tensor, uint8_to_float
from stylenet.models.degradation import degrade


@pytest.fixture(scope="module")
def sr_case(photo_dir: Path) -> tuple[Tensor, Tensor]:
    """(output, low-res input) as after super-resolution: a real photo's ×4 low-res input and a
    lower-contrast, brighter, noisier ×4 upsample of it standing in for a network output (kept
    off 0 and 1: a clamped mass of ties would map to one value), (1, 3, H, W) each."""
    photo = load_image_tensor(find_images(photo_dir)[0])
    h, w = photo.shape[-2:]
    hr = photo[None, :, : h // 4 * 4, : w // 4 * 4]
    lr = degrade(hr, 4)
    gen = torch.Generator().manual_seed(0)
    up = F.interpolate(lr, scale_factor=4.0, mode="bicubic")
    output = (0.8 * up + 0.15 + 0.02 * torch.randn(up.shape, generator=gen)).clamp(0, 1)
    return output, lr


def _skimage(image: Tensor, reference: Tensor) -> np.ndarray:
    from skimage.exposure import match_histograms as skimage_match

    return skimage_match(image.numpy(), reference.numpy(), channel_axis=0)


def test_matches_scikit_image_on_a_real_photo(sr_case: tuple[Tensor, Tensor]) -> None:
    output, lr = sr_case
    got = match_histograms(output, lr)
    assert got.shape == output.shape and got.dtype == output.dtype
    # The same algorithm, in float64 cast to float32 at the end: measured max |diff| 1.5e-8.
    np.testing.assert_allclose(got[0].numpy(), _skimage(output[0], lr[0]), atol=1e-6, rtol=0)
    got64 = match_histograms(output.double(), lr.double())
    want64 = _skimage(output[0].double(), lr[0].double())
    np.testing.assert_allclose(got64[0].numpy(), want64, atol=1e-12, rtol=0)


def test_output_takes_the_references_distribution(sr_case: tuple[Tensor, Tensor]) -> None:
    output, lr = sr_case
    got = match_histograms(output, lr)
    for c in range(3):
        # the matched channel's quantiles are the low-res input's (the output was brighter)
        q = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
        want = torch.quantile(lr[0, c].double().flatten(), q)
        before = torch.quantile(output[0, c].double().flatten(), q)
        have = torch.quantile(got[0, c].double().flatten(), q)
        assert (before - want).abs().max() > 0.1  # measured 0.14 to 0.15
        torch.testing.assert_close(have, want, atol=0.01, rtol=0)  # measured ≤ 0.003
        assert got[0, c].min() >= lr[0, c].min() and got[0, c].max() <= lr[0, c].max()
    assert (got - lr.repeat_interleave(4, 2).repeat_interleave(4, 3)).abs().mean() < (
        (output - lr.repeat_interleave(4, 2).repeat_interleave(4, 3)).abs().mean()
    )


def test_batches_and_unbatched_images_agree(sr_case: tuple[Tensor, Tensor]) -> None:
    output, lr = sr_case
    batch = torch.cat([output, output.flip(-1)])
    refs = torch.cat([lr, lr.flip(-2) * 0.5])
    got = match_histograms(batch, refs)
    assert torch.equal(got[0], match_histograms(output[0], lr[0]))
    assert torch.equal(got[1], match_histograms(batch[1], refs[1]))


def test_matching_an_image_to_itself_changes_nothing() -> None:
    image = torch.rand(3, 9, 7, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(match_histograms(image, image), image, atol=1e-7, rtol=0)


def test_a_constant_reference_gives_a_constant_image() -> None:
    image = torch.rand(1, 3, 8, 8)
    reference = torch.full((1, 3, 2, 2), 0.25)
    assert torch.equal(match_histograms(image, reference), torch.full_like(image, 0.25))


def test_refuses_mismatched_batches() -> None:
    with pytest.raises(ValueError, match="batch or channels"):
        match_histograms(torch.rand(2, 3, 8, 8), torch.rand(1, 3, 2, 2))
    with pytest.raises(ValueError, match="same rank"):
        match_histograms(torch.rand(1, 3, 8, 8), torch.rand(3, 2, 2))


def test_the_8_bit_match_is_the_float_match_of_the_8_bit_image(
    sr_case: tuple[Tensor, Tensor], monkeypatch: pytest.MonkeyPatch
) -> None:
    output, lr = sr_case
    monkeypatch.setattr(color, "_BAND_ROWS", 7)  # several bands, the last a short one
    image, reference = float_to_uint8(output[0]), float_to_uint8(lr[0])  # (H, W, 3) uint8
    want = float_to_uint8(match_histograms(uint8_to_float(image), uint8_to_float(reference)))
    got = image.copy()
    match_histograms_uint8(got, reference)  # in place
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="uint8"):
        match_histograms_uint8(image.astype(np.float32), reference)
