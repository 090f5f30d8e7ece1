"""TransformerNet: the paper's architecture, any width and depth, the sizes it accepts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stylenet.models import TransformerNet


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
