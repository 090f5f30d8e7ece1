"""Tiled stylization: instance-norm record/replay, tile layout, tiled ≈ untiled without seams;
tiled super-resolution: exact tiles at ×scale."""

from __future__ import annotations

import contextlib
from itertools import pairwise

import numpy as np
import pytest
import torch
from torch import nn

from stylenet.errors import ConfigError
from stylenet.inference import tiling
from stylenet.inference.tiling import (
    instance_norm_stats,
    stylize_tiled,
    tile_spans,
    upscale_context,
    upscale_spans,
    upscale_tiled,
)
from stylenet.io.images import float_to_uint8
from stylenet.models import PadCrop, SuperResolutionConfig, SuperResolutionNet, TransformerNet
from tests.helpers import tiny_sr_net


@pytest.fixture(scope="module")
def net() -> TransformerNet:
    torch.manual_seed(0)
    net = TransformerNet(base_channels=8, num_residual_blocks=2).eval()
    # Off the default weight=1, bias=0, so replay has to apply the affine part too.
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.InstanceNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.2)
    return net


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A photo-like (h, w, 3) uint8 test image: smooth colour waves with flat rectangles on top."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w] / max(h, w)
    waves = [
        0.5 + 0.4 * np.sin(2 * np.pi * (fx * xx + fy * yy) + phase)
        for fx, fy, phase in rng.uniform(0.5, 4.0, (3, 3))
    ]
    img = np.stack(waves, axis=-1)  # (h, w, 3)
    for _ in range(12):
        y, x = rng.integers(0, h), rng.integers(0, w)
        img[y : y + rng.integers(5, h // 3 + 6), x : x + rng.integers(5, w // 3 + 6)] = rng.uniform(
            0, 1, 3
        )
    return np.clip(img * 255, 0, 255).astype(np.uint8)


def to_batch(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.copy()).permute(2, 0, 1).unsqueeze(0).float() / 255  # (1, 3, H, W)


@torch.inference_mode()
def untiled(net: nn.Module, img: np.ndarray) -> np.ndarray:
    """The reference: pad + forward + crop on the whole image, rounded to uint8."""
    out = PadCrop(net)(to_batch(img))[0]
    return out.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def assert_restored(net: nn.Module) -> None:
    for m in net.modules():
        if isinstance(m, nn.InstanceNorm2d):
            assert "forward" not in vars(m)


# --- record / replay ------------------------------------------------------------------------


@torch.inference_mode()
def test_replaying_an_images_own_statistics_reproduces_the_forward(net) -> None:
    x = to_batch(photo(96, 80))
    ref = net(x)
    stats: dict = {}
    with instance_norm_stats(net, "record", stats) as recorded:
        assert recorded is stats
        torch.testing.assert_close(net(x), ref)  # recording does not change the output
    norms = {name: m for name, m in net.named_modules() if isinstance(m, nn.InstanceNorm2d)}
    assert set(stats) == set(norms) and len(norms) == 3 + 2 * 2 + 2
    for name, (mean, var) in stats.items():
        assert mean.shape == var.shape == (1, norms[name].num_features, 1, 1)
    # The first norm's input is the first conv's output: check the statistics themselves.
    first = net.encoder[0][0](x)
    var, mean = torch.var_mean(first, dim=(2, 3), correction=0, keepdim=True)
    torch.testing.assert_close(stats["encoder.0.1"], (mean, var))

    with instance_norm_stats(net, "replay", stats):
        torch.testing.assert_close(net(x), ref, atol=1e-5, rtol=0)
        # Broadcast over the batch: every image is normalized with the one set of statistics.
        torch.testing.assert_close(net(x.expand(2, -1, -1, -1)), ref.expand(2, -1, -1, -1))
    assert_restored(net)


@torch.inference_mode()
def test_replay_uses_the_recorded_statistics_not_the_inputs(net) -> None:
    a, b = to_batch(photo(64, 64, seed=1)), to_batch(photo(64, 64, seed=2))
    stats: dict = {}
    with instance_norm_stats(net, "record", stats):
        net(a)
    with instance_norm_stats(net, "replay", stats):
        replayed = net(b)
    assert (replayed - net(b)).abs().mean() > 1e-3


@torch.inference_mode()
def test_modules_are_restored_after_the_context_even_on_errors(net) -> None:
    x = to_batch(photo(64, 72))
    ref = net(x)
    params = {k: v.clone() for k, v in net.state_dict().items()}
    stats: dict = {}
    with instance_norm_stats(net, "record", stats):
        net(x[..., :32, :32])  # other statistics than x's
    for mode in ("record", "replay"):
        with pytest.raises(RuntimeError, match="boom"), instance_norm_stats(net, mode, stats):
            net(x)
            raise RuntimeError("boom")
        assert_restored(net)
        torch.testing.assert_close(net(x), ref, atol=0, rtol=0)
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, params[k], atol=0, rtol=0)


