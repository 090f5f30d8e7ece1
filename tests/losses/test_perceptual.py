"""PerceptualLoss: named, weighted terms; style targets computed once."""

from __future__ import annotations

import math

import pytest
import torch

from stylenet.errors import ConfigError
from stylenet.losses import PerceptualLoss, VGG16Features, gram_matrix, style_loss
from stylenet.losses.functional import content_loss


@pytest.fixture(scope="module")
def random_vgg() -> VGG16Features:
    with pytest.warns(UserWarning, match="RANDOMLY INITIALIZED"):
        return VGG16Features(["relu1_2", "relu2_2", "relu3_3"], weights="random")


def test_perceptual_loss_terms_and_targets(random_vgg: VGG16Features) -> None:
    loss = PerceptualLoss(
        content_layers=["relu2_2"],
        style_layers={"relu1_2": 1.0, "relu3_3": 0.5},
        content_weight=2.0,
        style_weight=3.0,
        tv_weight=4.0,
        pixel_weight=5.0,
        vgg=random_vgg,
    )
    style = torch.rand(3, 40, 48)
    loss.set_style(style)
    assert loss.target_gram("relu1_2").shape == (1, 64, 64)
    assert "gram_relu1_2" not in loss.state_dict()  # targets are recomputed, not checkpointed

    x = torch.rand(2, 3, 32, 32)
    terms = loss(x, x)
    assert set(terms) == {"content", "style", "tv", "pixel", "total"}
    assert terms["content"] == 0 and terms["pixel"] == 0
    total = terms["content"] + terms["style"] + terms["tv"] + terms["pixel"]
    torch.testing.assert_close(terms["total"], total)
    # The style term is the weighted sum of per-layer Gram distances.
    feats = random_vgg(x)
    expected = 3.0 * (
        style_loss(gram_matrix(feats["relu1_2"]), loss.target_gram("relu1_2"))
        + 0.5 * style_loss(gram_matrix(feats["relu3_3"]), loss.target_gram("relu3_3"))
    )
    torch.testing.assert_close(terms["style"], expected)
    # The style image itself has zero style loss.
    assert loss(style.unsqueeze(0)[..., :32, :32], x[:1])["style"] > 0
    assert loss(style.unsqueeze(0), style.unsqueeze(0))["style"].item() == pytest.approx(
        0.0, abs=1e-6
    )


def test_the_content_target_pass_stops_at_the_content_layer(random_vgg: VGG16Features) -> None:
    loss = PerceptualLoss(
        content_layers=["relu2_2"], style_layers=["relu1_2", "relu3_3"], vgg=random_vgg
    )
    loss.set_style(torch.rand(3, 32, 32))
    batches: list[int] = []
    hook = random_vgg.features.relu3_3.register_forward_hook(
        lambda module, args, out: batches.append(out.shape[0])
    )
    try:
        output, photos = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
        terms = loss(output, photos)
    finally:
        hook.remove()
    assert batches == [2]  # relu3_3 ran once: for the output, not for the photos
    expected = content_loss(random_vgg(output)["relu2_2"], random_vgg(photos)["relu2_2"])
    torch.testing.assert_close(terms["content"], expected)


@pytest.mark.parametrize(
    "kwargs",
    [{"style_weight": -1.0}, {"tv_weight": math.nan}, {"style_layers": {"relu1_2": -0.5}}],
)
def test_negative_or_nan_weights_are_refused(random_vgg: VGG16Features, kwargs) -> None:
    with pytest.raises(ConfigError, match="loss weights must be finite and >= 0"):
        PerceptualLoss(vgg=random_vgg, **kwargs)


def test_several_styles_each_image_against_its_own(random_vgg: VGG16Features) -> None:
    loss = PerceptualLoss(style_layers=["relu1_2", "relu2_2"], vgg=random_vgg)
    styles = [torch.rand(3, 32, 40), torch.rand(3, 24, 24), torch.rand(3, 48, 32)]
    loss.set_styles(styles)
    assert loss.target_gram("relu1_2").shape == (3, 64, 64)
    x = torch.rand(2, 3, 32, 32)
    both = loss(x, x, torch.tensor([2, 0]))["style"]
    one = PerceptualLoss(style_layers=["relu1_2", "relu2_2"], vgg=random_vgg)
    singles = []
    for k, img in ((2, 0), (0, 1)):
        one.set_style(styles[k])
        singles.append(one(x[img : img + 1], x[img : img + 1])["style"])
    torch.testing.assert_close(both, torch.stack(singles).mean())  # the batch mean
    with pytest.raises(ValueError, match=r"3 styles are set: pass style_index"):
        loss(x, x)
    # A per-style weight scales each image's style term by its own style's factor.
    scaled = PerceptualLoss(style_layers=["relu1_2", "relu2_2"], vgg=random_vgg)
    scaled.set_styles(styles, [1.0, 1.0, 3.0])
    expected = (3.0 * singles[0] + singles[1]) / 2
    torch.testing.assert_close(scaled(x, x, torch.tensor([2, 0]))["style"], expected)
    with pytest.raises(ConfigError, match=r"style scales must be 3 finite numbers >= 0"):
        scaled.set_styles(styles, [1.0, -1.0, 1.0])


def test_perceptual_loss_needs_a_style(random_vgg: VGG16Features) -> None:
    loss = PerceptualLoss(vgg=random_vgg, style_layers=["relu1_2"], content_layers=["relu2_2"])
    with pytest.raises(RuntimeError, match="set_style"):
        loss(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))


def test_perceptual_loss_builds_vgg_from_a_factory() -> None:
    seen = {}

    def factory(layers):
        seen["layers"] = layers
        return VGG16Features(layers, weights="random")

    with pytest.warns(UserWarning):
        PerceptualLoss(content_layers=["relu2_2"], style_layers=["relu1_2", "relu2_2"], vgg=factory)
    assert seen["layers"] == ["relu2_2", "relu1_2"]
