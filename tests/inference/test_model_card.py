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
from tests.helpers import tiny_net

FIXTURES = Path(__file__).parents[1] / "fixtures"


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


def test_a_model_file_written_before_cards_loads_and_stylizes_bit_identically() -> None:
    outputs = torch.load(FIXTURES / "legacy_outputs.pt", weights_only=True)
    net, card = load_network(FIXTURES / "legacy_one_style.pt")
    assert isinstance(net, TransformerNet) and card.version == 1
    assert card.styles == (StyleRecord("mosaic", "/data/styles/mosaic.jpg", 256),)
    assert (card.training.global_step, card.training.image_size) == (1000, 128)
    assert card.loss["style_weight"] == 0.5 and card.task == "style"
    with torch.no_grad():
        assert torch.equal(net(outputs["input"]), outputs["one_style"])
    # Through the public API too, which pads and crops around the network.
    stylize = stylenet.load(FIXTURES / "legacy_one_style.pt", device="cpu")
    assert torch.equal(stylize(outputs["input"]), outputs["one_style"])

    multi = stylenet.load(FIXTURES / "legacy_multi_style.pt", device="cpu", style="candy")
    assert multi.styles == ["mosaic", "candy", "udnie"]
    for name, expected in outputs["multi_style"].items():
        assert torch.equal(multi.with_style(name)(outputs["input"]), expected), name


def test_a_legacy_file_is_written_back_with_a_card(tmp_path: Path) -> None:
    net, card = load_network(FIXTURES / "legacy_multi_style.pt")
    path = save_model(net, tmp_path / "model.pt", card=card)
    again = read_card(path)
    assert again.style_names(3) == ["mosaic", "candy", "udnie"]
    assert again.config == {"base_channels": 8, "num_residual_blocks": 1, "num_styles": 3}
    assert read_card(FIXTURES / "legacy_multi_style.pt").config == again.config


def test_default_card_of_a_bare_save(tmp_path: Path) -> None:
    card = read_card(save_model(tiny_net(), tmp_path / "m.pt"))
    assert (card.network, card.task, card.styles, card.loss) == ("TransformerNet", "style", (), {})
