"""`stylenet.load(path)`: one callable for PIL images, files and tensors; colour and strength;
large photos tiled before they outgrow the free memory."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

import stylenet
from stylenet.errors import ConfigError
from stylenet.inference import api
from stylenet.inference.export import export_torchscript
from stylenet.inference.model_file import load_model
from tests.helpers import photo


def test_api_accepts_pil_paths_and_tensors(tmp_path, model_path) -> None:
    stylize = stylenet.load(model_path, device="cpu")
    src = photo(tmp_path / "p.jpg", size=(45, 30))
    from_path = stylize(src)
    from_pil = stylize(Image.open(src))
    assert from_path.size == from_pil.size == (45, 30)
    assert np.array_equal(np.asarray(from_path), np.asarray(from_pil))
    batch = torch.rand(2, 3, 30, 45)
    out = stylize(batch)
    assert out.shape == batch.shape and out.device == batch.device
    assert stylize(batch[0]).shape == (3, 30, 45)
    torch.testing.assert_close(stylize(batch, strength=0.0), batch)
    gray = torch.full((1, 3, 16, 16), 0.5)
    assert stylize(gray, preserve_color=True).std(dim=1).max() < 1e-3  # gray stays gray


@pytest.mark.slow
def test_compiled_backend_matches_eager(model_path) -> None:
    x = torch.rand(1, 3, 36, 44)
    eager = stylenet.load(model_path, device="cpu")(x)
    compiled = stylenet.load(model_path, device="cpu", compile=True)
    assert compiled.backend.compiled
    torch.testing.assert_close(compiled(x), eager, atol=1e-4, rtol=0)


def test_a_photo_too_large_for_the_free_memory_is_tiled(
    tmp_path, model_path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    stylize = stylenet.load(model_path, device="cpu")
    img = Image.open(photo(tmp_path / "p.png", size=(300, 200)))
    need = stylize.untiled_bytes(200, 300)
    assert need == 200 * 300 * 8 * 32  # 8 base channels, 32 bytes per pixel and channel
    monkeypatch.setattr(api, "free_memory", lambda device: need)  # half of it may be used
    assert stylize.needs_tiling(200, 300) and stylize.batch_capacity(200, 300) == 0
    with caplog.at_level(logging.WARNING, logger="stylenet.inference.api"):
        out = stylize(img)
    assert out.size == img.size
    assert "needs more memory untiled than is free" in caplog.text
    monkeypatch.setattr(api, "free_memory", lambda device: 4 * need)
    assert not stylize.needs_tiling(200, 300) and stylize.batch_capacity(200, 300) == 2


def test_an_export_that_would_need_tiling_is_refused(
    tmp_path, model_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exported = tmp_path / "m.torchscript.pt"
    export_torchscript(load_model(model_path), exported)
    stylize = stylenet.load(exported, device="cpu")
    assert not stylize.can_tile
    monkeypatch.setattr(api, "free_memory", lambda device: 0)
    with pytest.raises(ConfigError, match="tiling needs the network's instance-norm layers"):
        stylize(Image.open(photo(tmp_path / "p.png", size=(64, 48))))
