"""The stability terms (noise, motion) and the known camera motions they use."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylenet.errors import ConfigError
from stylenet.losses import MotionStability, NoiseStability, PerceptualLoss, TermInputs
from stylenet.losses.motion import motion_matrix, random_motion, warp
from stylenet.models import TransformerNet


def _inputs(net: nn.Module | None, x: Tensor) -> TermInputs:
    output = net(x) if net is not None else x
    return TermInputs(output, x, {}, {}, None, x, net)


def _smooth(n: int = 2, size: int = 32) -> Tensor:
    """Photos without pixel-scale detail, so that bilinear resampling is near exact."""
    g = torch.Generator().manual_seed(0)
    return F.interpolate(torch.rand(n, 3, 6, 6, generator=g), size=size, mode="bicubic").clamp(0, 1)


def test_an_integer_shift_moves_pixels_exactly() -> None:
    x = torch.rand(1, 3, 16, 20)
    # 2 px to the right in a 20 px wide image: 2 / (20 / 2) normalized units.
    theta = motion_matrix(torch.tensor([[0.2, 0.0]]), torch.ones(1), torch.zeros(1))
    moved, visible = warp(x, theta)
    assert torch.allclose(moved[..., :-2], x[..., 2:], atol=1e-6)
    assert visible[0, 0, :, :-3].all() and not visible[0, 0, :, -2:].any()


def test_a_rotation_turns_pixels_not_the_normalized_square() -> None:
    # A quarter turn of a wide image maps its centre row onto its centre column: the distances
    # from the centre are kept in pixels.
    x = torch.zeros(1, 1, 21, 41)
    x[0, 0, 10, 10:31] = 1  # a horizontal bar 21 px long through the centre
    theta = motion_matrix(torch.zeros(1, 2), torch.ones(1), torch.tensor([math.pi / 2]), 41 / 21)
    moved, _ = warp(x, theta, padding="zeros")
    column = moved[0, 0, :, 20]
    assert column.sum().item() == pytest.approx(21, abs=0.5)
    assert moved[0, 0, 10].sum().item() == pytest.approx(1, abs=0.5)  # only the centre pixel


def test_random_motions_stay_in_their_ranges() -> None:
    theta = random_motion(
        256, max_shift=0.05, max_zoom=0.1, max_angle=3, generator=torch.Generator().manual_seed(0)
    )
    scale = theta[:, :, :2].det().abs().sqrt()  # 1 / zoom
    assert (1 / scale).min() >= 0.9 - 1e-6 and (1 / scale).max() <= 1.1 + 1e-6
    assert theta[:, :, 2].abs().max() <= 0.1 + 1e-6  # 2 × 0.05: normalized units span 2
    assert theta[:, :, 2].abs().max() > 0.08  # and they use them


def test_the_motion_term_is_zero_for_a_network_that_commutes_with_motion() -> None:
    # The identity and any per-pixel map move with the picture by construction.
    x = _smooth()
    torch.manual_seed(0)
    term = MotionStability(1.0, max_shift=0.05, max_zoom=0.05, max_angle=3.0)
    assert term(_inputs(nn.Identity(), x)).item() < 1e-12
    # A per-pixel map commutes with resampling up to its curvature between neighbours: tiny on
    # a smooth photo, against > 1e-6 for a small random network (next test).
    assert term(_inputs(nn.Sigmoid(), x)).item() < 1e-7


def test_the_motion_term_is_positive_for_a_network_that_does_not() -> None:
    torch.manual_seed(0)
    net = TransformerNet(base_channels=8, num_residual_blocks=1).eval()
    term = MotionStability(1.0, max_shift=0.05, max_zoom=0.05, max_angle=3.0)
    with torch.no_grad():
        value = term(_inputs(net, _smooth()))
    assert value.item() > 1e-6


def test_the_noise_term_is_zero_for_a_network_that_ignores_noise() -> None:
    torch.manual_seed(0)
    x = _smooth()
    constant = nn.Conv2d(3, 3, 1)
    nn.init.zeros_(constant.weight)
    assert NoiseStability(1.0, sigma=0.02)(_inputs(constant, x)).item() == 0


def test_the_noise_term_of_the_identity_is_the_noise_variance() -> None:
    torch.manual_seed(0)
    x = 0.25 + 0.5 * torch.rand(4, 3, 64, 64)  # away from 0 and 1: no clamping
    value = NoiseStability(1.0, sigma=0.02)(_inputs(nn.Identity(), x)).item()
    assert value == pytest.approx(0.02**2, rel=0.02)


def test_the_noise_term_is_positive_for_a_random_network_and_trains_its_gradient() -> None:
    torch.manual_seed(0)
    net = TransformerNet(base_channels=8, num_residual_blocks=1)
    value = NoiseStability(2.0, sigma=0.05)(_inputs(net, _smooth()))
    value.backward()
    assert value.item() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_the_loss_computes_them_only_with_the_network() -> None:
    loss = PerceptualLoss(
        content_weight=0, style_weight=0, noise_weight=3.0, motion_weight=5.0, vgg=None
    )
    assert loss.needs_transform and loss.vgg is None
    x = _smooth()
    net = nn.Sigmoid()
    without = loss(net(x), x)
    assert set(without) == {"content", "style", "total"}  # saved outputs only: left out
    with_net = loss(net(x), x, source=x, transform=net)
    assert set(with_net) == {"content", "style", "noise", "motion", "total"}
    assert with_net["noise"].item() > 0 and with_net["motion"].item() < 1e-7  # weight 5
    assert torch.equal(with_net["total"], with_net["noise"] + with_net["motion"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"noise_weight": 1.0, "noise_sigma": 0.0}, "noise_sigma=0.0"),
        ({"motion_weight": 1.0, "motion_zoom": 1.5}, "motion_zoom=1.5"),
        ({"motion_weight": 1.0, "motion_shift": float("nan")}, "motion_shift=nan"),
        ({"noise_weight": -1.0}, "noise_weight=-1.0"),
    ],
)
def test_bad_settings_name_themselves(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PerceptualLoss(content_weight=0, style_weight=0, vgg=None, **kwargs)