@torch.inference_mode()
def test_nested_contexts_restore_the_outer_one(net) -> None:
    x = to_batch(photo(64, 64))
    outer: dict = {}
    with instance_norm_stats(net, "record", outer):
        net(x)
    with instance_norm_stats(net, "replay", outer):
        expected = net(x[..., :32, :32])
        with instance_norm_stats(net, "record", {}):
            pass
        torch.testing.assert_close(net(x[..., :32, :32]), expected)
    assert_restored(net)


def test_record_and_replay_reject_misuse(net) -> None:
    with pytest.raises(ValueError, match="mode"), instance_norm_stats(net, "replay-ish", {}):  # type: ignore[arg-type]
        pass
    with (
        pytest.raises(ValueError, match="no recorded statistics"),
        instance_norm_stats(net, "replay", {}),
    ):
        pass
    with (
        pytest.raises(ValueError, match="one image"),
        torch.inference_mode(),
        instance_norm_stats(net, "record", {}),
    ):
        net(torch.rand(2, 3, 32, 32))
    assert_restored(net)


# --- tile layout ----------------------------------------------------------------------------


@pytest.mark.parametrize(("tile", "overlap"), [(64, 0), (64, 16), (64, 31), (128, 48), (100, 3)])
def test_tile_spans_cover_the_axis_aligned_with_the_overlap(tile: int, overlap: int) -> None:
    for length in range(1, 4 * tile + 9):
        spans = tile_spans(length, tile, overlap)
        assert spans[0][0] == 0 and spans[-1][1] == length
        if length <= tile:
            assert spans == [(0, length)]
            continue
        assert all(end - start == tile for start, end in spans[:-1])
        assert tile <= spans[-1][1] - spans[-1][0] < tile + 4  # full-size, not a sliver
        for (s0, e0), (s1, _) in pairwise(spans):
            assert s1 % 4 == 0 and s0 < s1 and e0 - s1 >= overlap


# --- stylize_tiled --------------------------------------------------------------------------


@pytest.mark.parametrize(("h", "w"), [(97, 131), (131, 97), (5, 3), (64, 200)])
def test_output_has_the_input_size(net, h: int, w: int) -> None:
    img = photo(h, w)
    before = img.copy()
    out = stylize_tiled(net, img, tile=64, overlap=16, stats_size=64)
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(img, before)  # the input is not touched
    assert_restored(net)


def test_a_single_tile_is_the_untiled_stylization(net) -> None:
    img = photo(97, 131)
    out = stylize_tiled(net, img, tile=256, overlap=64, stats_size=256)
    assert np.abs(out.astype(int) - untiled(net, img)).max() <= 2


def test_tiles_match_the_untiled_output_without_seams(net, monkeypatch) -> None:
    # 288 = 128 + 2 · 80: three tiles across, overlapping by exactly 48 px; one tile row.
    img = photo(96, 288)
    tile, overlap = 128, 48
    seams = np.zeros(288, bool)  # columns covered by two tiles
    spans = tile_spans(288, tile, overlap)
    assert len(spans) == 3
    for (_, end), (start, _) in pairwise(spans):
        seams[start:end] = True

    def column_error(out: np.ndarray) -> np.ndarray:  # (W,), in [0, 1] units
        return np.abs(out.astype(float) - untiled(net, img)).mean(axis=(0, 2)) / 255

    err = column_error(stylize_tiled(net, img, tile=tile, overlap=overlap, stats_size=1024))
    # Measured: MAE 1.4e-4, worst column 1.4e-3 (a few pixels 3/255 off), seams included.
    assert err.mean() < 1e-3
    assert err[seams].mean() < 1e-3 and err[seams].max() < 4e-3

    # The same tiles normalized with their own statistics differ everywhere (measured 0.026):
    # what the replayed statistics are for.
    def own_statistics(net, mode, stats):
        if mode == "replay":
            return contextlib.nullcontext(stats)
        return instance_norm_stats(net, mode, stats)

    monkeypatch.setattr(tiling, "instance_norm_stats", own_statistics)
    naive = column_error(stylize_tiled(net, img, tile=tile, overlap=overlap, stats_size=1024))
    assert naive.mean() > 10 * max(err.mean(), 1e-4)


