"""Gatys-style optimization of the image itself: each mode lowers its loss (real VGG-16)."""

from __future__ import annotations

import math
from importlib.resources import files
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import stylenet.reference.optimize as optimize_module
from stylenet.errors import ConfigError
from stylenet.io.images import load_image_tensor
from stylenet.losses import PerceptualLoss, VGGFeatures
from stylenet.reference.optimize import (
    DEFAULT_LR,
    build_loss,
    check_sizes,
    learning_rate,
    loss_config,
    memory_needed,
    min_side,
    optimize,
    optimize_image,
)
from stylenet.weights.store import WeightsFileError

CONFIGS = Path(str(files("stylenet.configs")))

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def content(photo_dir) -> torch.Tensor:
    return load_image_tensor(photo_dir / "astronaut.jpg", size=64)[None, :, :64, :64]


@pytest.fixture(scope="module")
def style(style_path) -> torch.Tensor:
    return load_image_tensor(style_path, size=64)[None]


def test_style_mode_lowers_the_total_loss(content, style, vgg16_weights) -> None:
    loss = build_loss("style")
    loss.set_style(style)
    result = optimize_image(loss, content, content=content, iterations=20, progress=False)
    first, last = result.history[0]["total"], result.history[-1]["total"]
    assert last < 0.5 * first
    assert result.image.shape == content.shape
    assert result.image.min() >= 0 and result.image.max() <= 1


def test_texture_mode_ignores_content(style, vgg16_weights) -> None:
    loss = build_loss("texture")
    loss.set_style(style)
    torch.manual_seed(0)
    noise = torch.rand(1, 3, 48, 48)
    a = optimize_image(loss, noise, content=None, iterations=15, progress=False)
    b = optimize_image(loss, noise, content=torch.rand(1, 3, 48, 48), iterations=15, progress=False)
    assert a.history[-1]["style"] < 0.5 * a.history[0]["style"]
    assert "content" not in a.history[-1]  # no content layers: no content term
    torch.testing.assert_close(a.image, b.image)  # a different "content" changes nothing


def test_inversion_from_relu2_2_gets_close_to_the_photo(content, vgg16_weights) -> None:
    loss = build_loss("invert", content_layer="relu2_2")  # TV prior on (default weight 10)
    torch.manual_seed(0)
    noise = torch.rand_like(content)
    result = optimize_image(loss, noise, content=content, iterations=150, progress=False)
    psnr = 10 * math.log10(1 / (result.image - content).pow(2).mean().item())
    start = 10 * math.log10(1 / (noise - content).pow(2).mean().item())
    # Measured 21.9 dB after 100 iterations, 25.9 dB after 200 (the noise starts at ~7 dB).
    assert psnr > 20 and psnr > start + 10, (start, psnr)


def test_presets_are_the_training_yaml(vgg16_weights) -> None:
    johnson = OmegaConf.load(CONFIGS / "loss" / "johnson.yaml")
    loss = build_loss("style")
    assert loss.content_layers == list(johnson.content_layers)
    assert loss.style_layers == dict(johnson.style_layers)
    assert (loss.content_weight, loss.style_weight, loss.tv_weight) == (
        johnson.content_weight,
        johnson.style_weight,
        johnson.tv_weight,
    )
    texture = build_loss("texture", style_weight=2.0)
    assert texture.content_weight == 0 and texture.content_layers == []
    assert texture.style_weight == 2.0


def test_a_mode_without_its_images_is_refused_before_any_work(style) -> None:
    with pytest.raises(ConfigError, match="--content"):
        optimize("style", style=style)
    with pytest.raises(ConfigError, match="--style"):
        optimize("texture")
    with pytest.raises(ConfigError, match="mode"):
        build_loss("painting")


def test_vgg19_style_mode_uses_gatys_layers_and_lowers_the_loss(
    content, style, vgg19_weights
) -> None:
    loss = build_loss("style", net="vgg19")
    assert loss.vgg.arch == "vgg19" and loss.vgg.input_normalization.name == "caffe"
    assert loss.content_layers == ["relu4_2"]
    assert list(loss.style_layers) == ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    loss.set_style(style)
    result = optimize_image(loss, content, content=content, iterations=15, progress=False)
    assert result.history[-1]["total"] < 0.5 * result.history[0]["total"]


