"""evaluate_superres: the bicubic baseline's PSNR/SSIM are scikit-image's on the Y channel with
the border cropped, recomputed from the files it wrote; a row per photo and method; the flat
numbers for loggers; the models it refuses."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import stylenet.evaluation.superres as superres_module
from stylenet.errors import ConfigError, OutputExistsError
from stylenet.evaluation.report import LPIPS_SHARES_THE_LOSS_NETWORK
from stylenet.evaluation.superres import check_superres_models, evaluate_superres
from stylenet.inference.model_card import ModelCard
from stylenet.inference.model_file import save_model
from stylenet.io.images import load_image, load_image_tensor
from stylenet.models import SuperResolutionNet, TransformerNet
from stylenet.models.degradation import degrade

pytestmark = pytest.mark.slow

METHODS = ["bicubic", "model", "compare1"]


def save_sr_model(path: Path, *, scale: int = 4, seed: int | None = 0) -> str:
    """A tiny SuperResolutionNet saved as stylenet-train saves one: every parameter random, or
    with `seed` None a zero last conv (a zero residual: bicubic upsampling exactly)."""
    net = SuperResolutionNet(scale=scale, channels=8, num_residual_blocks=1)
    with torch.no_grad():
        if seed is None:
            for p in net.tail.parameters():
                p.zero_()
        else:
            gen = torch.Generator().manual_seed(seed)
            for p in net.parameters():
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
    save_model(net, path, card=ModelCard(network="", task="superres"))
    return str(path)


@pytest.fixture(scope="module")
def two_photos(photo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("two_photos")
    for name in ("chelsea.jpg", "coffee.jpg"):
        shutil.copy(photo_dir / name, folder / name)
    return folder


def _y(pixels: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) Y on the 0–255 scale, by scikit-image (MATLAB's rgb2ycbcr)."""
    from skimage.color import rgb2ycbcr

    return np.asarray(rgb2ycbcr(pixels)[..., 0], dtype=np.float64)


