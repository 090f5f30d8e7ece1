"""PerceptualLoss: named, weighted terms; style targets computed once."""

from __future__ import annotations

import pytest
import torch

from stylenet.losses import PerceptualLoss, VGG16Features, gram_matrix, style_loss


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
