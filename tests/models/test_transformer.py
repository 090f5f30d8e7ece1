"""TransformerNet: the paper's architecture, any width and depth, the sizes it accepts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stylenet.models import ConditionalInstanceNorm2d, TransformerNet


def test_johnson_architecture_parameter_count() -> None:
    # c9s1-32, d64, d128, 5×R128, u64, u32, c9s1-3 with affine instance norm (STYLE.md figure).
    net = TransformerNet()
    assert sum(p.numel() for p in net.parameters()) == 1_679_235
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in net.modules())
    assert sum(isinstance(m, nn.ReflectionPad2d) for m in net.modules()) == 16
    norms = [m for m in net.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert len(norms) == 15 and all(m.affine for m in norms)


@pytest.mark.parametrize(("h", "w"), [(8, 8), (32, 48), (68, 36), (100, 200)])
def test_keeps_shape_for_sizes_divisible_by_4(h: int, w: int) -> None:
    net = TransformerNet(base_channels=8, num_residual_blocks=2).eval()
    with torch.no_grad():
        y = net(torch.rand(2, 3, h, w))
    assert y.shape == (2, 3, h, w)
    assert y.min() >= 0 and y.max() <= 1


def test_rejects_sizes_not_divisible_by_4() -> None:
    net = TransformerNet(base_channels=8, num_residual_blocks=1)
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.rand(1, 3, 30, 32))
    with pytest.raises(ValueError, match="at least 8"):
        net(torch.rand(1, 3, 4, 32))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.rand(3, 32, 32))


def test_width_and_depth_are_configurable() -> None:
    small = TransformerNet(base_channels=16, num_residual_blocks=3)
    assert len(small.residuals) == 3
    assert small.encoder[0][0].conv.out_channels == 16
    assert small.config.to_dict() == {"base_channels": 16, "num_residual_blocks": 3}


# --- many styles in one network (conditional instance norm) ----------------------------------


def _multi(num_styles: int = 3) -> TransformerNet:
    torch.manual_seed(0)
    net = TransformerNet(base_channels=8, num_residual_blocks=2, num_styles=num_styles).eval()
    with torch.no_grad():  # distinct (γ, β) per style, as after training
        for module in net.modules():
            if isinstance(module, ConditionalInstanceNorm2d):
                module.weight.copy_(1 + 0.3 * torch.randn_like(module.weight))
                module.bias.normal_(0, 0.3)
    return net


def test_a_one_style_network_is_the_papers_network_bit_for_bit() -> None:
    torch.manual_seed(0)
    net = TransformerNet(base_channels=8, num_residual_blocks=2).eval()
    assert net.config.to_dict() == {"base_channels": 8, "num_residual_blocks": 2}
    assert not any(isinstance(m, ConditionalInstanceNorm2d) for m in net.modules())
    assert net.state_dict()["encoder.0.1.weight"].shape == (8,)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        # The forward before multi-style networks existed: the blocks in sequence.
        before = torch.sigmoid(net.decoder(net.residuals(net.encoder(x))))
        assert torch.equal(net(x), before)


def test_every_norm_is_conditional_and_only_norms_differ_per_style() -> None:
    net = _multi(3)
    norms = [m for m in net.modules() if isinstance(m, ConditionalInstanceNorm2d)]
    assert len(norms) == 3 + 2 * 2 + 2  # encoder, 2 per residual block, decoder
    assert not any(isinstance(m, torch.nn.InstanceNorm2d) for m in net.modules())
    one = TransformerNet(base_channels=8, num_residual_blocks=2)
    extra = sum(p.numel() for p in net.parameters()) - sum(p.numel() for p in one.parameters())
    per_style = sum(m.weight.shape[1] * 2 for m in norms)
    assert extra == 2 * per_style  # two more styles: their γ and β only
    assert net.config.to_dict()["num_styles"] == 3


def test_style_weights_pick_or_mix_styles_and_bind_folds_them_in() -> None:
    net = _multi(3)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        outputs = [net(x, torch.eye(3)[i]) for i in range(3)]
        assert not torch.allclose(outputs[0], outputs[1], atol=1e-3)
        for i in range(3):
            bound = net.bind(torch.eye(3)[i])
            assert bound.num_styles == 1
            torch.testing.assert_close(bound(x), outputs[i], rtol=0, atol=1e-6)
        mix = torch.tensor([0.7, 0.3, 0.0])
        mixed = net(x, mix)
        torch.testing.assert_close(net.bind(mix)(x), mixed, rtol=0, atol=1e-6)
        # A different weight row per image in one batch.
        rows = net(x, torch.stack([torch.eye(3)[2], mix]))
        torch.testing.assert_close(rows[0], outputs[2][0])
        torch.testing.assert_close(rows[1], mixed[1])


def test_style_weights_are_required_and_checked() -> None:
    net = _multi(3)
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match=r"carries 3 styles: pass style_weights \(B, 3\)"):
        net(x)
    with pytest.raises(ValueError, match=r"style_weights must be \(1, 3\) or \(3,\), got \(2,\)"):
        net(x, torch.ones(2))
    with pytest.raises(ValueError, match=r"style weights must be \(3,\)"):
        net.bind(torch.ones(4))


def test_with_styles_keeps_every_style_and_starts_new_ones_at_their_mean() -> None:
    net = _multi(2)
    grown = net.with_styles(4)
    assert grown.num_styles == 4
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        for i in range(2):
            torch.testing.assert_close(grown(x, torch.eye(4)[i]), net(x, torch.eye(2)[i]))
        # A new style starts as the even mix of the old ones.
        torch.testing.assert_close(grown(x, torch.eye(4)[3]), net(x, torch.tensor([0.5, 0.5])))
    torch.manual_seed(0)
    one = TransformerNet(base_channels=8, num_residual_blocks=2).eval()
    with torch.no_grad():
        torch.testing.assert_close(one.with_styles(2)(x, torch.eye(2)[0]), one(x))
    with pytest.raises(ValueError, match="cannot drop styles"):
        net.with_styles(1)