def test_statistics_from_a_shrunk_copy_still_give_one_tone(net) -> None:
    img = photo(200, 260)
    out = stylize_tiled(net, img, tile=96, overlap=32, stats_size=128)
    # An approximation of the untiled result (module docstring): measured 0.022-0.025.
    mae = np.abs(out.astype(float) - untiled(net, img)).mean() / 255
    assert mae < 0.05


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"tile": 60}, "tile"),
        ({"tile": 130}, "tile"),
        ({"tile": 64, "overlap": 32}, "overlap"),
        ({"overlap": -1}, "overlap"),
        ({"stats_size": 16}, "stats_size"),
        ({"tile": 512.0}, "tile"),
    ],
)
def test_bad_options_raise_naming_the_option(net, kwargs: dict, option: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{option} "):
        stylize_tiled(net, photo(32, 32), **kwargs)


@pytest.mark.parametrize(("tile", "overlap"), [(768, 128), (512, 128), (256, 64), (64, 16)])
def test_the_default_overlap_fits_the_tile(net, tile: int, overlap: int) -> None:
    assert tiling.default_overlap(tile) == overlap
    tiling.check_tiling(tile, overlap, tiling.DEFAULT_STATS_SIZE)  # accepted


def test_small_tiles_work_without_an_overlap_given(net) -> None:
    img = photo(70, 150)
    assert stylize_tiled(net, img, tile=64).shape == img.shape


@pytest.mark.parametrize(
    "image",
    [np.zeros((32, 32), np.uint8), np.zeros((32, 32, 4), np.uint8), np.zeros((32, 32, 3))],
)
def test_bad_images_raise(net, image: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"^image "):
        stylize_tiled(net, image)


def test_a_network_in_another_dtype_is_refused(net) -> None:
    with pytest.raises(ValueError, match="dtype"):
        stylize_tiled(net, photo(32, 32), dtype=torch.float64)


# --- upscale_tiled: a super-resolution network, no normalization, ×scale output -------------


@pytest.fixture(scope="module")
def sr_net() -> SuperResolutionNet:
    return tiny_sr_net(scale=4)  # 8 channels, 1 residual block: context 8


@torch.inference_mode()
def untiled_upscale(net: nn.Module, img: np.ndarray) -> np.ndarray:
    return float_to_uint8(PadCrop(net)(to_batch(img))[0])


@pytest.mark.parametrize(
    ("config", "context"),
    [
        (SuperResolutionConfig(scale=4), 14),  # the paper's: 4 residual blocks
        (SuperResolutionConfig(scale=8), 14),
        (SuperResolutionConfig(scale=2), 15),
        (SuperResolutionConfig(scale=4, channels=8, num_residual_blocks=1), 8),
        (SuperResolutionConfig(scale=2, num_residual_blocks=0), 7),
    ],
)
def test_the_context_is_the_receptive_radius(config: SuperResolutionConfig, context: int) -> None:
    assert upscale_context(config) == context


def test_tiled_upscaling_is_the_untiled_upscale_and_needs_all_its_context(sr_net) -> None:
    img = photo(44, 60)
    want = untiled_upscale(sr_net, img)
    context = upscale_context(sr_net.config)
    calls: list[tuple[int, ...]] = []

    def upscale(x: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(x.shape))
        return PadCrop(sr_net)(x)

    out = upscale_tiled(upscale, img, scale=4, context=context, tile=24)
    assert out.shape == (176, 240, 3) and out.dtype == np.uint8
    assert len(calls) == 2 * 3  # 44 / 24 → 2 rows, 60 / 24 → 3 columns
    # The same network at another size: float rounding may flip a level, nothing more.
    assert np.abs(out.astype(int) - want).max() <= 1


@pytest.mark.parametrize(("scale", "blocks"), [(2, 0), (4, 1), (8, 2), (4, 4)])
def test_the_context_is_where_an_output_stops_depending_on_the_tiles_edge(
    scale: int, blocks: int
) -> None:
    # A tile cut at column 20 of a wider photo: its outputs for the columns at least `context`
    # px from the cut are the untiled ones, the next column's are not. In float64, where the
    # kernels' rounding at another size is 1e-16 and the first column within reach of the cut
    # is off by 1e-7 to 1e-5 (the outermost taps of the kernels).
    torch.manual_seed(0)
    net = SuperResolutionNet(scale=scale, channels=4, num_residual_blocks=blocks).double().eval()
    with torch.no_grad():
        for p in net.tail.parameters():
            p.normal_(0.0, 0.05)
        x = to_batch(photo(24, 40)).double()
        full = PadCrop(net)(x)[..., : 20 * scale]
        cut = PadCrop(net)(x[..., :20])
    per_column = (cut - full).abs().amax(dim=(0, 1, 2)).view(20, scale).amax(dim=1)  # (20,)
    clean = 20 - upscale_context(net.config)  # columns 0 … clean-1
    assert per_column[:clean].max() < 1e-12
    assert per_column[clean] > 1e-9


def test_upscale_spans_cut_the_axis_into_parts_with_context() -> None:
    for length in range(1, 120):
        spans = upscale_spans(length, 24, 8)
        parts = [(a, b) for _, a, b, _ in spans]
        assert parts[0][0] == 0 and parts[-1][1] == length
        assert all(b0 == a1 for (_, b0), (a1, _) in pairwise(parts))  # side by side
        assert all(0 < b - a <= 24 for a, b in parts)
        for read_start, a, b, read_end in spans:
            assert read_start == max(0, a - 8) and read_end == min(length, b + 8)


def test_upscale_tiled_refuses_bad_options_and_outputs(sr_net) -> None:
    img = photo(40, 40)
    with pytest.raises(ConfigError, match=r"^tile must be at least 16, got 8"):
        upscale_tiled(PadCrop(sr_net), img, scale=4, context=8, tile=8)
    with pytest.raises(ConfigError, match=r"^overlap must be >= 0"):
        tiling.check_upscale_tiling(32, -2)
    with pytest.raises(ValueError, match=r"a ×2 upscale of a tile gave"):
        upscale_tiled(PadCrop(sr_net), img, scale=2, context=8, tile=16)  # a ×4 network
    assert tiling.default_upscale_tile(4) == 192 and tiling.default_upscale_tile(8) == 96
