"""The temporal metric (exact camera moves, DIS flow) and the flow-guided blend of --temporal."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from stylenet.evaluation.temporal import (
    NOISE_SIGMA,
    PAN_STEP,
    FlowWarpingError,
    camera_moves,
    score_clip,
    warping_error,
)
from stylenet.inference.flow import FramePair, dis_flow
from stylenet.inference.temporal import TemporalBlend


def _photo(seed: int = 0, size: tuple[int, int] = (300, 400)) -> Tensor:
    """A textured photo stand-in: smooth colour fields plus finer structure."""
    g = torch.Generator().manual_seed(seed)
    coarse = F.interpolate(torch.rand(1, 3, 8, 10, generator=g), size=size, mode="bicubic")
    fine = F.interpolate(torch.rand(1, 3, 60, 80, generator=g), size=size, mode="bilinear")
    return (0.7 * coarse + 0.3 * fine)[0].clamp(0, 1)


def test_the_clips_have_the_issue_s_shape() -> None:
    clips = {c.name: c for c in camera_moves(_photo())}
    assert set(clips) == {"pan", "zoom", "rotate", "noise"}
    for clip in clips.values():
        assert clip.frames.shape == (24, 3, 240, 320)
        assert clip.frames.min() >= 0 and clip.frames.max() <= 1


def test_the_exact_warp_error_is_zero_on_a_pan_and_positive_on_noise() -> None:
    clips = {c.name: c for c in camera_moves(_photo(), frames=6)}
    pan = clips["pan"]
    assert torch.equal(pan.frames[1][..., :-PAN_STEP], pan.frames[0][..., PAN_STEP:])
    assert warping_error(pan.frames, pan) == 0
    # Fresh noise every frame: E|n1 - n2| = 2σ/√π for Gaussian n (few pixels clamp at 0 or 1).
    noise = warping_error(clips["noise"].frames, clips["noise"])
    assert noise == pytest.approx(2 * NOISE_SIGMA / math.sqrt(math.pi), rel=0.1)
    # Zoom and rotation resample: a small floor, far below a frame difference that ignores them.
    for name in ("zoom", "rotate"):
        clip = clips[name]
        floor = warping_error(clip.frames, clip)
        plain = float((clip.frames[1:] - clip.frames[:-1]).abs().mean())
        assert 0 < floor < plain / 3, name


def test_a_network_that_moves_with_the_picture_scores_like_its_input() -> None:
    clips = {c.name: c for c in camera_moves(_photo(), frames=5)}
    identity = score_clip(lambda x: x, clips["pan"])
    assert identity.input_error == identity.output_error == 0
    # A blur is shift-equivariant away from the frame's edge (its first column sees other
    # neighbours after the shift): near 0 on the pan; on noise it smooths, so its gain is < 1.
    blur = score_clip(lambda x: F.avg_pool2d(x, 3, 1, 1, count_include_pad=False), clips["pan"])
    assert blur.output_error < 1e-3
    noisy = score_clip(lambda x: F.avg_pool2d(x, 3, 1, 1, count_include_pad=False), clips["noise"])
    assert noisy.ratio < 0.5
    # A network that amplifies differences amplifies the error.
    sharpen = score_clip(lambda x: (2 * x - 0.5).clamp(0, 1), clips["noise"])
    assert sharpen.ratio > 1.5


def _uint8(image: Tensor) -> np.ndarray:
    return (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def test_dis_flow_recovers_a_synthetic_pan_within_half_a_pixel() -> None:
    photo = _photo(1)
    first, second = _uint8(photo[:, :240, 3:323]), _uint8(photo[:, :240, :320])  # moved right 3
    flow = dis_flow(first, second)
    interior = flow[20:-20, 20:-20]
    assert np.median(interior[..., 0]) == pytest.approx(3, abs=0.5)
    assert np.median(interior[..., 1]) == pytest.approx(0, abs=0.5)


def test_the_flow_warp_puts_the_previous_frame_onto_the_next_where_reliable() -> None:
    photo = _photo(2)
    previous, following = _uint8(photo[:, :240, 4:324]), _uint8(photo[:, :240, :320])
    pair = FramePair.estimate(previous, following)
    assert pair.reliable.mean() > 0.8
    assert not pair.reliable[:, :3].all()  # the strip that came into view on the left
    error = np.abs(pair.warp(previous).astype(float) - following)[pair.reliable].mean() / 255
    plain = np.abs(previous.astype(float) - following).mean() / 255
    assert error < plain / 4


def test_the_flow_metric_streams_and_matches_an_exact_pan() -> None:
    clip = camera_moves(_photo(3), frames=4, moves=("pan",))[0]
    frames = np.stack([_uint8(f) for f in clip.frames])
    meter = FlowWarpingError()
    meter.update(frames[:2], frames[:2])
    meter.update(frames[2:], frames[2:])
    score = meter.score()
    assert meter.pairs == 3 and meter.reliable_fraction > 0.8
    assert score.input_error == score.output_error < 0.01
    with pytest.raises(ValueError, match="no frame pair"):
        FlowWarpingError().score()


def test_the_temporal_blend_steadies_a_flickering_still_and_keeps_strength_zero_exact() -> None:
    clip = camera_moves(_photo(4), frames=6, moves=("noise",))[0]

    def flicker(x: Tensor) -> Tensor:  # a network that amplifies the sensor noise
        return (0.5 + 3 * (x - F.avg_pool2d(x, 5, 1, 2, count_include_pad=False))).clamp(0, 1)

    plain = torch.cat([flicker(clip.frames[i : i + 2]) for i in range(0, 6, 2)])
    blend = TemporalBlend(flicker, strength=0.5)
    steady = torch.cat([blend(clip.frames[i : i + 2]) for i in range(0, 6, 2)])
    assert len(blend.reliable_fraction) == 5  # one per frame after the first, across batches
    assert warping_error(steady, clip) < 0.8 * warping_error(plain, clip)
    off = TemporalBlend(flicker, strength=0.0)
    assert torch.allclose(torch.cat([off(clip.frames[:3]), off(clip.frames[3:])]), plain, atol=1e-6)
    with pytest.raises(ValueError, match="strength"):
        TemporalBlend(flicker, strength=1.0)


def test_one_blend_of_several_outputs_is_each_output_blended_alone() -> None:
    clip = camera_moves(_photo(4), frames=5, moves=("pan",))[0]
    styles = [lambda x: x.flip(1), lambda x: (x * 1.5).clamp(0, 1)]  # two stand-in "styles"
    together = TemporalBlend(None, strength=0.5)
    alone = [TemporalBlend(style, strength=0.5) for style in styles]
    for i in range(0, 5, 2):
        frames = clip.frames[i : i + 2]
        got = together.blend(frames, [style(frames) for style in styles])
        for out, blend in zip(got, alone, strict=True):
            torch.testing.assert_close(out, blend(frames), atol=1e-6, rtol=0)
    assert len(together.reliable_fraction) == 4  # the flow estimated once per frame pair
    with pytest.raises(ValueError, match="1 outputs after 2"):
        together.blend(clip.frames[:1], [clip.frames[:1]])
    with pytest.raises(TypeError, match="no stylizer"):
        together(clip.frames[:1])
