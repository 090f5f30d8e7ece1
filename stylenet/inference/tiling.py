"""Stylize very large photos tile by tile, with one set of instance-norm statistics.

Cutting a photo into tiles and stylizing each one does not work with `TransformerNet` as it is:
every instance norm normalizes a feature map with that map's own per-channel mean and variance,
so each tile is normalized by the statistics of its own content and the tiles come out in
visibly different tones. What we do instead:

1. **Record.** Shrink a copy of the whole photo to `stats_size` on the long side, run it through
   the network once, and keep every `nn.InstanceNorm2d`'s per-channel mean and variance
   (`instance_norm_stats(net, "record", stats)`).
2. **Replay.** Stylize the tiles with every instance norm using those statistics instead of the
   tile's own, so all tiles are normalized alike, as parts of one image.
3. **Blend.** Tiles start on a 4-px grid (the phase of the two stride-2 convs is the same as in
   the whole photo), overlap by at least `overlap` px and are cross-faded linearly over the middle
   half of each overlap. The outer quarters are left to the neighbour: pixels near a tile's edge
   see reflection padding instead of the real surroundings.

The statistics of a smaller copy are an approximation (the network is not scale invariant), and
the overlap needed grows with the network's receptive field; the README's "Large images" section
gives the measured error, memory and time.

`SuperResolutionNet` has no normalization at all, so an output pixel depends only on the input
pixels within its receptive field: `upscale_tiled` cuts the input into tiles that each read
`upscale_context` px beyond the part of the output they give, which is then exactly the untiled
output, and writes each part straight into the ×scale uint8 result (no cross-fade, no float
buffer of the output). It only calls the network, so exports tile too.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Iterator
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from tqdm import tqdm

from stylenet.errors import ConfigError
from stylenet.io.images import float_to_uint8, uint8_to_float
from stylenet.models import PadCrop, SuperResolutionConfig

__all__ = [
    "DEFAULT_OVERLAP",
    "DEFAULT_STATS_SIZE",
    "DEFAULT_TILE",
    "MIN_UPSCALE_TILE",
    "check_tiling",
    "check_upscale_tiling",
    "default_overlap",
    "default_upscale_tile",
    "instance_norm_stats",
    "stylize_tiled",
    "tile_spans",
    "upscale_context",
    "upscale_spans",
    "upscale_tiled",
]

# TransformerNet downsamples twice by 2. Tiles that start on a 4-px grid put every pixel at the
# same phase of the strided convs as in the whole image, so a tile's interior reproduces the
# untiled output exactly instead of a slightly shifted texture that would ghost in the overlaps.
_ALIGN = 4
# Fraction of each overlap, at either end, where a tile gets (almost) no weight: the pixels
# closest to a tile's edge are the ones its reflection padding distorts (README, "Large images":
# 32 px of the default 128 put the cross-fade where tiles agree with the untiled output to 3e-5).
_FEATHER_MARGIN = 0.25
# Keeps the weight sum positive in the rare triple overlaps of small images.
_MIN_WEIGHT = 1e-6

_MISSING = object()


def _uses_instance_stats(norm: nn.InstanceNorm2d) -> bool:
    # With track_running_stats in eval mode, InstanceNorm2d already normalizes every tile with the
    # same running statistics: nothing to record or replay.
    return norm.training or not norm.track_running_stats


def _recording_forward(
    name: str, original: Callable[[Tensor], Tensor], stats: dict[str, tuple[Tensor, Tensor]]
) -> Callable[[Tensor], Tensor]:
    def forward(x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[0] != 1:
            raise ValueError(
                f"instance_norm_stats(mode='record') needs one image, (1, C, H, W), at {name!r}; "
                f"got {tuple(x.shape)}"
            )
        # What F.instance_norm computes: per-channel mean and biased variance over H, W.
        # float32 so half-precision runs record usable statistics.
        var, mean = torch.var_mean(x.detach().float(), dim=(2, 3), correction=0, keepdim=True)
        stats[name] = (mean, var)  # (1, C, 1, 1) each
        return original(x)

    return forward


def _replaying_forward(
    name: str, norm: nn.InstanceNorm2d, stats: dict[str, tuple[Tensor, Tensor]]
) -> Callable[[Tensor], Tensor]:
    def forward(x: Tensor) -> Tensor:
        mean, var = stats[name]  # (1, C, 1, 1)
        if mean.shape[1] != x.shape[1]:
            raise ValueError(
                f"recorded statistics for {name!r} have {mean.shape[1]} channels, the input has "
                f"{x.shape[1]}"
            )
        # Unbatched (C, H, W) input, which InstanceNorm2d also accepts.
        squeeze = x.ndim == 3
        if squeeze:
            x = x.unsqueeze(0)
        scale = torch.rsqrt(var.to(x.device, torch.float32) + norm.eps)
        if norm.weight is not None:
            scale = scale * norm.weight.detach().float().view(1, -1, 1, 1)
        # (x - mean) first, then scale: folding the mean into a shift would cancel badly in
        # half precision. One new activation-sized tensor, the rest in place.
        y = x - mean.to(x.device, x.dtype)
        y.mul_(scale.to(x.dtype))
        if norm.bias is not None:
            y.add_(norm.bias.detach().to(x.dtype).view(1, -1, 1, 1))
        return y[0] if squeeze else y

    return forward


@contextlib.contextmanager
def instance_norm_stats(
    net: nn.Module,
    mode: Literal["record", "replay"],
    stats: dict[str, tuple[Tensor, Tensor]],
) -> Iterator[dict[str, tuple[Tensor, Tensor]]]:
    """Record, or replay, the per-channel statistics of every `nn.InstanceNorm2d` in `net`.

    Inside the context each instance norm's ``forward`` is temporarily overridden on the
    instance (the class and the parameters are untouched); on exit, also on exceptions, the
    previous ``forward`` is restored.

    - ``"record"``: every forward stores ``stats[name] = (mean, var)``, each (1, C, 1, 1) float32,
      computed as `F.instance_norm` does (mean and biased variance over H, W), and then runs the
      normal instance norm. The input must be a single image, (1, C, H, W).
    - ``"replay"``: every forward computes ``(x - mean) / sqrt(var + eps) * weight + bias`` with
      the stored statistics (broadcast over the batch) instead of the input's own.

    Norms with ``track_running_stats=True`` in eval mode use running statistics, which are the
    same for every input already; they are left alone.

    Args:
        net: Network whose instance norms to patch (named as in ``net.named_modules()``).
        mode: ``"record"`` or ``"replay"``.
        stats: Filled in by ``"record"``; read by ``"replay"``, which needs an entry for every
            instance norm.

    Yields:
        `stats` itself.

    Raises:
        ValueError: Unknown `mode`, or ``"replay"`` with statistics missing for some norm.
    """
    if mode not in ("record", "replay"):
        raise ValueError(f"mode must be 'record' or 'replay', got {mode!r}")
    norms = {
        name: m
        for name, m in net.named_modules()
        if isinstance(m, nn.InstanceNorm2d) and _uses_instance_stats(m)
    }
    if mode == "replay":
        missing = [name for name in norms if name not in stats]
        if missing:
            raise ValueError(
                f"no recorded statistics for instance norm(s) {missing}: record them with "
                "instance_norm_stats(net, 'record', stats) on the same network first"
            )
    # The override lives in each norm's instance dict, which is where Python looks before the
    # class; one already there (an enclosing context's) is kept and put back.
    saved: dict[str, object] = {}
    try:
        for name, norm in norms.items():
            own = vars(norm)
            saved[name] = own.get("forward", _MISSING)
            if mode == "record":
                own["forward"] = _recording_forward(name, norm.forward, stats)
            else:
                own["forward"] = _replaying_forward(name, norm, stats)
        yield stats
    finally:
        for name, previous in saved.items():
            own = vars(norms[name])
            if previous is _MISSING:
                del own["forward"]
            else:
                own["forward"] = previous


def tile_spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Tiles along one axis: half-open (start, end) spans that cover [0, `length`).

    Starts are multiples of 4 (see ``_ALIGN``) and evenly spread, so neighbouring tiles overlap
    by at least `overlap` pixels and by about the same amount everywhere. Every tile is `tile`
    pixels long except the last, which runs to the end of the axis (up to ``tile + 3`` long,
    so that it stays aligned); a single span covers an axis no longer than `tile`.

    Args:
        length: Image side, ≥ 1.
        tile: Tile side, a multiple of 4.
        overlap: Minimum overlap of neighbouring tiles, ``0 <= overlap < tile / 2``.

    Returns:
        The spans, ordered by start.
    """
    if length <= tile:
        return [(0, length)]
    stride = (tile - overlap) // _ALIGN * _ALIGN  # largest aligned step keeping the overlap
    count = 1 + math.ceil((length - tile) / stride)
    last = (length - tile) // _ALIGN * _ALIGN
    step = (length - tile) / (count - 1)  # ≤ stride
    starts = sorted(
        {min(last, _ALIGN * round(i * step / _ALIGN)) for i in range(count - 1)} | {last}
    )
    return [(s, s + tile) for s in starts[:-1]] + [(starts[-1], length)]


