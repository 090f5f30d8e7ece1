"""The first stylize command: any size in, same size out, never overwrite."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from stylenet.images import load_image
from stylenet.model_file import save_model
from stylenet.models import TransformerNet
from stylenet.stylize import main, pad_to_multiple, stylize_tensor


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> str:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_model(TransformerNet(base_channels=8, num_residual_blocks=1), path)
    return str(path)


@pytest.mark.parametrize(("h", "w"), [(33, 51), (8, 8), (5, 3), (64, 64), (1, 17)])
def test_pad_and_crop_keep_the_size(h: int, w: int) -> None:
    x = torch.rand(1, 3, h, w)
    padded, size = pad_to_multiple(x)
    assert size == (h, w)
    assert padded.shape[-2] % 4 == 0 and padded.shape[-1] % 4 == 0
    assert padded.shape[-2] >= 8 and padded.shape[-1] >= 8
    torch.testing.assert_close(padded[..., :h, :w], x)  # the photo itself is untouched
    net = TransformerNet(base_channels=4, num_residual_blocks=1).eval()
    assert stylize_tensor(net, x).shape == x.shape


def test_cli_stylizes_to_the_same_size(tmp_path, model_path) -> None:
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (57, 35), (200, 30, 30)).save(photo)
    out = tmp_path / "out" / "styled.png"
    assert main([model_path, str(photo), "-o", str(out)]) == 0
    assert load_image(out).size == (57, 35)


def test_cli_never_overwrites(tmp_path, model_path, capsys) -> None:
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (16, 16), (0, 90, 30)).save(photo)
    before = photo.read_bytes()
    with pytest.raises(SystemExit):
        main([model_path, str(photo), "-o", str(photo)])
    assert photo.read_bytes() == before
    out = tmp_path / "exists.png"
    out.write_bytes(b"keep me")
    with pytest.raises(SystemExit):
        main([model_path, str(photo), "-o", str(out)])
    assert out.read_bytes() == b"keep me"
    assert "--overwrite" in capsys.readouterr().err
    assert main([model_path, str(photo), "-o", str(out), "--overwrite"]) == 0
    assert load_image(out).size == (16, 16)


def test_cli_reports_bad_inputs(tmp_path, model_path, capsys) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    assert main([model_path, str(bad), "-o", str(tmp_path / "o.png")]) == 1
    assert "bad.jpg" in capsys.readouterr().err
    photo = tmp_path / "p.png"
    Image.new("RGB", (16, 16)).save(photo)
    assert main([str(tmp_path / "missing.pt"), str(photo), "-o", str(tmp_path / "o.png")]) == 2
    assert "missing.pt" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()
