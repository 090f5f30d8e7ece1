"""`stylenet.load(path)`: one callable for PIL images, files and tensors; colour and strength;
large photos tiled before they outgrow the free memory; super-resolution models (×scale outputs,
histogram matching, no style options)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import stylenet
from stylenet.errors import ConfigError
from stylenet.inference import api, color
from stylenet.inference.export import export_onnx, export_torchscript
from stylenet.inference.model_card import ModelCard
from stylenet.inference.model_file import load_model
from tests.helpers import photo, save_tiny_sr_model


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
    assert "1 photo(s) of" in caplog.text and "need more memory untiled than is free" in caplog.text
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


# --- super-resolution models: ×scale outputs, their own options --------------------------


@pytest.fixture(scope="module")
def sr_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_sr_model(tmp_path_factory.mktemp("sr"))[0]


def _levels(a: Image.Image, b: Image.Image) -> int:
    """The largest difference between two 8-bit images, in levels."""
    return int(np.abs(np.asarray(a, int) - np.asarray(b, int)).max())


def test_a_superres_model_upscales_pil_paths_and_tensors(tmp_path, sr_path) -> None:
    upscale = stylenet.load(sr_path, device="cpu")
    assert (upscale.task, upscale.scale, upscale.min_side, upscale.styles) == ("superres", 4, 5, [])
    src = photo(tmp_path / "p.png", size=(45, 30))
    from_path = upscale(src)
    assert from_path.size == (180, 120)
    assert np.array_equal(np.asarray(from_path), np.asarray(upscale(Image.open(src))))
    batch = torch.rand(2, 3, 30, 45)
    out = upscale(batch)
    assert out.shape == (2, 3, 120, 180) and out.device == batch.device
    assert upscale(batch[0]).shape == (3, 120, 180)
    assert upscale.stylize_batch(batch).shape == (2, 3, 120, 180)


def test_style_options_and_styles_are_refused_for_a_superres_model(sr_path, model_path) -> None:
    upscale = stylenet.load(sr_path, device="cpu")
    x = torch.rand(1, 3, 8, 8)
    refusal = "is a ×4 super-resolution model: strength and preserve_color apply to style models"
    for options in ({"strength": 0.5}, {"preserve_color": True}):
        with pytest.raises(ConfigError, match=refusal):
            upscale(x, **options)
        with pytest.raises(ConfigError, match=refusal):
            stylenet.load(sr_path, device="cpu", **options)
    with pytest.raises(ConfigError, match="a super-resolution model has no styles"):
        upscale(x, style="candy")
    with pytest.raises(ConfigError, match="is a style model: match_histograms applies to super"):
        stylenet.load(model_path, device="cpu")(x, match_histograms=True)


def test_histogram_matching_of_an_upscale(tmp_path, sr_path) -> None:
    upscale = stylenet.load(sr_path, device="cpu")
    img = Image.open(photo(tmp_path / "p.png", size=(60, 44)))
    # On by default: the paper's post-processing (Johnson et al. 2016, Sec. 4.2).
    plain, matched = upscale(img, match_histograms=False), upscale(img)
    assert _levels(upscale(img, match_histograms=True), matched) == 0
    assert matched.size == plain.size and _levels(matched, plain) > 0
    # Each channel's quantiles are the photo's.
    q = np.linspace(0.05, 0.95, 10)
    for c in range(3):
        ours = np.quantile(np.asarray(matched)[..., c], q)
        want = np.quantile(np.asarray(img)[..., c], q)
        assert np.abs(ours - want).max() <= 2
    # Tiled, the 8-bit result is matched the same way: within a level or two of untiled.
    assert _levels(upscale(img, match_histograms=True, tile=24), matched) <= 2
    # Tensors: the float match (stylenet.inference.color.match_histograms).
    x = torch.rand(1, 3, 20, 20)
    y = upscale(x)
    raw = upscale(x, match_histograms=False)
    torch.testing.assert_close(y, color.match_histograms(raw, x))
    off = stylenet.load(sr_path, device="cpu", match_histograms=False)
    torch.testing.assert_close(off(x), raw)


def test_a_superres_photo_too_large_untiled_is_tiled_with_the_same_result(
    tmp_path, sr_path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    upscale = stylenet.load(sr_path, device="cpu")
    img = Image.open(photo(tmp_path / "p.png", size=(60, 44)))
    need = upscale.untiled_bytes(44, 60)
    assert need == 44 * 60 * 16 * 8 * 18  # output pixels × 8 channels × 18 bytes
    untiled = upscale(img)
    monkeypatch.setattr(api, "free_memory", lambda device: need)  # half of it may be used
    assert upscale.needs_tiling(44, 60)
    with caplog.at_level(logging.WARNING, logger="stylenet.inference.api"):
        tiled = upscale(img)
    assert "upscaling them in 192-px tiles" in caplog.text
    assert tiled.size == (240, 176) and _levels(tiled, untiled) <= 1
    assert _levels(upscale(img, tile=16), untiled) <= 1


def test_a_superres_export_tiles_too(tmp_path, sr_path) -> None:
    exported = tmp_path / "sr.onnx"
    net = load_model(sr_path)
    export_onnx(net, exported, card=ModelCard(network="", task="superres"))
    upscale = stylenet.load(exported, device="cpu")
    assert (upscale.task, upscale.scale, upscale.can_tile) == ("superres", 4, True)
    img = Image.open(photo(tmp_path / "p.png", size=(50, 37)))
    assert _levels(upscale(img, tile=16), stylenet.load(sr_path, device="cpu")(img)) <= 1
    assert upscale.untiled_bytes(10, 10) == 10 * 10 * 16 * 8 * 18  # from the export's card


def test_a_photo_under_the_networks_minimum_is_refused(tmp_path, sr_path) -> None:
    upscale = stylenet.load(sr_path, device="cpu")
    assert upscale(Image.new("RGB", (5, 9))).size == (20, 36)
    with pytest.raises(api.InputImageError) as err:
        upscale(Image.new("RGB", (4, 9)))
    assert (
        str(err.value) == "image of 4×9 px is too small to upscale: each side needs at least 5 px"
    )
