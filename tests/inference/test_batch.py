"""plan: inputs map to outputs, and every refusal comes before any work; photos too large
untiled are tiled, too large to hold refused by name (upscales: ×scale² larger results)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from stylenet.errors import ConfigError, OutputExistsError
from stylenet.inference import api, batch
from stylenet.inference.api import load
from stylenet.inference.batch import Options, fit_size, plan, stylize_all
from stylenet.io.images import load_image
from tests.helpers import photo, save_tiny_sr_model


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    photo(root / "a.jpg")
    photo(root / "sub" / "b.png")
    (root / "notes.txt").write_text("not a photo")
    return root


def test_one_file_to_a_file_and_folders_mirrored(inputs: Path, tmp_path: Path) -> None:
    [job] = plan([inputs / "a.jpg"], tmp_path / "styled.png").jobs
    assert (job.src, job.dst, job.video) == (inputs / "a.jpg", tmp_path / "styled.png", False)
    work = plan([inputs], tmp_path / "out")
    assert {j.dst for j in work.jobs} == {tmp_path / "out" / "a.jpg", tmp_path / "out/sub/b.png"}
    # Several inputs: one subfolder each, so same-named files cannot collide.
    work = plan([inputs, inputs / "a.jpg"], tmp_path / "out")
    assert {j.dst for j in work.jobs} == {
        tmp_path / "out" / "in" / "a.jpg",
        tmp_path / "out" / "in" / "sub" / "b.png",
        tmp_path / "out" / "a.jpg",
    }


def test_missing_and_empty_inputs_are_named_not_fatal(inputs: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    work = plan([inputs, tmp_path / "nope.jpg", tmp_path / "empty"], tmp_path / "out")
    assert len(work.jobs) == 2
    assert [src.name for src, _ in work.missing] == ["nope.jpg", "empty"]


def test_a_list_file_names_photos_mirrored_below_their_shared_folder(
    inputs: Path, tmp_path: Path
) -> None:
    elsewhere = photo(tmp_path / "x" / "c.jpg")
    listing = inputs / "photos.txt"
    listing.write_text(
        f"# photos to stylize\na.jpg\n\n  sub/b.png  # trailing comment\n{elsewhere}\nnope.jpg\n"
    )
    work = plan([], tmp_path / "out", listed=listing)
    assert [(j.src, j.dst) for j in work.jobs] == [
        (inputs / "a.jpg", tmp_path / "out" / "in" / "a.jpg"),
        (inputs / "sub" / "b.png", tmp_path / "out" / "in" / "sub" / "b.png"),
        (elsewhere, tmp_path / "out" / "x" / "c.jpg"),
    ]
    assert work.missing == [(inputs / "nope.jpg", "no such file")]
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(ConfigError, match=r"--list .*empty\.txt: names no files"):
        plan([], tmp_path / "out", listed=tmp_path / "empty.txt")
    with pytest.raises(ConfigError, match=r"--list .*absent\.txt: cannot read it"):
        plan([], tmp_path / "out", listed=tmp_path / "absent.txt")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00photo")
    with pytest.raises(ConfigError, match=r"--list .*binary\.txt: cannot read it as a text file"):
        plan([], tmp_path / "out", listed=tmp_path / "binary.txt")


def test_refusals(inputs: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is an input"):
        plan([inputs / "a.jpg"], inputs / "a.jpg")
    other = photo(tmp_path / "x" / "a.jpg")
    with pytest.raises(ConfigError, match="same output"):
        plan([inputs / "a.jpg", other], tmp_path / "out")
    with pytest.raises(ConfigError, match="image format"):
        plan([inputs / "a.jpg"], tmp_path / "styled.txt")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.jpg").write_bytes(b"keep me")
    with pytest.raises(OutputExistsError, match=r"a\.jpg exists.*--overwrite"):
        plan([inputs], tmp_path / "out")
    assert len(plan([inputs], tmp_path / "out", overwrite=True).jobs) == 2


def test_photos_go_in_smaller_batches_or_tiles_when_memory_is_short(
    model_path: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    stylizer = load(model_path, device="cpu")
    for name in "abc":
        photo(tmp_path / "in" / f"{name}.png", size=(96, 64))
    need = stylizer.untiled_bytes(64, 96)
    batches: list[int] = []
    untiled = stylizer.stylize_batch

    def recording(images: torch.Tensor, **kwargs: object) -> torch.Tensor:
        batches.append(images.shape[0])
        return untiled(images, **kwargs)

    monkeypatch.setattr(stylizer, "stylize_batch", recording)
    monkeypatch.setattr(api, "free_memory", lambda device: 4 * need)  # room for 2 per pass
    summary = stylize_all(stylizer, plan([tmp_path / "in"], tmp_path / "out"), Options())
    assert summary.done == 3 and batches == [2, 1]

    batches.clear()
    monkeypatch.setattr(api, "free_memory", lambda device: need)  # not even one
    with caplog.at_level(logging.WARNING, logger="stylenet.inference.batch"):
        summary = stylize_all(stylizer, plan([tmp_path / "in"], tmp_path / "tiled"), Options())
    assert summary.done == 3 and batches == []  # each photo went through the tiled path
    assert "3 photo(s) of 96×64 need more memory untiled than is free" in caplog.text
    assert sorted(p.name for p in (tmp_path / "tiled").iterdir()) == ["a.png", "b.png", "c.png"]


def test_an_unreadable_photo_fails_with_load_images_reason(model_path: str, tmp_path: Path) -> None:
    # Issue 16: the header probe for sizes gave Pillow's "cannot identify image file" where
    # load_image says what is wrong.
    photo(tmp_path / "in" / "good.png", size=(32, 24))
    (tmp_path / "in" / "empty.jpg").write_bytes(b"")
    (tmp_path / "in" / "text.png").write_text("not a picture")
    work = plan([tmp_path / "in"], tmp_path / "out")
    summary = stylize_all(load(model_path, device="cpu"), work, Options(progress=False))
    assert summary.done == 1
    assert {src.name: reason for src, reason in summary.failed} == {
        "empty.jpg": f"cannot read image {tmp_path / 'in' / 'empty.jpg'}: empty file (0 bytes)",
        "text.png": f"cannot read image {tmp_path / 'in' / 'text.png'}: not an image Pillow can "
        "identify",
    }


@pytest.mark.parametrize("scale", [math.inf, math.nan, 0.0, -1.0])
def test_fit_size_refuses_a_scale_that_is_not_a_finite_positive_number(scale: float) -> None:
    with pytest.raises(ConfigError, match="scale must be a finite number > 0"):
        fit_size((40, 30), scale=scale)
    assert fit_size((40, 30), scale=0.5) == (20, 15)


def test_a_photo_too_large_to_hold_after_scaling_fails_by_name(
    model_path: str, tmp_path: Path
) -> None:
    # A huge finite --scale went on to tile terapixels (1e300: an OverflowError traceback).
    photo(tmp_path / "in" / "a.png", size=(40, 30))
    stylizer = load(model_path, device="cpu")
    for scale, reason in [
        (1e5, "4000000×3000000 px after resizing needs about 144,000.0 GB of memory to hold"),
        (1e300, "4e+301×3e+301 px after resizing needs about inf GB of memory to hold"),
        (1e308, "scale 1e+308 makes a 40×30 px photo too large"),
    ]:
        work = plan([tmp_path / "in"], tmp_path / "out")
        summary = stylize_all(stylizer, work, Options(scale=scale, progress=False))
        [(src, failed)] = summary.failed
        assert src.name == "a.png" and failed.startswith(reason), failed
    assert not (tmp_path / "out").exists()


def test_a_plan_without_videos_skips_them_in_folders_and_refuses_them_by_name(
    inputs: Path, tmp_path: Path
) -> None:
    (inputs / "clip.mp4").write_bytes(b"")  # listed by its name only
    names = [j.src.name for j in plan([inputs], tmp_path / "out").jobs]
    assert names == ["a.jpg", "b.png", "clip.mp4"]  # photos first, then videos
    assert [j.src.name for j in plan([inputs], tmp_path / "out", videos=False).jobs] == [
        "a.jpg",
        "b.png",
    ]
    with pytest.raises(ConfigError, match=r"clip.mp4 is a video: this command takes photos only"):
        plan([inputs / "clip.mp4"], tmp_path / "out.mp4", videos=False)
    # Given one anyway (the Python API), a super-resolution model fails it by name.
    upscaler = load(save_tiny_sr_model(tmp_path / "sr")[0], device="cpu")
    work = plan([inputs / "clip.mp4"], tmp_path / "out.mp4")
    summary = stylize_all(upscaler, work, Options(progress=False))
    assert summary.failed == [
        (inputs / "clip.mp4", "a super-resolution model upscales photos, not videos")
    ]
    only_videos = tmp_path / "videos"
    only_videos.mkdir()
    (only_videos / "clip.mov").write_bytes(b"")
    assert plan([only_videos], tmp_path / "o", videos=False).missing == [
        (only_videos, f"no images under {only_videos}")
    ]


def test_an_upscale_too_large_to_hold_fails_by_name_and_a_large_one_is_tiled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    sr_path, _ = save_tiny_sr_model(tmp_path / "sr")
    upscaler = load(sr_path, device="cpu")
    photo(tmp_path / "in" / "a.png", size=(40, 30))
    # The photo (6 bytes a pixel) and its ×4 result (6 bytes an output pixel) must fit: here
    # they do not, tiled or not.
    monkeypatch.setattr(batch, "free_memory", lambda device: 40 * 30 * (6 + 6 * 16) - 1)
    summary = stylize_all(upscaler, plan([tmp_path / "in"], tmp_path / "out"), Options())
    [(src, reason)] = summary.failed
    assert src.name == "a.png" and reason == (
        "40×30 px upscaled ×4 to 160×120 px needs about 0.0 GB of memory to hold, more than the "
        "0.0 GB free, tiled or not: choose a smaller --max-side"
    )
    assert not (tmp_path / "out").exists()
    # Room for the result, not for an untiled forward: tiled, with the untiled result.
    monkeypatch.setattr(batch, "free_memory", lambda device: 10**9)
    untiled = stylize_all(upscaler, plan([tmp_path / "in"], tmp_path / "untiled"), Options())
    monkeypatch.setattr(api, "free_memory", lambda device: upscaler.untiled_bytes(30, 40))
    with caplog.at_level(logging.WARNING, logger="stylenet.inference.batch"):
        tiled = stylize_all(upscaler, plan([tmp_path / "in"], tmp_path / "tiled"), Options())
    assert "1 photo(s) of 40×30 need more memory untiled than is free; upscaling" in caplog.text
    assert untiled.done == tiled.done == 1
    a, b = (load_image(tmp_path / kind / "a.png") for kind in ("untiled", "tiled"))
    assert a.size == (160, 120) and np.abs(np.asarray(a, int) - np.asarray(b, int)).max() <= 1
