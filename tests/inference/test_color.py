"""Colour preservation and strength blending."""

from __future__ import annotations

import pytest
import torch

from stylenet.inference.color import _RGB_TO_YCBCR, blend, preserve_color


def ycbcr(x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", _RGB_TO_YCBCR, x)


def test_preserve_color_keeps_photo_chroma_and_stylized_luma() -> None:
    torch.manual_seed(0)
    photo = torch.rand(2, 3, 8, 8) * 0.5 + 0.25  # away from the clamp
    stylized = torch.rand(2, 3, 8, 8) * 0.5 + 0.25
    stylized_gray = stylized.mean(1, keepdim=True).expand_as(stylized)
    out = preserve_color(stylized_gray, photo)
    torch.testing.assert_close(ycbcr(out)[:, 0], ycbcr(stylized_gray)[:, 0], atol=1e-5, rtol=0)
    torch.testing.assert_close(ycbcr(out)[:, 1:], ycbcr(photo)[:, 1:], atol=1e-5, rtol=0)
    assert out.min() >= 0 and out.max() <= 1


def test_preserve_color_of_the_photo_itself_is_the_photo() -> None:
    photo = torch.rand(1, 3, 5, 7)
    torch.testing.assert_close(preserve_color(photo, photo), photo, atol=1e-5, rtol=0)


def test_blend_endpoints_and_midpoint() -> None:
    photo, stylized = torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2)
    assert torch.equal(blend(stylized, photo, 0.0), photo)
    assert torch.equal(blend(stylized, photo, 1.0), stylized)
    torch.testing.assert_close(blend(stylized, photo, 0.25), torch.full((1, 3, 2, 2), 0.25))
    with pytest.raises(ValueError, match="strength"):
        blend(stylized, photo, 1.5)