# --- issue 16: sizes, rates and weight files refused before any work --------------------------


@pytest.mark.parametrize(("net", "smallest"), [("vgg16", 8), ("vgg19", 16)])
def test_min_side_is_the_smallest_image_the_loss_network_takes(net, smallest) -> None:
    cfg = loss_config("style", net=net)
    assert min_side(cfg) == smallest
    with pytest.warns(UserWarning, match="RANDOMLY"):  # only the sizes matter here
        vgg = VGGFeatures(
            [*cfg["content_layers"], *cfg["style_layers"]], arch=net, weights="random"
        )
    vgg(torch.rand(1, 3, smallest, smallest))  # every layer has at least 1 px
    with pytest.raises(RuntimeError, match="too small"):
        vgg(torch.rand(1, 3, smallest - 1, smallest - 1))
    with pytest.raises(
        ConfigError, match=rf"\(64×{smallest - 1} px\) is too small .* {smallest} px"
    ):
        check_sizes(cfg, (smallest - 1, 64))  # (H, W): the short side counts
    with pytest.raises(ConfigError, match=r"the style image \(2×64 px\).*raise --style-size"):
        check_sizes(cfg, (64, 64), (64, 2))


def test_a_size_whose_optimization_cannot_fit_is_refused_with_the_limit(monkeypatch) -> None:
    cfg = loss_config("texture")
    need = memory_needed(cfg, 1000, 1000)
    assert memory_needed(cfg, 2000, 2000) == pytest.approx(4 * need, rel=1e-3)  # per pixel
    assert memory_needed(cfg, 1000, 1000, optimizer="adam") < need  # no L-BFGS history
    monkeypatch.setattr(optimize_module, "free_memory", lambda device: need // 4)
    with pytest.raises(ConfigError) as err:
        check_sizes(cfg, (1000, 1000))
    assert "(1000×1000 px) needs about" in str(err.value)
    assert "(lower --size to 500 px or less)" in str(err.value)  # a quarter of the pixels fit
    check_sizes(cfg, (500, 500))


def test_learning_rates_must_be_finite_and_positive_and_none_is_the_default() -> None:
    assert learning_rate("lbfgs") == DEFAULT_LR["lbfgs"] == 1.0
    assert learning_rate("adam", None) == DEFAULT_LR["adam"] == 0.02
    assert learning_rate("adam", 0.5) == 0.5
    for lr in (0.0, -1.0, math.nan, math.inf):  # 0 used to become the default (`lr or 0.02`)
        with pytest.raises(ConfigError, match="lr must be a finite number > 0"):
            learning_rate("adam", lr)
    with pytest.warns(UserWarning, match="RANDOMLY"):
        loss = build_loss("invert", vgg_weights="random")
    with pytest.raises(ConfigError, match="lr must be"):
        optimize_image(loss, torch.rand(1, 3, 8, 8), lr=0.0)


def test_a_missing_weight_file_comes_out_of_hydra_as_itself(tmp_path) -> None:
    missing = tmp_path / "nowhere.safetensors"
    with pytest.raises(WeightsFileError, match=r"nowhere\.safetensors: no such file"):
        build_loss("texture", vgg_weights=str(missing))


def test_a_loss_without_vgg_terms_optimizes_too() -> None:
    # TV and pixel only (content and style weights 0): the loss has no VGG to take a device from.
    loss = PerceptualLoss(content_weight=0, style_weight=0, tv_weight=1.0, pixel_weight=1.0)
    assert loss.vgg is None
    target = torch.rand(1, 3, 16, 16)
    result = optimize_image(
        loss, torch.rand(1, 3, 16, 16), content=target, iterations=10, progress=False
    )
    assert result.history[-1]["total"] < result.history[0]["total"]