def test_bicubic_scores_are_scikit_images_on_the_y_channel_without_the_border(
    two_photos, tmp_path, vgg16_weights
) -> None:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    model = save_sr_model(tmp_path / "random.pt")
    zero = save_sr_model(tmp_path / "zero_residual.pt", seed=None)
    out = tmp_path / "eval"
    # At a long side of 90 the photos are 90×60: the width is centre-cropped to 88.
    report = evaluate_superres(
        model,
        two_photos,
        out,
        degrade=degrade,
        compare=[zero],
        size=90,
        match_histograms=False,  # the models' outputs as they are: one is bicubic exactly
        progress=False,
    )
    assert [r.photo for r in report.rows] == ["chelsea.jpg", "coffee.jpg"]
    for row in report.rows:
        assert row.loaded == (60, 90) and row.size == (60, 88)
        assert [name for name, _ in row.methods()] == METHODS
        stem = row.photo.removesuffix(".jpg")
        # The bicubic image written is the photo, centre-cropped, degraded and upsampled.
        photo = load_image_tensor(two_photos / row.photo, size=90)[None, :, :, 1:89]
        bicubic = F.interpolate(degrade(photo, 4), scale_factor=4.0, mode="bicubic").clamp(0, 1)
        written = np.asarray(load_image(out / "images" / f"{stem}_bicubic.png"))
        hr = np.asarray(load_image(out / "images" / f"{stem}_hr.png"))
        want = (bicubic[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        np.testing.assert_array_equal(written, want)
        np.testing.assert_array_equal(hr, (photo[0].permute(1, 2, 0) * 255).round().byte())
        # scikit-image on those files: Y channel, 4 px cropped from each side.
        y_hr, y_bicubic = _y(hr)[4:-4, 4:-4], _y(written)[4:-4, 4:-4]
        want_psnr = peak_signal_noise_ratio(y_hr, y_bicubic, data_range=255)
        want_ssim = structural_similarity(
            y_hr,
            y_bicubic,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
        )
        score = row.scores["bicubic"]
        # PSNR: we hold 8-bit levels as float32 k/255, scikit-image as float64 (3e-7 dB
        # measured). SSIM: ours filters in float32 (metrics.py; 5e-6 measured on the package
        # photos by test_metrics_sr.py).
        assert score.psnr == pytest.approx(want_psnr, abs=1e-5)
        assert score.ssim == pytest.approx(want_ssim, abs=2e-5)
        assert 15 < score.psnr < 40 and 0.3 < score.ssim < 1 and 0 < score.lpips < 1
        # A network with a zero residual is its skip path: the same bicubic, the same scores.
        same = row.scores["compare1"]
        assert (same.psnr, same.ssim, same.lpips) == (score.psnr, score.ssim, score.lpips)
        assert row.scores["model"].psnr != score.psnr


def test_report_files_means_and_logger_numbers(two_photos, tmp_path, vgg16_weights) -> None:
    model = save_sr_model(tmp_path / "a.pt", seed=1)
    other = save_sr_model(tmp_path / "b.pt", seed=2)
    out = tmp_path / "eval"
    report = evaluate_superres(
        model, two_photos, out, degrade=degrade, compare=[other], size=64, progress=False
    )
    assert [m.name for m in report.methods] == METHODS
    assert (
        report.methods[2].source == other
        and "SuperResolutionNet ×4" in report.methods[2].description
    )
    assert "stylenet.models.degradation.degrade" in report.degradation
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["scale"] == 4 and len(on_disk["rows"]) == 2
    assert list(on_disk["rows"][0]["scores"]) == METHODS
    for means in report.summary.methods:
        scores = [r.scores[means.name] for r in report.rows]
        assert means.psnr == pytest.approx(sum(s.psnr for s in scores) / 2)
        assert means.lpips == pytest.approx(sum(s.lpips for s in scores) / 2)
        assert all(s.seconds is not None and s.seconds > 0 for s in scores)
    gain = report.summary.of_method("model").psnr - report.summary.of_method("bicubic").psnr
    metrics = report.summary.metrics()
    assert metrics["eval/photos"] == 2
    assert metrics["eval/model/psnr_gain"] == pytest.approx(gain)
    assert "eval/bicubic/psnr_gain" not in metrics
    assert set(metrics) == {"eval/photos"} | {
        f"eval/{m}/{k}" for m in METHODS for k in ("psnr", "ssim", "lpips", "seconds")
    } | {"eval/model/psnr_gain", "eval/compare1/psnr_gain"}
    assert all(math.isfinite(v) for v in metrics.values())
    assert metrics["eval/compare1/ssim"] == on_disk["summary"]["methods"][2]["ssim"]
    # What the loggers read: a row per photo and method, the score columns, no loss terms.
    assert report.term_names() == [] and report.score_columns() == ["psnr", "ssim", "lpips"]
    assert report.rows[0].methods()[1][1].numbers([]) == [
        report.rows[0].scores["model"].psnr,
        report.rows[0].scores["model"].ssim,
        report.rows[0].scores["model"].lpips,
    ]
    assert report.grid_caption().startswith("low-res input (nearest ×4) | bicubic | model |")
    table = (out / "report.md").read_text()
    for photo in ("chelsea.jpg", "coffee.jpg"):
        for method in METHODS:
            assert table.count(f"| {photo} | 40×64 | {method} |") == 1  # 43 rows cropped
    assert LPIPS_SHARES_THE_LOSS_NETWORK in table
    assert "Y channel" in table and "4 px cropped from each side" in table
    assert f"| model | {report.summary.of_method('model').psnr:.2f} | {gain:+.2f} |" in table
    # Per photo: the images, and two grid rows (whole, then the centre zoomed) of
    # low-res | bicubic | model | compare1 | high-res, 64-px tiles with 4-px padding.
    names = {p.name for p in (out / "images").iterdir()}
    assert names == {f"{s}_{k}.png" for s in ("chelsea", "coffee") for k in ["lr", *METHODS, "hr"]}
    assert load_image(out / "images" / "coffee_lr.png").size == (16, 10)  # (W, H): 64×40 / 4
    assert load_image(out / "grid.jpg").size == (5 * 64 + 6 * 4, 4 * 64 + 5 * 4)
    # An existing report is kept unless asked.
    with pytest.raises(OutputExistsError, match="--overwrite"):
        evaluate_superres(model, two_photos, out, degrade=degrade, progress=False)
    again = evaluate_superres(
        model, two_photos, out, degrade=degrade, size=64, overwrite=True, progress=False
    )
    assert [m.name for m in again.methods] == ["bicubic", "model"]
    assert again.rows[0].scores["model"].psnr == report.rows[0].scores["model"].psnr


def test_a_photo_too_small_to_score_is_skipped_and_named(tmp_path, vgg16_weights) -> None:
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (96, 24), (90, 120, 60)).save(photos / "strip.png")  # 64×16 at --size 64
    model = save_sr_model(tmp_path / "a.pt")
    report = evaluate_superres(
        model, photos, tmp_path / "eval", degrade=degrade, size=64, progress=False
    )
    assert report.rows == [] and [s.photo for s in report.skipped] == ["strip.png"]
    assert "at least 20 px on each side" in report.skipped[0].error
    assert "Skipped: strip.png" in (tmp_path / "eval" / "report.md").read_text()


def test_models_of_another_task_or_scale_are_refused_before_any_network_is_built(
    two_photos, tmp_path, monkeypatch
) -> None:
    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("refused too late: a network was built")

    monkeypatch.setattr(superres_module, "load_network", no_work)
    x4 = save_sr_model(tmp_path / "x4.pt")
    x8 = save_sr_model(tmp_path / "x8.pt", scale=8)
    style = tmp_path / "style.pt"
    save_model(TransformerNet(base_channels=8, num_residual_blocks=1), style)
    assert check_superres_models(x4) == 4 and check_superres_models(x8) == 8
    cases = [
        (style, [], "style.pt is a style-transfer model, not a super-resolution one"),
        (x4, [style], r"--compare .*style.pt is a style-transfer model; --compare takes"),
        (x4, [x8], r"--compare .*x8.pt upsamples ×8, .*x4.pt ×4: compare models of one scale"),
    ]
    for model, compare, message in cases:
        with pytest.raises(ConfigError, match=message):
            evaluate_superres(model, two_photos, tmp_path / "e", degrade=degrade, compare=compare)
    assert not (tmp_path / "e").exists()


def test_model_outputs_are_histogram_matched_to_their_input(two_photos, tmp_path) -> None:
    from stylenet.inference.color import match_histograms

    model = save_sr_model(tmp_path / "a.pt", seed=1)
    report = evaluate_superres(
        model, two_photos, tmp_path / "eval", compare=[], size=64, progress=False
    )
    assert "histogram-matched to the low-res input" in report.methods[1].description
    net = SuperResolutionNet(scale=4, channels=8, num_residual_blocks=1)
    net.load_state_dict(torch.load(model, weights_only=True)["state_dict"])
    photo = load_image_tensor(two_photos / "chelsea.jpg", size=64)[None]
    h, w = photo.shape[-2] // 4 * 4, photo.shape[-1] // 4 * 4  # centre-cropped to ×4
    top, left = (photo.shape[-2] - h) // 2, (photo.shape[-1] - w) // 2
    hr = photo[..., top : top + h, left : left + w]
    lr = degrade(hr, 4)
    with torch.no_grad():
        want = match_histograms(net.eval()(lr), lr)
    written = load_image_tensor(tmp_path / "eval" / "images" / "chelsea_model.png")
    assert (written - want[0]).abs().max() <= 0.5 / 255 + 1e-6  # as saved: 8 bits
