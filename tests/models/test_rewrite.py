"""`inference_form`: the rewritten network computes the plain network's function."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from stylenet.models import SuperResolutionNet, TransformerNet
from stylenet.models.rewrite import SpaceToDepthConvLayer, SubPixelConvLayer, inference_form
from stylenet.models.transformer import ConvLayer, UpsampleConvLayer
from tests.helpers import save_tiny_multistyle_model, tiny_net, tiny_sr_net

# float32 sums in another order; the plain and rewritten networks agree to about 4e-7 here.
ATOL = 2e-6


@pytest.mark.parametrize(
    ("make", "sizes"),
    [
        (tiny_net, [(8, 8), (12, 20), (64, 36)]),
        (lambda: tiny_sr_net(2), [(5, 5), (7, 12)]),
        (lambda: tiny_sr_net(8), [(6, 9)]),
    ],
    ids=["transformer", "superres-x2", "superres-x8"],
)
def test_inference_form_computes_the_same_function(
    make: Callable[[], nn.Module], sizes: list[tuple[int, int]]
) -> None:
    # The helpers' nets have random norm affines and output convs: a phase or channel mix-up
    # would not hide behind unit norms or a near-zero last conv.
    net = make()
    form = inference_form(net)
    gen = torch.Generator().manual_seed(0)
    for h, w in sizes:
        x = torch.rand(2, 3, h, w, generator=gen)
        with torch.no_grad():
            expected, got = net(x), form(x)
        assert got.shape == expected.shape
        assert (got - expected).abs().max().item() < ATOL, (h, w)


def test_multi_style_form_mixes_the_same_styles(tmp_path: Path) -> None:
    _, net = save_tiny_multistyle_model(tmp_path, ["a", "b", "c"])
    form = inference_form(net)
    x = torch.rand(2, 3, 16, 12, generator=torch.Generator().manual_seed(0))
    weights = torch.tensor([[0.2, 0.3, 0.5], [0.0, 1.0, 0.0]])
    with torch.no_grad():
        assert (form(x, weights) - net(x, weights)).abs().max().item() < ATOL


def test_every_slow_layer_is_rewritten_and_the_network_is_untouched() -> None:
    net = TransformerNet(base_channels=8, num_residual_blocks=1)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    form = inference_form(net)
    kinds = [type(m) for m in form.modules()]
    assert kinds.count(SubPixelConvLayer) == 2 and UpsampleConvLayer not in kinds
    assert isinstance(form.decoder[2], SpaceToDepthConvLayer)
    # The caller's network keeps its layers, its weights and its training mode.
    assert sum(isinstance(m, UpsampleConvLayer) for m in net.modules()) == 2
    assert net.training and not form.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())

    sr = inference_form(SuperResolutionNet(scale=4, channels=8))
    assert isinstance(sr.tail, SpaceToDepthConvLayer)
    assert sum(isinstance(m, SubPixelConvLayer) for m in sr.modules()) == 2


def test_layers_refuse_convs_they_cannot_rewrite() -> None:
    with pytest.raises(ValueError, match="3x3 stride-1"):
        SubPixelConvLayer(UpsampleConvLayer(4, 4, 5))
    with pytest.raises(ValueError, match="odd square stride-1"):
        SpaceToDepthConvLayer(ConvLayer(4, 3, 3, stride=2))
