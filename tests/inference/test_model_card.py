"""The model card: one typed record written with every model and read back the same; files
written before cards load, describe themselves and stylize bit-identically."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import stylenet
from stylenet.inference.model_card import CARD_VERSION, CardError, ModelCard, StyleRecord
from stylenet.inference.model_file import ModelFileError, load_network, read_card, save_model
from stylenet.models import SuperResolutionNet, TransformerNet
from tests.helpers import save_tiny_multistyle_model, tiny_net


def test_a_card_round_trips_through_plain_data(tmp_path: Path) -> None:
    card = ModelCard(
        network="TransformerNet",
        config={"base_channels": 8, "num_residual_blocks": 1, "num_styles": 2},
        styles=(StyleRecord("a", "/p/a.jpg", 256, 1.5), StyleRecord("b")),
        loss={"content_weight": 1.0, "style_layers": {"relu1_2": 1.0}},
    )
    data = card.to_dict()
    assert json.loads(json.dumps(data)) == data  # plain data: JSON and weights_only both read it
    assert ModelCard.from_dict(data) == card
    assert card.style_names(2) == ["a", "b"] and card.style_names(3) == ["0", "1", "2"]


def test_cards_that_cannot_be_read_say_why() -> None:
    with pytest.raises(CardError, match="newer than this stylenet"):
        ModelCard.from_dict({"network": "TransformerNet", "version": CARD_VERSION + 1})
    with pytest.raises(CardError, match="task 'colorize'"):
        ModelCard.from_dict({"network": "X", "task": "colorize"})
    with pytest.raises(CardError, match="malformed"):
        ModelCard.from_dict({"network": "TransformerNet", "training": {"epochs": 3}})


def test_the_file_stores_the_networks_own_name_config_and_scale(tmp_path: Path) -> None:
    torch.manual_seed(0)
    sr = SuperResolutionNet(scale=4, channels=8, num_residual_blocks=1)
    path = save_model(sr, tmp_path / "sr.pt", card=ModelCard(network="wrong", task="superres"))
    net, card = load_network(path)
    assert isinstance(net, SuperResolutionNet)
    assert (card.network, card.task, card.scale) == ("SuperResolutionNet", "superres", 4)
    assert card.stylenet_version == stylenet.__version__
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        assert torch.equal(net(x), sr.eval()(x))
    payload = torch.load(path, weights_only=True)
    payload["card"]["network"] = "ColorizeNet"
    torch.save(payload, tmp_path / "other.pt")
    with pytest.raises(ModelFileError, match="a ColorizeNet network; this stylenet builds"):
        load_network(tmp_path / "other.pt")


# What stylenet-train wrote into a model file's free metadata dict before model cards.
LEGACY_LOSS = {
    "_target_": "stylenet.losses.PerceptualLoss",
    "content_layers": ["relu2_2"],
    "style_layers": {"relu1_2": 1.0, "relu2_2": 1.0, "relu3_3": 1.0, "relu4_3": 1.0},
    "content_weight": 1.0,
    "style_weight": 0.5,
    "tv_weight": 10.0,
    "pixel_weight": 0.0,
    "vgg": {"_target_": "stylenet.losses.VGG16Features", "_partial_": True, "weights": None},
}
LEGACY_STYLES = ["mosaic", "candy", "udnie"]


def write_legacy_model(path: Path, net: TransformerNet, metadata: dict) -> Path:
    """`net` in the file layout stylenet wrote before model cards (format
    "stylenet.TransformerNet" version 1, as `save_model` wrote it up to commit 11a58e3): its
    config, state dict and a free metadata dict."""
    payload = {
        "format": "stylenet.TransformerNet",
        "format_version": 1,
        "config": net.config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
        "metadata": metadata,
    }
    torch.save(payload, path)
    return path


@pytest.fixture
def legacy(tmp_path: Path) -> dict[str, tuple[Path, TransformerNet]]:
    """A one-style and a 3-style legacy model file, with the networks they were written from."""
    common = {"style_image": "/data/styles/mosaic.jpg", "style_size": 256, "image_size": 128}
    one = tiny_net()
    one_meta = {**common, "loss": LEGACY_LOSS, "global_step": 1000}
    _, multi = save_tiny_multistyle_model(tmp_path / "multi", LEGACY_STYLES)
    styles = [
        {"name": n, "image": f"/data/styles/{n}.jpg", "size": 256, "style_scale": 1.0}
        for n in LEGACY_STYLES
    ]
    multi_meta = {**common, "loss": LEGACY_LOSS, "global_step": 600, "styles": styles}
    return {
        "one": (write_legacy_model(tmp_path / "legacy_one.pt", one, one_meta), one),
        "multi": (write_legacy_model(tmp_path / "legacy_multi.pt", multi, multi_meta), multi),
    }


def test_a_model_file_written_before_cards_loads_and_stylizes_bit_identically(legacy) -> None:
    (one_path, one), (multi_path, multi_net) = legacy["one"], legacy["multi"]
    x = torch.rand(2, 3, 20, 24, generator=torch.Generator().manual_seed(1))
    net, card = load_network(one_path)
    assert isinstance(net, TransformerNet) and card.version == 1
    assert card.styles == (StyleRecord("mosaic", "/data/styles/mosaic.jpg", 256),)
    assert (card.training.global_step, card.training.image_size) == (1000, 128)
    assert card.loss["style_weight"] == 0.5 and card.task == "style"
    with torch.no_grad():
        expected = one(x)
        assert torch.equal(net(x), expected)
    # Through the public API too, which pads and crops around the network.
    stylize = stylenet.load(one_path, device="cpu")
    assert torch.equal(stylize(x), expected)

    multi = stylenet.load(multi_path, device="cpu", style="candy")
    assert multi.styles == LEGACY_STYLES
    for i, name in enumerate(LEGACY_STYLES):
        with torch.no_grad():
            expected = multi_net(x, torch.eye(3)[[i, i]])
        assert torch.equal(multi.with_style(name)(x), expected), name


def test_a_legacy_file_is_written_back_with_a_card(legacy, tmp_path: Path) -> None:
    legacy_path = legacy["multi"][0]
    net, card = load_network(legacy_path)
    path = save_model(net, tmp_path / "model.pt", card=card)
    again = read_card(path)
    assert again.style_names(3) == LEGACY_STYLES
    assert again.config == {"base_channels": 8, "num_residual_blocks": 1, "num_styles": 3}
    assert read_card(legacy_path).config == again.config


def test_default_card_of_a_bare_save(tmp_path: Path) -> None:
    card = read_card(save_model(tiny_net(), tmp_path / "m.pt"))
    assert (card.network, card.task, card.styles, card.loss) == ("TransformerNet", "style", (), {})
