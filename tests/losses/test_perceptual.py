"""PerceptualLoss: named, weighted terms over one VGG pass; style targets computed once; a loss
without VGG terms builds no VGG; the VGG stays frozen."""

from __future__ import annotations

import math

import pytest
import torch

import stylenet.losses.perceptual as perceptual_module
from stylenet.errors import ConfigError
from stylenet.losses import (
    PerceptualLoss,
    VGG16Features,
    content_loss,
    gram_matrix,
    pixel_loss,
    style_loss,
    total_variation,
)


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
    assert not any("gram" in k for k in loss.state_dict())  # recomputed, not checkpointed

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


def test_the_terms_are_the_functional_formulas_bit_for_bit(random_vgg: VGG16Features) -> None:
    # The numbers PerceptualLoss returned before its terms became modules (the same operations
    # in the same order), for several styles with per-style scales: exactly equal.
    torch.manual_seed(0)
    layers = {"relu1_2": 1.0, "relu3_3": 0.5}
    loss = PerceptualLoss(
        content_layers=["relu2_2"],
        style_layers=layers,
        content_weight=2.0,
        style_weight=3.0,
        tv_weight=4.0,
        pixel_weight=5.0,
        vgg=random_vgg,
    )
    styles = [torch.rand(3, 40, 48), torch.rand(3, 32, 32)]
    loss.set_styles(styles, [1.0, 3.0])
    output, target, index = (
        torch.rand(3, 3, 32, 32),
        torch.rand(3, 3, 32, 32),
        torch.tensor([1, 0, 1]),
    )
    terms = loss(output, target, index)

    out, tgt = random_vgg(output), random_vgg(target)
    grams = {n: torch.cat([gram_matrix(random_vgg(s[None])[n]) for s in styles]) for n in layers}
    scales = torch.tensor([1.0, 3.0])[index]
    expected = {
        "content": 2.0 * torch.stack([content_loss(out["relu2_2"], tgt["relu2_2"])]).sum(),
        "style": 3.0
        * torch.stack(
            [
                w * style_loss(gram_matrix(out[n]), grams[n][index], scales)
                for n, w in layers.items()
            ]
        ).sum(),
        "tv": 4.0 * total_variation(output),
        "pixel": 5.0 * pixel_loss(output, target),
    }
    expected["total"] = torch.stack(list(expected.values())).sum()
    assert list(terms) == [
        "content",
        "style",
        "tv",
        "pixel",
        "total",
    ]  # no network: no noise/motion
    for name, value in expected.items():
        assert torch.equal(terms[name], value), name


def test_one_vgg_pass_on_the_output_and_one_on_the_target(random_vgg: VGG16Features) -> None:
    calls: list[list[str]] = []
    hook = random_vgg.register_forward_hook(
        lambda module, args, kwargs, out: calls.append(sorted(out)), with_kwargs=True
    )
    try:
        loss = PerceptualLoss(
            content_layers=["relu2_2"], style_layers=["relu1_2", "relu3_3"], vgg=random_vgg
        )
        loss.set_style(torch.rand(3, 32, 32))
        calls.clear()
        loss(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
        assert calls == [["relu1_2", "relu2_2", "relu3_3"], ["relu2_2"]]
        calls.clear()  # no content term: no pass on the target
        style_only = PerceptualLoss(
            content_weight=0.0, style_layers=["relu1_2", "relu3_3"], vgg=random_vgg
        )
        style_only.set_style(torch.rand(3, 32, 32))
        calls.clear()
        terms = style_only(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
        assert calls == [["relu1_2", "relu3_3"]]
        assert terms["content"] == 0  # still reported, as every loss dict has it
    finally:
        hook.remove()


def test_a_loss_without_vgg_terms_builds_no_vgg(monkeypatch: pytest.MonkeyPatch) -> None:
    # The pixel-loss baseline (super-resolution): content and style off.
    def no_vgg(*args: object, **kwargs: object) -> None:
        raise AssertionError("a VGG was built")

    monkeypatch.setattr(perceptual_module, "VGG16Features", no_vgg)
    for vgg in (None, no_vgg):
        loss = PerceptualLoss(
            content_weight=0, style_weight=0, tv_weight=0.5, pixel_weight=1, vgg=vgg
        )
        assert loss.vgg is None and list(loss.terms) == ["tv", "pixel"]
    loss.set_style(torch.rand(3, 16, 16))  # nothing to compare: no Grams, no VGG
    output, target = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    terms = loss(output, target)
    assert list(terms) == ["content", "style", "tv", "pixel", "total"]
    assert terms["content"] == 0 and terms["style"] == 0
    assert torch.equal(terms["pixel"], pixel_loss(output, target))
    assert torch.equal(terms["tv"], 0.5 * total_variation(output))
    with pytest.raises(RuntimeError, match="no style term"):
        loss.target_gram("relu1_2")


def test_the_vgg_stays_frozen_and_out_of_the_state_dict(random_vgg: VGG16Features) -> None:
    loss = PerceptualLoss(
        style_layers=["relu1_2", "relu3_3"], tv_weight=1.0, pixel_weight=1.0, vgg=random_vgg
    )
    loss.set_style(torch.rand(3, 32, 32))
    loss.train()
    assert loss.vgg is random_vgg and not loss.vgg.training
    assert not any(p.requires_grad for p in loss.parameters())  # the terms add none
    assert loss.state_dict() == {}  # no VGG weights, no Grams: nothing to checkpoint