def _feather(spans: list[tuple[int, int]], k: int) -> np.ndarray:
    """1-D blending weight of tile `k`, (end - start,) float32: 1 inside, a linear ramp over
    each overlap with a neighbour (neighbours' ramps sum to 1), and no ramp at the image
    border, which nothing else covers."""
    start, end = spans[k]
    weight = np.ones(end - start, np.float32)

    def ramp(n: int) -> np.ndarray:  # rising, (n,)
        margin = _FEATHER_MARGIN * n
        x = (np.arange(n, dtype=np.float32) + 0.5 - margin) / max(n - 2 * margin, 1e-6)
        return np.clip(x, _MIN_WEIGHT, 1.0)

    if k > 0 and (n := spans[k - 1][1] - start) > 0:
        weight[:n] = np.minimum(weight[:n], ramp(n))
    if k < len(spans) - 1 and (n := end - spans[k + 1][0]) > 0:
        weight[-n:] = np.minimum(weight[-n:], ramp(n)[::-1])
    return weight


# Overlap of neighbouring tiles (px) for TransformerNet's 5 residual blocks: the 32 px left outside
# the cross-fade are where a replayed tile agrees with the untiled output to float noise (README,
# "Large images"). Smaller tiles get a quarter of their side.
DEFAULT_OVERLAP = 128
# Tile side by default: as fast as 512 or 1024 on 2 CPU cores, and keeps an 8000×6000 photo under
# 2 GB (README, "Large images").
DEFAULT_TILE = 768
# Long side of the downscaled copy whose statistics every tile shares: 1024 keeps that pass
# (≈ 0.76 GB) near a tile's forward (README, "Large images").
DEFAULT_STATS_SIZE = 1024
MIN_TILE = 64


