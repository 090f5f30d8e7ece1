"""Model files: written atomically, detected by content, loaded without unpickling code."""

from __future__ import annotations

import pytest
import torch

import stylenet
from stylenet.inference.model_card import ModelCard, StyleRecord
from stylenet.inference.model_file import (
    ModelFileError,
    detect_format,
    load_model,
    read_card,
    save_model,
)
from stylenet.models import TransformerNet


def test_model_file_round_trip(tmp_path) -> None:
    net = TransformerNet(base_channels=8, num_residual_blocks=2)
    card = ModelCard(network="", styles=(StyleRecord("x", "/p/x.jpg", 64),), loss={"a": 1})
    path = save_model(net, tmp_path / "sub" / "model.pt", card=card)
    assert detect_format(path) == "stylenet"
    read = read_card(path)
    assert read == card.replace(
        network="TransformerNet",
        config={"base_channels": 8, "num_residual_blocks": 2, "num_styles": 1},
    )
    assert read.version == 2 and read.stylenet_version == stylenet.__version__
    loaded = load_model(path)
    assert loaded.config.to_dict() == {"base_channels": 8, "num_residual_blocks": 2}
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net.eval()(x))
    assert not list(tmp_path.glob("sub/*.tmp"))  # atomic write leaves no temp file


def test_model_file_rejects_other_files(tmp_path) -> None:
    with pytest.raises(ModelFileError, match=r"missing\.pt: no such file"):
        load_model(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(ModelFileError, match=r"junk\.pt"):
        load_model(junk)
    other = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(2)}, other)
    with pytest.raises(ModelFileError, match="not a stylenet model file"):
        load_model(other)
