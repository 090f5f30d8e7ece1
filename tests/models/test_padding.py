"""Any size in, the same size out: the padding is F.pad's reflect/replicate, bit for bit."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stylenet.models import PadCrop, TransformerNet, pad_to_multiple
from stylenet.models.padding import padded_size


@pytest.mark.parametrize(("h", "w"), [(33, 51), (8, 8), (5, 3), (64, 64), (1, 17), (7, 40)])
def test_padding_is_reflect_or_replicate_to_a_multiple_of_4(h: int, w: int) -> None:
    x = torch.rand(2, 3, h, w)
    padded = pad_to_multiple(x)
    ph, pw = padded_size(h), padded_size(w)
    assert padded.shape == (2, 3, ph, pw)
    assert ph % 4 == 0 and pw % 4 == 0 and min(ph, pw) >= 8
    pads = (0, pw - w, 0, ph - h)
    # Reflection needs each pad to be shorter than its side; otherwise both sides replicate.
    mode = "reflect" if ph - h < h and pw - w < w else "replicate"
    assert torch.equal(padded, F.pad(x, pads, mode=mode))
    assert torch.equal(padded[..., :h, :w], x)  # the photo itself is untouched


@pytest.mark.parametrize(("h", "w"), [(33, 51), (8, 8), (5, 3), (1, 17)])
def test_pad_crop_keeps_the_size(h: int, w: int) -> None:
    net = TransformerNet(base_channels=4, num_residual_blocks=1).eval()
    with torch.no_grad():
        assert PadCrop(net)(torch.rand(2, 3, h, w)).shape == (2, 3, h, w)


def test_pad_crop_changes_nothing_where_the_network_needs_no_padding() -> None:
    torch.manual_seed(0)
    net = TransformerNet(base_channels=4, num_residual_blocks=1).eval()
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        assert torch.equal(PadCrop(net)(x), net(x))


def test_pad_crop_refuses_what_is_not_an_image_batch() -> None:
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        PadCrop(TransformerNet(base_channels=4, num_residual_blocks=0))(torch.rand(3, 8, 8))


def test_a_channels_last_batch_stays_channels_last() -> None:
    x = torch.rand(2, 3, 30, 45).contiguous(memory_format=torch.channels_last)
    padded = pad_to_multiple(x)
    assert padded.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(padded, pad_to_multiple(x.contiguous()))
