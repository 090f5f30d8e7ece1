"""Any size in, the same size out (×scale for a super-resolution network): the padding is
F.pad's reflect/replicate, bit for bit."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from stylenet.models import PadCrop, TransformerNet, pad_to_multiple
from stylenet.models.padding import SizeRule, padded_size
from tests.helpers import tiny_sr_net


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


# --- a network with an output scale: SuperResolutionNet ------------------------------------


@pytest.mark.parametrize(("h", "w"), [(33, 51), (5, 5), (5, 3), (1, 17), (2, 1)])
def test_pad_crop_of_a_superres_net_gives_scale_times_the_size(h: int, w: int) -> None:
    net = tiny_sr_net(scale=4)
    x = torch.rand(2, 3, h, w)
    with torch.no_grad():
        out = PadCrop(net)(x)
        assert out.shape == (2, 3, 4 * h, 4 * w)
        if min(h, w) >= 5:  # nothing to pad: exactly the network's output
            assert torch.equal(out, net(x))


def test_a_superres_rule_pads_only_below_the_networks_minimum() -> None:
    rule = SizeRule.of(tiny_sr_net(scale=8))
    assert rule == SizeRule(multiple=1, minimum=5, scale=8)
    assert SizeRule.of(TransformerNet(base_channels=4, num_residual_blocks=0)) == SizeRule()
    sides = {n: padded_size(n, rule.multiple, rule.minimum) for n in (1, 3, 4, 5, 6, 37)}
    assert sides == {1: 5, 3: 5, 4: 5, 5: 5, 6: 6, 37: 37}
    x = torch.rand(1, 3, 3, 7)
    # 2 px of reflection below a 3-px side; the 7-px side is left alone.
    assert torch.equal(pad_to_multiple(x, 1, 5), F.pad(x, (0, 0, 0, 2), mode="reflect"))
    y = torch.rand(1, 3, 2, 9)  # a pad of 3 is as long as the side: replicated
    assert torch.equal(pad_to_multiple(y, 1, 5), F.pad(y, (0, 0, 0, 3), mode="replicate"))


def test_one_scripted_superres_pad_crop_serves_every_size() -> None:
    net = tiny_sr_net(scale=2)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch.jit is deprecated (still supported)
        traced = torch.jit.trace(net, torch.rand(1, 3, 16, 16), check_trace=False)
        scripted = torch.jit.script(PadCrop(traced, SizeRule.of(net)))
        for h, w in [(16, 16), (3, 2), (37, 21), (5, 8)]:
            x = torch.rand(1, 3, h, w)
            torch.testing.assert_close(scripted(x), PadCrop(net)(x), atol=1e-6, rtol=0)
            assert scripted(x).shape == (1, 3, 2 * h, 2 * w)