def default_overlap(tile: int) -> int:
    """`DEFAULT_OVERLAP`, or a quarter of `tile` where that is smaller."""
    return min(DEFAULT_OVERLAP, tile // 4)


def check_tiling(tile: int, overlap: int, stats_size: int) -> None:
    """Refuse tiling options that cannot work, naming the option.

    Raises:
        ConfigError: `tile` not a multiple of 4 or under 64, `overlap` not in [0, tile / 2),
            `stats_size` under 64, or any of them not an integer.
    """
    for option, value in (("tile", tile), ("overlap", overlap), ("stats_size", stats_size)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ConfigError(f"{option} must be an integer, got {value!r}")
    if tile < MIN_TILE or tile % _ALIGN:
        raise ConfigError(
            f"tile must be a multiple of {_ALIGN} and at least {MIN_TILE}, got {tile}"
        )
    if not 0 <= overlap < tile / 2:
        raise ConfigError(
            f"overlap must be >= 0 and less than tile / 2 = {tile / 2:g}, got {overlap}"
        )
    if stats_size < MIN_TILE:
        raise ConfigError(f"stats_size must be at least {MIN_TILE}, got {stats_size}")


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", type(image).__name__)
        raise ValueError(f"image must be an (H, W, 3) RGB array, got {shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (as from PIL), got dtype {image.dtype}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image is empty: shape {image.shape}")


def _check_net(net: nn.Module, device: torch.device, dtype: torch.dtype) -> None:
    param = next(net.parameters(), None)
    if param is None:
        return
    if param.device.type != device.type or (
        device.index is not None and param.device.index != device.index
    ):
        raise ValueError(f"device is {device} but the network is on {param.device}: move it first")
    if param.dtype != dtype:
        raise ValueError(f"dtype is {dtype} but the network is {param.dtype}: convert it first")


def _record_stats(
    net: nn.Module, image: np.ndarray, stats_size: int, device: torch.device, dtype: torch.dtype
) -> dict[str, tuple[Tensor, Tensor]]:
    h, w = image.shape[:2]
    small = image
    if max(h, w) > stats_size:
        scale = stats_size / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        # PIL widens the bicubic kernel when shrinking, i.e. antialiases; reducing_gap first
        # box-reduces by an integer factor, which is much faster on huge photos and
        # indistinguishable at these ratios.
        small = np.asarray(
            Image.fromarray(image).resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)
        )
    stats: dict[str, tuple[Tensor, Tensor]] = {}
    with instance_norm_stats(net, "record", stats):
        PadCrop(net)(uint8_to_float(small, device=device, dtype=dtype)[None])
    return stats


@torch.inference_mode()
def stylize_tiled(
    net: nn.Module,
    image: np.ndarray,
    *,
    tile: int = DEFAULT_TILE,
    overlap: int | None = None,
    stats_size: int = DEFAULT_STATS_SIZE,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    progress: bool = False,
) -> np.ndarray:
    """Stylize a photo of any size in tiles, with memory bounded by the tile size.

    Every instance norm uses the statistics of one pass over a copy of the whole photo shrunk to
    `stats_size` (see the module docstring), so all tiles share one tone. Tiles overlap and are
    cross-faded; the result has exactly the input's size. A photo that fits in one tile goes
    through the same path as a single tile.

    Args:
        net: Stylizer mapping (1, 3, H, W) in [0, 1] to the same shape, e.g. `TransformerNet`;
            already on `device` and in `dtype`. Its modules are restored on return.
        image: (H, W, 3) uint8 RGB, e.g. ``np.asarray(pil_image)``. Not modified.
        tile: Tile side in pixels, a multiple of 4, ≥ 64.
        overlap: Minimum overlap of neighbouring tiles in pixels, < tile / 2; the cross-fade
            spans the middle half of each overlap. None: `default_overlap` (128 for tiles of
            512 px and more).
        stats_size: Long side of the copy the normalization statistics come from; photos no
            larger are used as they are (exact statistics).
        device: Where the network runs; tiles cross to it as uint8.
        dtype: Floating type of the network's input.
        progress: Show a tqdm bar over the tiles.

    Returns:
        (H, W, 3) uint8 RGB.

    Raises:
        ConfigError: A bad `tile`, `overlap` or `stats_size` (the message names it).
        ValueError: A bad `image`, or a network not on `device` / in `dtype`.
    """
    if overlap is None:
        overlap = default_overlap(tile)
    check_tiling(tile, overlap, stats_size)
    _check_image(image)
    device = torch.device(device)
    _check_net(net, device, dtype)
    height, width = image.shape[:2]
    stats = _record_stats(net, image, stats_size, device, dtype)

    rows, cols = tile_spans(height, tile, overlap), tile_spans(width, tile, overlap)
    row_weights = [_feather(rows, i) for i in range(len(rows))]
    col_weights = [_feather(cols, j) for j in range(len(cols))]
    out = np.empty((height, width, 3), np.uint8)
    # Accumulate one band of tile rows at a time: band row 0 is image row `top` of the current
    # tile row. Rows no later tile touches are finished and written out as uint8, so the only
    # float buffers are (band, W), not (H, W).
    band = max(end - start for start, end in rows)
    acc = np.zeros((band, width, 3), np.float32)  # Σ weight · styled
    wsum = np.zeros((band, width, 1), np.float32)  # Σ weight

    bar = tqdm(total=len(rows) * len(cols), unit="tile", desc="stylize tiles", disable=not progress)
    any_size = PadCrop(net)
    with bar, instance_norm_stats(net, "replay", stats):
        for i, (top, bottom) in enumerate(rows):
            for j, (left, right) in enumerate(cols):
                x = uint8_to_float(image[top:bottom, left:right], device=device, dtype=dtype)
                styled = any_size(x[None])[0].permute(1, 2, 0).float().cpu().numpy()  # (h, w, 3)
                h = styled.shape[0]
                weight = row_weights[i][:, None, None] * col_weights[j][None, :, None]  # (h, w, 1)
                acc[:h, left:right] += styled * weight
                wsum[:h, left:right] += weight
                bar.update()
            done = rows[i + 1][0] - top if i + 1 < len(rows) else bottom - top
            finished = acc[:done]
            np.divide(finished, wsum[:done], out=finished)
            out[top : top + done] = float_to_uint8(torch.from_numpy(finished).permute(2, 0, 1))
            # Rows shared with the next tile row move to the top of the band.
            carry = bottom - top - done
            acc[:carry] = acc[done : done + carry]
            wsum[:carry] = wsum[done : done + carry]
            acc[carry:] = 0.0
            wsum[carry:] = 0.0
    return out


# --- super-resolution: exact tiles of a network without normalization ----------------------------

# Smallest input tile of `upscale_tiled` (px): below it the context read around each tile costs
# more than the tile.
MIN_UPSCALE_TILE = 16


def default_upscale_tile(scale: int) -> int:
    """Input tile side for a ×`scale` network: the one whose output is `DEFAULT_TILE` px (192 at
    ×4). With its context, one tile's forward peaks at 0.7 (×2) to 1.1 GB (×8) with the paper's
    64 channels (≈ 1.15 KB per output pixel; README, "Large images")."""
    return max(MIN_UPSCALE_TILE, DEFAULT_TILE // scale)


def upscale_context(config: SuperResolutionConfig) -> int:
    """Input px a tile must read on each side beyond the part of the output it gives, for that
    part to be exactly the untiled output: the network's receptive radius, in input px.

    14 for the paper's ×4 and ×8 networks (4 residual blocks); 5 + 2·blocks + ⌈3 / scale⌉ in
    general. Tests check that this much gives the untiled output and one pixel less does not.
    """
    # A pixel near a tile's edge sees some conv's reflection padding instead of its real
    # neighbours. The margin that padding spoils, in input px: the 9×9 head conv 4, each
    # residual block's two 3×3 convs 2, the 3×3 conv of ×2 stage k (after a nearest upsample,
    # at 2^k× the input's resolution) 1/2^k, summing to 1 - 1/scale over the stages, and the
    # 9×9 tail conv at the output's resolution 4/scale: 5 + 2·blocks + 3/scale. An input pixel is
    # clean once all of its scale×scale output pixels are, hence the ceiling. The bicubic skip
    # reads only 2 px on either side (a 4-tap kernel with half-pixel centres).
    return 5 + 2 * config.num_residual_blocks + math.ceil(3 / config.scale)


def check_upscale_tiling(tile: int, overlap: int | None = None) -> None:
    """Refuse tiling options `upscale_tiled` cannot use, naming the option.

    Raises:
        ConfigError: `tile` under `MIN_UPSCALE_TILE`, `overlap` negative, or either of them not
            an integer.
    """
    for option, value in (("tile", tile), ("overlap", overlap)):
        if value is None and option == "overlap":
            continue
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ConfigError(f"{option} must be an integer, got {value!r}")
    if tile < MIN_UPSCALE_TILE:
        raise ConfigError(f"tile must be at least {MIN_UPSCALE_TILE}, got {tile}")
    if overlap is not None and overlap < 0:
        raise ConfigError(f"overlap must be >= 0, got {overlap}")


def upscale_spans(length: int, tile: int, context: int) -> list[tuple[int, int, int, int]]:
    """Tiles along one axis of `upscale_tiled`'s input: (start, end) of the part each tile gives
    (≤ `tile` px, evenly spread, covering [0, `length`) without overlap) and (read_start,
    read_end), that part widened by `context` on both sides within the image.

    Returns:
        (read_start, start, end, read_end) per tile, ordered.
    """
    count = max(1, math.ceil(length / tile))
    cuts = [round(i * length / count) for i in range(count + 1)]
    return [
        (max(0, a - context), a, b, min(length, b + context)) for a, b in itertools.pairwise(cuts)
    ]


@torch.inference_mode()
def upscale_tiled(
    upscale: Callable[[Tensor], Tensor],
    image: np.ndarray,
    *,
    scale: int,
    context: int,
    tile: int,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> np.ndarray:
    """Upscale a photo of any size tile by tile, with memory bounded by the tile and the result.

    Each tile reads `context` px beyond the part it gives (`upscale_spans`); with `context` at
    least `upscale_context` of the network, every part is exactly the untiled output (up to the
    float rounding of convolution kernels at another size), so parts are placed side by side at
    ×`scale` coordinates, no cross-fade. The result is written tile by tile into one uint8
    array; no float copy of the whole output is ever held.

    Args:
        upscale: (1, 3, h, w) float32 in [0, 1] → (1, 3, h·scale, w·scale) in [0, 1], any h, w
            ≥ 1 (a backend, or `PadCrop` of the network).
        image: (H, W, 3) uint8 RGB. Not modified.
        scale: The network's factor.
        context: Input px each tile reads beyond its part, ≥ 0.
        tile: Input side of a tile's part, ≥ `MIN_UPSCALE_TILE`.
        device: Where tiles cross to (as uint8) before they are made float.
        progress: Show a tqdm bar over the tiles.

    Returns:
        (H·scale, W·scale, 3) uint8 RGB.

    Raises:
        ConfigError: A bad `tile` or `context`.
        ValueError: A bad `image`, or an output of the wrong shape.
    """
    check_upscale_tiling(tile)
    if isinstance(context, bool) or not isinstance(context, int | np.integer) or context < 0:
        raise ConfigError(f"context must be an integer >= 0, got {context!r}")
    _check_image(image)
    height, width = image.shape[:2]
    rows, cols = upscale_spans(height, tile, context), upscale_spans(width, tile, context)
    out = np.empty((height * scale, width * scale, 3), np.uint8)
    bar = tqdm(total=len(rows) * len(cols), unit="tile", desc="upscale tiles", disable=not progress)
    with bar:
        for read_top, top, bottom, read_bottom in rows:
            for read_left, left, right, read_right in cols:
                x = uint8_to_float(image[read_top:read_bottom, read_left:read_right], device=device)
                y = upscale(x[None])  # (1, 3, h·scale, w·scale)
                want = (1, 3, (read_bottom - read_top) * scale, (read_right - read_left) * scale)
                if tuple(y.shape) != want:
                    raise ValueError(
                        f"a ×{scale} upscale of a tile gave {tuple(y.shape)}, not {want}"
                    )
                part = y[
                    0,
                    :,
                    (top - read_top) * scale : (bottom - read_top) * scale,
                    (left - read_left) * scale : (right - read_left) * scale,
                ]
                out[top * scale : bottom * scale, left * scale : right * scale] = float_to_uint8(
                    part
                )
                bar.update()
    return out
