"""Loss functions, the VGG-16/VGG-19 loss networks and the PerceptualLoss module."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stylenet.losses import (
    VGG16_LAYERS,
    VGG19_LAYERS,
    InputNormalization,
    PerceptualLoss,
    VGG16Features,
    VGGFeatures,
    content_loss,
    gram_matrix,
    pixel_loss,
    style_loss,
    total_variation,
)
from stylenet.losses.vgg import CAFFE, TORCHVISION


@pytest.fixture(scope="module")
def random_vgg() -> VGG16Features:
    with pytest.warns(UserWarning, match="RANDOMLY INITIALIZED"):
        return VGG16Features(["relu1_2", "relu2_2", "relu3_3"], weights="random")


def test_gram_matrix_matches_naive_loop() -> None:
    torch.manual_seed(0)
    f = torch.randn(2, 3, 4, 5)
    b, c, h, w = f.shape
    expected = torch.zeros(b, c, c)
    for n in range(b):
        for i in range(c):
            for j in range(c):
                total = 0.0
                for y in range(h):
                    for x in range(w):
                        total += float(f[n, i, y, x] * f[n, j, y, x])
                expected[n, i, j] = total / (c * h * w)
    torch.testing.assert_close(gram_matrix(f), expected, rtol=1e-5, atol=1e-6)


def test_losses_are_zero_for_identical_inputs() -> None:
    x = torch.rand(2, 8, 6, 6)
    g = gram_matrix(x)
    assert content_loss(x, x.clone()) == 0
    assert style_loss(g, g.clone()) == 0
    assert pixel_loss(x, x.clone()) == 0
    assert total_variation(torch.full((1, 3, 5, 5), 0.3)) == 0


def test_losses_match_their_definitions() -> None:
    x, y = torch.zeros(2, 4, 3, 3), torch.full((2, 4, 3, 3), 0.5)
    assert content_loss(x, y).item() == pytest.approx(0.25)  # mean of 0.5²
    g1, g2 = torch.zeros(2, 3, 3), torch.ones(1, 3, 3)
    assert style_loss(g1, g2).item() == pytest.approx(9.0)  # squared Frobenius, batch mean


def test_total_variation_on_known_image() -> None:
    # Vertical stripes 0,1,0,1: every horizontal neighbour differs by 1, vertical ones by 0.
    img = torch.tensor([0.0, 1.0, 0.0, 1.0]).repeat(1, 3, 4, 1)  # (1, 3, 4, 4)
    assert total_variation(img).item() == pytest.approx(1.0)
    # A ramp 0, .25, .5, .75 down the rows: vertical steps of .25, horizontal 0.
    ramp = torch.linspace(0, 0.75, 4).view(1, 1, 4, 1).expand(1, 3, 4, 4)
    assert total_variation(ramp).item() == pytest.approx(0.0625)


def test_layer_names_follow_torchvision_features() -> None:
    assert VGG16_LAYERS[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert VGG16_LAYERS.index("relu2_2") == 8
    assert VGG16_LAYERS.index("relu3_3") == 15
    assert VGG16_LAYERS.index("relu4_3") == 22
    assert VGG16_LAYERS[-1] == "pool5" and len(VGG16_LAYERS) == 31


def test_vgg_returns_named_layers_and_truncates(random_vgg: VGG16Features) -> None:
    feats = random_vgg(torch.rand(1, 3, 32, 32))
    assert list(feats) == ["relu1_2", "relu2_2", "relu3_3"]
    assert feats["relu1_2"].shape == (1, 64, 32, 32)
    assert feats["relu2_2"].shape == (1, 128, 16, 16)
    assert feats["relu3_3"].shape == (1, 256, 8, 8)
    assert list(random_vgg.features.named_children())[-1][0] == "relu3_3"


def test_unknown_layer_name_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"unknown VGG-16 layer.*relu9_9.*valid names"):
        VGG16Features(["relu2_2", "relu9_9"], weights="random")


def test_vgg_is_frozen_and_stays_in_eval(random_vgg: VGG16Features) -> None:
    holder = nn.Sequential(nn.Conv2d(3, 3, 1), random_vgg)
    holder.train()
    assert not random_vgg.training
    assert all(not m.training for m in random_vgg.modules())
    assert not any(p.requires_grad for p in random_vgg.parameters())
    # Gradients still flow through it to its input.
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    random_vgg(x)["relu1_2"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_vgg_is_kept_out_of_state_dicts(random_vgg: VGG16Features) -> None:
    holder = nn.ModuleDict({"net": nn.Conv2d(3, 3, 1), "vgg": random_vgg})
    state = holder.state_dict()
    assert set(state) == {"net.weight", "net.bias"}
    # ... and such a state dict loads strictly, leaving the VGG weights as they are.
    before = random_vgg.features.conv1_1.weight.clone()
    holder.load_state_dict(state, strict=True)
    assert torch.equal(random_vgg.features.conv1_1.weight, before)


def test_vgg_normalizes_inside(random_vgg: VGG16Features) -> None:
    assert random_vgg.mean.flatten().tolist() == pytest.approx([0.485, 0.456, 0.406])
    assert random_vgg.std.flatten().tolist() == pytest.approx([0.229, 0.224, 0.225])
    x = torch.rand(1, 3, 8, 8)
    x_before = x.clone()
    random_vgg(x)
    assert torch.equal(x, x_before)  # never mutates its input


def test_real_vgg_loads_from_env_and_discriminates(vgg16_weights: str) -> None:
    vgg = VGG16Features(["relu5_3"])
    assert "STYLENET_VGG16_WEIGHTS" in vgg.weights_source
    assert vgg.features.conv1_1.weight.std().item() == pytest.approx(0.251, abs=0.01)
    explicit = VGG16Features(["relu1_1"], weights=vgg16_weights)
    assert explicit.weights_source.startswith("loss.vgg.weights=")


def test_missing_weights_give_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("STYLENET_VGG16_WEIGHTS", str(tmp_path / "nope.safetensors"))
    with pytest.raises(FileNotFoundError, match="STYLENET_VGG16_WEIGHTS"):
        VGG16Features(["relu1_1"])


def test_offline_download_failure_names_the_remedies(tmp_path, monkeypatch) -> None:
    from stylenet.losses import vgg as vgg_module

    monkeypatch.delenv("STYLENET_VGG16_WEIGHTS", raising=False)
    monkeypatch.setenv("STYLENET_CACHE", str(tmp_path / "cache"))

    def no_network(*args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(vgg_module.torch.hub, "load_state_dict_from_url", no_network)
    with pytest.raises(vgg_module.WeightsUnavailableError) as err:
        VGG16Features(["relu1_1"])
    assert "STYLENET_VGG16_WEIGHTS" in str(err.value)
    assert "stylenet-weights" in str(err.value)


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


# --- VGG-19 and input conventions ----------------------------------------------------------

# The `input` metadata sentences of the two weight files in ../shared/data (read from them).
CAFFE_TEXT = (
    "RGB 0-255 minus mean [123.68,116.779,103.939] "
    "(Caffe/Keras convention, first layer flipped BGR->RGB)"
)
TORCHVISION_TEXT = "RGB in [0,1] normalized by mean (0.485,0.456,0.406) std (0.229,0.224,0.225)"


def test_vgg19_layer_names() -> None:
    assert len(VGG19_LAYERS) == 37 and VGG19_LAYERS[-1] == "pool5"
    assert {"relu3_4", "relu4_2", "relu5_4"} <= set(VGG19_LAYERS)
    assert "relu3_4" not in VGG16_LAYERS
    # torchvision's vgg19().features indices of Gatys' layers
    assert [VGG19_LAYERS.index(n) for n in ("relu1_1", "relu4_2", "relu5_1")] == [1, 22, 29]


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"input": CAFFE_TEXT}, CAFFE),
        ({"input": TORCHVISION_TEXT}, TORCHVISION),
        ({"input_convention": "caffe", "input": TORCHVISION_TEXT}, CAFFE),  # the key wins
        ({}, None),
    ],
)
def test_input_convention_is_read_from_the_weights_description(metadata, expected) -> None:
    assert InputNormalization.from_metadata(metadata, "w.safetensors") == expected


def test_other_described_conventions_are_kept_or_refused() -> None:
    bgr = InputNormalization.from_metadata(
        {"input": "BGR 0-255 minus mean [103.939,116.779,123.68]"}, "w"
    )
    assert (bgr.name, bgr.channels, bgr.scale) == ("custom", "BGR", 255.0)
    assert bgr.mean == (103.939, 116.779, 123.68) and bgr.std == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"w\.safetensors.*input range"):
        InputNormalization.from_metadata({"input": "RGB, mean (1,2,3)"}, "w.safetensors")
    with pytest.raises(ValueError, match="unknown input convention 'bgr'"):
        InputNormalization.from_metadata({"input_convention": "bgr"}, "w")


def test_a_vgg19_file_without_a_description_is_refused(tmp_path) -> None:
    from stylenet.losses.vgg import _file_convention

    path = tmp_path / "vgg19.pth"
    torch.save({}, path)
    with pytest.raises(ValueError, match=r"vgg19\.pth.*input_convention"):
        _file_convention(path, "vgg19")
    assert _file_convention(path, "vgg16") == TORCHVISION  # torchvision's layout and convention


def test_caffe_convention_is_applied_inside() -> None:
    with pytest.warns(UserWarning, match="RANDOMLY"):
        vgg = VGGFeatures(["relu1_1"], arch="vgg19", weights="random", input_convention="caffe")
    x = torch.rand(1, 3, 4, 4)
    expected = x * 255 - torch.tensor(CAFFE.mean).view(1, 3, 1, 1)
    torch.testing.assert_close((x - vgg.mean) / vgg.std, expected)
    with pytest.raises(ValueError, match=r"unknown VGG-19 layer.*relu9_9"):
        VGGFeatures(["relu9_9"], arch="vgg19", weights="random")


def test_real_vgg19_uses_its_described_convention_and_discriminates(
    vgg19_weights, photo_dir
) -> None:
    from stylenet.images import load_image_tensor

    names = ("chelsea", "coffee", "astronaut", "china", "rocket")
    photos = {n: next(photo_dir.glob(f"{n}.*")) for n in names}
    images = {n: load_image_tensor(p, size=96)[None, :, :64, :64] for n, p in photos.items()}
    query = images["chelsea"][..., 4:60, 2:62].flip(-1)  # crop + mirror of one gallery photo

    def similarities(vgg: VGGFeatures) -> dict[str, float]:
        q = vgg(query)["relu5_4"].mean(dim=(2, 3))
        return {
            n: torch.cosine_similarity(q, vgg(x)["relu5_4"].mean(dim=(2, 3))).item()
            for n, x in images.items()
        }

    vgg = VGGFeatures(["relu5_4"], arch="vgg19")  # weights from STYLENET_VGG19_WEIGHTS
    assert vgg.input_normalization == CAFFE
    assert "STYLENET_VGG19_WEIGHTS" in vgg.weights_source
    right = similarities(vgg)
    others = max(v for n, v in right.items() if n != "chelsea")
    assert right["chelsea"] > 0.8 and others < right["chelsea"] - 0.3, right
    # Fed the wrong convention, the same weights tell the photos apart far less well.
    wrong = similarities(VGGFeatures(["relu5_4"], arch="vgg19", input_convention="torchvision"))
    assert max(v for n, v in wrong.items() if n != "chelsea") > others + 0.2, wrong


def test_bgr_convention_normalizes_in_the_networks_channel_order(monkeypatch) -> None:
    from stylenet.losses import vgg as vgg_module

    # A file described as "BGR 0-255 minus mean [103.939,116.779,123.68]": mean in BGR order.
    bgr = InputNormalization("custom", 255.0, (103.939, 116.779, 123.68), channels="BGR")
    monkeypatch.setitem(vgg_module.CONVENTIONS, "bgr-test", bgr)
    with pytest.warns(UserWarning, match="RANDOMLY"):
        vgg = VGGFeatures(["conv1_1"], arch="vgg16", weights="random", input_convention="bgr-test")
    x = torch.rand(1, 3, 6, 6)
    expected = vgg.features.conv1_1(x.flip(1) * 255 - torch.tensor(bgr.mean).view(1, 3, 1, 1))
    torch.testing.assert_close(vgg(x)["conv1_1"], expected, rtol=1e-4, atol=1e-3)
