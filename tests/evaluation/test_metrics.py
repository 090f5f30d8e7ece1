"""LPIPS and SSIM: the same numbers as the reference packages (lpips, scikit-image) on real
photos, 0 / 1 for the photo itself, worse for a stronger blur or more noise."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from stylenet.errors import ConfigError
from stylenet.evaluation.metrics import LPIPS, LPIPS_LAYERS, lpips_heads_path, ssim
from stylenet.io.images import load_image_tensor
from stylenet.weights.store import load_features_state_dict


@pytest.fixture(scope="module")
def photos(photo_dir: Path) -> Tensor:
    """The package photos (long side 96) centre-cropped to one size: (N, 3, 64, 88)."""
    crops = []
    for path in sorted(photo_dir.iterdir()):
        image = load_image_tensor(path)
        h, w = image.shape[-2:]
        top, left = (h - 64) // 2, (w - 88) // 2
        if top >= 0 and left >= 0:
            crops.append(image[:, top : top + 64, left : left + 88])
    assert len(crops) >= 4
    return torch.stack(crops)


@pytest.fixture(scope="module")
def lpips_ours(vgg16_weights: str) -> LPIPS:
    return LPIPS(weights=vgg16_weights)


def _blur(images: Tensor, sigma: float) -> Tensor:
    radius = max(1, round(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = (g / g.sum()).repeat(3, 1)
    padded = F.pad(images, (radius,) * 4, mode="reflect")
    out = F.conv2d(padded, g.view(3, 1, -1, 1), groups=3)
    return F.conv2d(out, g.view(3, 1, 1, -1), groups=3)


def _noise(images: Tensor, std: float) -> Tensor:
    gen = torch.Generator().manual_seed(0)
    return (images + std * torch.randn(images.shape, generator=gen)).clamp(0, 1)


def _pairs(photos: Tensor) -> tuple[Tensor, Tensor]:
    """Photo vs another photo, vs a blurred copy, vs a noisy copy, vs itself."""
    a = photos[:4]
    b = torch.stack([photos[1], _blur(photos[1:2], 2.0)[0], _noise(photos[2:3], 0.1)[0], photos[3]])
    return a, b


@pytest.fixture(scope="module")
def lpips_reference(vgg16_weights: str) -> Iterator[torch.nn.Module]:
    """lpips' own model with our VGG-16 weights in its backbone; it may not download anything."""
    lpips = pytest.importorskip("lpips")

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the lpips reference model tried to download")

    with pytest.MonkeyPatch.context() as mp, pytest.warns(UserWarning):  # torchvision: pretrained=
        mp.setattr(torch.hub, "load_state_dict_from_url", no_network)
        mp.setattr(urllib.request, "urlopen", no_network)
        model = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False)
    state = load_features_state_dict(vgg16_weights, "vgg16")
    slices = [model.net.slice1, model.net.slice2, model.net.slice3, model.net.slice4]
    loaded = 0
    for part in [*slices, model.net.slice5]:
        for index, module in part.named_children():  # torchvision's features indices
            if isinstance(module, torch.nn.Conv2d):
                module.weight.data.copy_(state[f"{index}.weight"])
                module.bias.data.copy_(state[f"{index}.bias"])
                loaded += 2
    assert loaded == len(state) == 26  # all 13 convolutions of VGG-16
    yield model.eval()


def test_lpips_scaling_layer_is_torchvision_normalization(lpips_ours: LPIPS) -> None:
    from lpips.lpips import ScalingLayer

    x = torch.rand(2, 3, 8, 8)
    ours = (x - lpips_ours.vgg.mean) / lpips_ours.vgg.std
    assert torch.allclose(ScalingLayer()(2 * x - 1), ours, atol=1e-5)


def test_lpips_matches_the_lpips_package(lpips_ours: LPIPS, lpips_reference, photos) -> None:
    a, b = _pairs(photos)
    with torch.no_grad():
        expected = lpips_reference(a, b, normalize=True).flatten()  # normalize: [0, 1] input
        got = lpips_ours(a, b)
    assert got.shape == (4,)
    assert (got - expected).abs().max() <= 1e-4, (got, expected)
    assert got[3] == pytest.approx(0.0, abs=1e-6)  # the photo itself
    assert (got[:3] > 0.05).all()


def test_ssim_matches_scikit_image(photos) -> None:
    from skimage.metrics import structural_similarity

    a, b = _pairs(photos)
    got = ssim(a, b)
    for i in range(len(a)):
        expected = structural_similarity(
            a[i].permute(1, 2, 0).double().numpy(),
            b[i].permute(1, 2, 0).double().numpy(),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            channel_axis=-1,
        )
        assert abs(float(got[i]) - expected) <= 1e-4, (i, float(got[i]), expected)
    assert float(got[3]) == pytest.approx(1.0, abs=1e-6)


def test_stronger_damage_scores_worse(lpips_ours: LPIPS, photos) -> None:
    photos = photos[:3]
    for damage, levels in ((_blur, (0.5, 1.5, 4.0)), (_noise, (0.02, 0.08, 0.25))):
        copies = [damage(photos, level) for level in levels]
        with torch.no_grad():
            ref = lpips_ours.embed(photos)
            lp = torch.stack([lpips_ours.distance(lpips_ours.embed(c), ref) for c in copies])
        ss = torch.stack([ssim(photos, c) for c in copies])  # (levels, N)
        assert (lp[0] > 0).all() and (lp.diff(dim=0) > 0).all(), (damage.__name__, lp)
        assert (ss[0] < 1).all() and (ss.diff(dim=0) < 0).all(), (damage.__name__, ss)


def test_lpips_heads_come_from_the_installed_package() -> None:
    path = lpips_heads_path()
    assert path.parts[-4:] == ("lpips", "weights", "v0.1", "vgg.pth")
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert {f"lin{i}.model.1.weight" for i in range(len(LPIPS_LAYERS))} <= set(state)


def test_lpips_is_frozen_and_refuses_images_too_small_for_relu5_3() -> None:
    with pytest.warns(UserWarning, match="RANDOMLY INITIALIZED"):
        model = LPIPS(weights="random")
    assert not any(p.requires_grad for p in model.parameters())
    assert model.state_dict() == {}  # nothing of it goes into a checkpoint
    model.train()
    assert not model.training and not model.vgg.training
    assert model(torch.rand(1, 3, 16, 20), torch.rand(1, 3, 16, 20)).shape == (1,)
    with pytest.raises(ConfigError, match="at least 16 px"):
        model(torch.rand(1, 3, 15, 40), torch.rand(1, 3, 15, 40))


def test_ssim_of_images_smaller_than_its_window_uses_a_smaller_window() -> None:
    a = torch.rand(2, 3, 6, 40)
    b = _noise(a, 0.1)
    s = ssim(a, b)
    assert torch.isfinite(s).all() and (s < 1).all()
    assert ssim(a, a).numpy() == pytest.approx(np.ones(2), abs=1e-6)
