"""SuperResolutionNet: the paper's SR architecture (supplementary Table 2, with our departures),
the sizes it takes and gives, gradients, determinism, TorchScript and ONNX."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stylenet.errors import ConfigError
from stylenet.models import (
    SuperResolutionConfig,
    SuperResolutionNet,
    TransformerConfig,
    TransformerNet,
)


def _small(scale: int, *, seed: int = 0) -> SuperResolutionNet:
    """A narrow network whose last conv is not zero (as after training)."""
    torch.manual_seed(seed)
    net = SuperResolutionNet(scale=scale, channels=8, num_residual_blocks=2).eval()
    with torch.no_grad():
        net.tail.conv.weight.normal_(0, 0.02)
        net.tail.conv.bias.normal_(0, 0.02)
    return net


@pytest.mark.parametrize(("scale", "params", "stages"), [(4, 400_451, 2), (8, 437_379, 3)])
def test_paper_widths_parameter_count(scale: int, params: int, stages: int) -> None:
    # c9s1-64, 4 × R64, log2(scale) × (nearest ×2, 3×3 conv 64), c9s1-3; no normalization.
    net = SuperResolutionNet(scale=scale)
    assert sum(p.numel() for p in net.parameters()) == params
    assert len(net.residuals) == 4 and len(net.upsample) == stages
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in net.modules())
    assert not any(isinstance(m, nn.modules.batchnorm._NormBase) for m in net.modules())
    assert net.head[0].conv.kernel_size == (9, 9) and net.tail.conv.kernel_size == (9, 9)
    assert net.config == SuperResolutionConfig(scale=scale, channels=64, num_residual_blocks=4)


def test_every_image_network_says_its_scale() -> None:
    assert TransformerNet.scale == 1 and TransformerNet(base_channels=8).scale == 1
    assert SuperResolutionNet(scale=8, channels=4, num_residual_blocks=0).scale == 8
    assert SuperResolutionNet.min_side == 5


@pytest.mark.parametrize("scale", [4, 8])
@pytest.mark.parametrize(("h", "w"), [(5, 5), (7, 13), (31, 6)])
def test_output_is_scale_times_larger_for_any_size(scale: int, h: int, w: int) -> None:
    net = _small(scale)
    for mode in (False, True):  # no normalization: train and eval mode compute the same
        net.train(mode)
        with torch.no_grad():
            y = net(torch.rand(2, 3, h, w))
        assert y.shape == (2, 3, h * scale, w * scale)
        assert y.min() >= 0 and y.max() <= 1


def test_untrained_network_is_bicubic_upsampling_but_for_a_faint_residual() -> None:
    torch.manual_seed(0)
    net = SuperResolutionNet(scale=4, channels=8, num_residual_blocks=1).eval()
    x = torch.rand(1, 3, 9, 11)
    bicubic = F.interpolate(x, scale_factor=4.0, mode="bicubic", align_corners=False)
    with torch.no_grad():
        diff = (net(x) - bicubic.clamp(0, 1)).abs()
    assert 0 < diff.max() < 0.05, diff.max()


def test_rejects_what_it_cannot_take() -> None:
    net = _small(4)
    with pytest.raises(ValueError, match="at least 5"):
        net(torch.rand(1, 3, 4, 9))
    with pytest.raises(ValueError, match=r"\(B, 3, h, w\)"):
        net(torch.rand(3, 9, 9))
    with pytest.raises(ValueError, match=r"\(B, 3, h, w\)"):
        net(torch.rand(1, 1, 9, 9))


@pytest.mark.parametrize("scale", [0, 1, 3, 6, 12])
def test_scale_must_be_a_power_of_two(scale: int) -> None:
    with pytest.raises(ConfigError, match=f"scale must be a power of 2 >= 2.*got {scale}"):
        SuperResolutionNet(scale=scale)


def test_config_round_trip() -> None:
    net = SuperResolutionNet(scale=8, channels=16, num_residual_blocks=3)
    config = net.config.to_dict()
    assert config == {"scale": 8, "channels": 16, "num_residual_blocks": 3}
    again = SuperResolutionNet.from_config(config)
    assert again.config == net.config
    assert SuperResolutionNet.from_config(net.config).state_dict().keys() == net.state_dict().keys()
    with pytest.raises(ConfigError, match="channels >= 1"):
        SuperResolutionConfig(channels=0)
    with pytest.raises(AttributeError):
        net.config.scale = 4  # type: ignore[misc]
    # The two networks' configs are distinct types: a model file can tell them apart.
    assert set(config) != set(TransformerConfig().to_dict())


def test_gradients_reach_every_parameter_and_the_input() -> None:
    net = _small(4).train()
    x = torch.rand(2, 3, 7, 9, requires_grad=True)
    net(x).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_every_layer_of_an_untrained_network_gets_a_gradient() -> None:
    # (A zero last conv would starve every layer before it until it grew.)
    net = SuperResolutionNet(scale=4, channels=8, num_residual_blocks=1).train()
    net(torch.rand(1, 3, 6, 6)).mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_clamp_passes_the_gradient_of_saturated_pixels() -> None:
    # A white image: bicubic gives exactly 1 and a positive residual is clamped away, yet each
    # output pixel still passes gradient 1 to the last conv's bias (straight-through clamp).
    net = SuperResolutionNet(scale=4, channels=4, num_residual_blocks=0).train()
    with torch.no_grad():
        net.tail.conv.bias.fill_(0.5)
    y = net(torch.ones(1, 3, 5, 6))
    assert torch.equal(y, torch.ones_like(y))
    y.sum().backward()
    assert net.tail.conv.bias.grad is not None
    assert torch.equal(net.tail.conv.bias.grad, torch.full((3,), 20.0 * 24.0))


def test_deterministic() -> None:
    x = torch.rand(2, 3, 11, 7)
    a, b = _small(8, seed=1), _small(8, seed=1)
    with torch.no_grad():
        assert torch.equal(a(x), a(x))
        assert torch.equal(a(x), b(x))
        want = a(x)
    # with autograd (the straight-through clamp) the values are the same, bit for bit
    got = a(x)
    assert got.requires_grad and torch.equal(got.detach(), want)
    assert ((want == 0) | (want == 1)).any()  # bicubic overshoots on noise: the clamp acted


@pytest.mark.parametrize("scale", [4, 8])
def test_torchscript_matches_eager(scale: int) -> None:
    net = _small(scale)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated (still supported)
        scripted = torch.jit.script(net)
    assert scripted.scale == scale
    with torch.no_grad():
        for shape in [(1, 3, 7, 11), (2, 3, 13, 5)]:
            x = torch.rand(shape)
            torch.testing.assert_close(scripted(x), net(x), atol=1e-6, rtol=0)
    with pytest.raises(torch.jit.Error, match="at least 5"):
        scripted(torch.rand(1, 3, 4, 9))


@pytest.mark.parametrize("scale", [4, 8])
def test_onnx_export_with_dynamic_size_matches_eager(scale: int) -> None:
    ort = pytest.importorskip("onnxruntime")
    net = _small(scale)
    dims = {
        0: torch.export.Dim("batch"),
        # the first 9×9 conv's reflection pad needs a side >= min_side
        2: torch.export.Dim("height", min=SuperResolutionNet.min_side),
        3: torch.export.Dim("width", min=SuperResolutionNet.min_side),
    }
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            net,
            (torch.rand(2, 3, 12, 16),),  # sizes other than 1 so that nothing specializes
            input_names=["image"],
            output_names=["upscaled"],
            dynamic_shapes={"x": dims},
            dynamo=True,
            verbose=False,
        )
    assert program is not None
    session = ort.InferenceSession(
        program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    for shape in [(1, 3, 7, 11), (2, 3, 13, 5)]:
        x = torch.rand(shape)
        got = torch.from_numpy(session.run(None, {"image": x.numpy()})[0])
        with torch.no_grad():
            want = net(x)
        assert got.shape == (shape[0], 3, shape[2] * scale, shape[3] * scale)
        # measured ≤ 4e-7 (export.py's TOLERANCE for exports is 1e-4)
        torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
