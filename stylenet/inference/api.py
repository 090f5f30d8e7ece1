"""Python API for trained models: ``stylenet.load(path)`` returns a `Stylizer`.

import stylenet
stylize = stylenet.load("model.pt")   # or model.onnx, model.torchscript.pt, last.ckpt
out = stylize("photo.jpg")            # PIL image, same size as the photo
out = stylize(pil_image, strength=0.7, preserve_color=True)
batch = stylize(torch.rand(2, 3, 256, 256))  # (B, 3, H, W) in [0, 1] -> same shape

upscale = stylenet.load("sr/model.pt")  # a super-resolution model: outputs are ×scale
big = upscale("photo.jpg", match_histograms=True)  # PIL image, (W·scale, H·scale)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch
from PIL import Image
from torch import Tensor

from stylenet.errors import ConfigError, StylenetError
from stylenet.inference import color, tiling
from stylenet.inference.backends import Backend, load_backend
from stylenet.inference.styles import StyleKey, style_weights
from stylenet.io.images import (
    float_to_uint8,
    load_image,
    pil_to_tensor,
    tensor_to_pil,
    uint8_to_float,
)
from stylenet.models import SuperResolutionConfig, SuperResolutionNet, TransformerNet

log = logging.getLogger(__name__)

# Images narrower than this are refused: the network's first 9×9 conv needs 8 px, and a
# stylization of a 1-px line means nothing.
MIN_SIDE = 8
# Peak memory of one untiled forward pass per pixel and per unit of `base_channels`, fp32, in
# inference mode (README, "Large images": the 32-channel network peaks at ~1 KB per pixel).
_BYTES_PER_PIXEL_CHANNEL = 32.0
# The same for a SuperResolutionNet, per OUTPUT pixel and per unit of `channels`: its last ×2
# stage holds a few maps of `channels` at the output's size (README, "Large images": the paper's
# 64 channels peak at 1.10-1.20 KB per output pixel at ×2, ×4 and ×8).
_SR_BYTES_PER_OUTPUT_PIXEL_CHANNEL = 18.0
# Share of the free memory an untiled forward may take before `Stylizer` tiles instead.
_MEMORY_SHARE = 0.5
# Rows per band when post-processing a tiled result, to keep memory bounded on huge images.
_BAND_ROWS = 512


class InputImageError(StylenetError, ValueError):
    """A photo that cannot be stylized as given (too small); the message gives its size."""

    exit_code = 1


class Stylizer:
    """Callable wrapper of a trained model: a style model (outputs of the input's size), or a
    super-resolution model (``task == "superres"``: outputs ``scale`` × larger; no styles,
    strength or colour preservation, optionally histogram matching to the input).

    Args:
        backend: What runs the network (see `stylenet.inference.backends.load_backend`).
        preserve_color: Default for luminance-only transfer (keep the photo's colours).
        strength: Default stylization strength, 0 (photo) … 1 (full style).
        match_histograms: Default for matching each channel's histogram of a super-resolution
            output to the input's, the paper's post-processing (Johnson et al. 2016, Sec. 4.2);
            None: on for super-resolution models, off (and not allowed) for style models.
        styles: The model's style names (multi-style models; [] when unknown).
        select: Loads the backend of another style or mix (``load`` provides it), for
            `with_style` and the ``style=`` / ``mix=`` arguments.

    Raises:
        ConfigError: A default that does not apply to the model's task.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        preserve_color: bool = False,
        strength: float = 1.0,
        match_histograms: bool | None = None,
        styles: list[str] | None = None,
        select: Callable[[StyleKey | None, Mapping[StyleKey, float] | None], Backend] | None = None,
    ) -> None:
        self.backend = backend
        if match_histograms is None:
            match_histograms = self.task == "superres"
        self._check_options(preserve_color, strength, match_histograms)
        self.preserve_color = preserve_color
        self.strength = strength
        self.match_histograms = match_histograms
        self.styles = list(styles or [])
        self._select = select
        self._by_style: dict[tuple[Any, ...], Stylizer] = {}

    def with_style(
        self, style: StyleKey | None = None, mix: Mapping[StyleKey, float] | None = None
    ) -> Stylizer:
        """This stylizer with another style (name or index) or mix of a multi-style model
        (cached per choice)."""
        if self._select is None:
            raise ConfigError("this stylizer was not made by stylenet.load: it has one style")
        key = (style, tuple(sorted((str(k), v) for k, v in (mix or {}).items())))
        if key not in self._by_style:
            self._by_style[key] = Stylizer(
                self._select(style, mix),
                preserve_color=self.preserve_color,
                strength=self.strength,
                match_histograms=self.match_histograms,
                styles=self.styles,
                select=self._select,
            )
        return self._by_style[key]

    @property
    def device(self) -> torch.device:
        return self.backend.device

    @property
    def task(self) -> str:
        """``"style"`` or ``"superres"``."""
        return self.backend.task

    @property
    def scale(self) -> int:
        """Output side / input side (1 for a style model)."""
        return self.backend.scale

    @property
    def min_side(self) -> int:
        """The smallest image side taken: 8 px for a style model (`MIN_SIDE`), the network's own
        for a super-resolution model (`SuperResolutionNet.min_side`, 5)."""
        return SuperResolutionNet.min_side if self.task == "superres" else MIN_SIDE

    @property
    def can_tile(self) -> bool:
        """Whether `tile=` works: tiling a style model needs the network's instance norms, which
        exports hide; a super-resolution model has none and tiles in any format."""
        return self.task == "superres" or self.backend.net is not None

    @property
    def default_tile(self) -> int:
        """The tile side (input px) used when a photo must be tiled and no tile was given."""
        if self.task == "superres":
            return tiling.default_upscale_tile(self.scale)
        return tiling.DEFAULT_TILE

    def __repr__(self) -> str:
        return f"Stylizer(backend={self.backend.name}, device={self.device})"

    def check_input_size(self, height: int, width: int) -> None:
        """`check_size` with this model's smallest side."""
        check_size(height, width, min_side=self.min_side, task=self.task)

    def _check_options(self, preserve_color: bool, strength: float, match_histograms: bool) -> None:
        """Refuse post-processing that does not apply to the model's task, in one line."""
        color.check_strength(strength)
        if self.task == "superres" and (preserve_color or strength != 1.0):
            raise ConfigError(
                f"{self.backend.source} is a ×{self.scale} super-resolution model: strength and "
                "preserve_color apply to style models only"
            )
        if self.task != "superres" and match_histograms:
            raise ConfigError(
                f"{self.backend.source} is a style model: match_histograms applies to "
                "super-resolution models only"
            )

    def __call__(
        self,
        image: Image.Image | str | os.PathLike[str] | Tensor,
        *,
        preserve_color: bool | None = None,
        strength: float | None = None,
        match_histograms: bool | None = None,
        tile: int | None = None,
        overlap: int | None = None,
        stats_size: int = tiling.DEFAULT_STATS_SIZE,
        progress: bool = False,
        style: StyleKey | None = None,
        mix: Mapping[StyleKey, float] | None = None,
    ) -> Image.Image | Tensor:
        """Stylize (or upscale) a PIL image, an image file, or a (B, 3, H, W) / (3, H, W) tensor
        in [0, 1].

        Returns a PIL image for PIL/path input, else a tensor on the input's device: of the
        input's shape, or ``scale`` × larger in H and W for a super-resolution model.
        ``tile`` (input pixels) works on a large image tile by tile with bounded memory (style:
        model files and checkpoints, not exports; super-resolution: any format); a photo too
        large for the free memory is tiled without being asked (`needs_tiling`).

        ``style`` / ``mix`` pick another style or a blend of a multi-style model for this call
        (see `with_style`). ``match_histograms`` (super-resolution only) gives each channel of
        the output the histogram of the input's.

        Raises:
            InputImageError: A side under `min_side`.
            ConfigError: Bad tiling options, or tiling asked of (or needed by) a style export;
                an unknown style; a style or style option for a super-resolution model, or
                ``match_histograms`` for a style model.
        """
        me = self if style is None and mix is None else self.with_style(style, mix)
        pc = self.preserve_color if preserve_color is None else preserve_color
        st = self.strength if strength is None else strength
        mh = self.match_histograms if match_histograms is None else match_histograms
        me._check_options(pc, st, mh)
        if isinstance(image, Tensor):
            batch = image.unsqueeze(0) if image.ndim == 3 else image
            out = me.stylize_batch(batch, preserve_color=pc, strength=st, match_histograms=mh)
            return out[0] if image.ndim == 3 else out
        if not isinstance(image, Image.Image):
            image = load_image(image)
        me.check_input_size(image.height, image.width)
        tile = me.choose_tile(image.height, image.width, tile)
        if tile and me.task == "superres":
            return me._upscale_tiled(
                image, tile=tile, overlap=overlap, match_histograms=mh, progress=progress
            )
        if tile:
            return me._stylize_tiled(
                image,
                tile=tile,
                overlap=overlap,
                stats_size=stats_size,
                preserve_color=pc,
                strength=st,
                progress=progress,
            )
        photo = pil_to_tensor(image).unsqueeze(0)
        # Matched on the 8-bit result (`to_image`), as a tiled photo is.
        out = me.stylize_batch(photo, preserve_color=pc, strength=st, match_histograms=False)
        return me.to_image(out[0], image, match_histograms=mh)

    def to_image(
        self, output: Tensor, photo: Image.Image, *, match_histograms: bool = False
    ) -> Image.Image:
        """An output, (3, H, W) in [0, 1], as an 8-bit RGB image; ``match_histograms``: matched
        to `photo` (its input) on its 8-bit values (`color.match_histograms_uint8`), as a tiled
        result is, so that a photo comes out the same tiled or not (matching the float output
        instead differs where many pixels tie, e.g. blown highlights)."""
        if not match_histograms:
            return tensor_to_pil(output)
        pixels = float_to_uint8(output)
        color.match_histograms_uint8(pixels, np.asarray(photo.convert("RGB")))
        return Image.fromarray(pixels, "RGB")

    def stylize_batch(
        self,
        images: Tensor,
        *,
        preserve_color: bool = False,
        strength: float = 1.0,
        match_histograms: bool | None = None,
        styles: Sequence[StyleKey] | None = None,
    ) -> Tensor:
        """(B, 3, H, W) in [0, 1] → stylized, same shape (upscaled: (B, 3, H·scale, W·scale)),
        on the input's device.

        ``styles`` (a multi-style model): one style per image, all in one forward pass; e.g.
        a photo repeated N times with ``styles=stylizer.styles`` gives it in every style.
        ``match_histograms`` (a super-resolution model; None: the stylizer's default): each
        output channel gets the histogram of the input's (`stylenet.inference.color.
        match_histograms`).

        Raises:
            ConfigError: ``styles`` for a one-style model, or an unknown style; an option that
                does not apply to the model's task.
            ValueError: ``styles`` not one per image.
        """
        if match_histograms is None:
            match_histograms = self.match_histograms
        self._check_options(preserve_color, strength, match_histograms)
        if images.ndim == 4:
            self.check_input_size(images.shape[-2], images.shape[-1])
        rows = None
        if styles is not None:
            if not self.styles:
                raise ConfigError(f"{self.backend.source} carries one style: styles= needs more")
            if len(styles) != len(images):
                raise ValueError(f"give one style per image: {len(styles)} for {len(images)}")
            rows = torch.stack([style_weights(self.styles, style=key) for key in styles])
        photo = images.to(self.device, torch.float32)
        out = self.backend(photo, rows).to(self.device, torch.float32)
        if match_histograms:
            out = color.match_histograms(out, photo)
        else:
            out = postprocess(out, photo, preserve_color=preserve_color, strength=strength)
        return out.to(images.device)

    def untiled_bytes(self, height: int, width: int) -> int:
        """Estimated peak memory of stylizing (or upscaling) one image of this size in one pass:
        per pixel for a style model, per output pixel (``scale``² per input pixel) for a
        super-resolution model."""
        if self.task == "superres":
            out_pixels = height * width * self.scale**2
            return int(out_pixels * self._sr_config().channels * _SR_BYTES_PER_OUTPUT_PIXEL_CHANNEL)
        net = self.backend.net
        channels = net.config.base_channels if isinstance(net, TransformerNet) else 32
        return int(height * width * channels * _BYTES_PER_PIXEL_CHANNEL)

    def _sr_config(self) -> SuperResolutionConfig:
        """The super-resolution network's config: the network's, or an export's card's."""
        net, card = self.backend.net, self.backend.card
        if isinstance(net, SuperResolutionNet):
            return net.config
        config = dict(card.config) if card is not None else {}
        try:
            return SuperResolutionConfig(**{"scale": self.scale, **config})
        except (TypeError, ConfigError):  # an export made elsewhere: the paper's widths
            return SuperResolutionConfig(scale=self.scale)

    def batch_capacity(self, height: int, width: int) -> int:
        """How many images of this size one untiled pass may take: those that fit in half the
        device's free memory (0: even one must be tiled)."""
        budget = _MEMORY_SHARE * free_memory(self.device)
        return int(budget // max(1, self.untiled_bytes(height, width)))

    def choose_tile(
        self, height: int, width: int, tile: int | None = None, count: int = 1
    ) -> int | None:
        """The tile side (input px) `count` photo(s) of this size are stylized in: `tile` when
        asked, `default_tile` (with a warning) when one untiled pass would take more than half
        the free memory, else None: one pass. The one place this is decided; the CLI, the API,
        the app, the server and --devices all ask here and report what it said."""
        if tile:
            return tile
        if not self.needs_tiling(height, width):
            return None
        log.warning(
            "%d photo(s) of %d×%d need more memory untiled than is free; %s them in %d-px "
            "tiles (set a tile size to choose)",
            count,
            width,
            height,
            "upscaling" if self.task == "superres" else "stylizing",
            self.default_tile,
        )
        return self.default_tile

    def needs_tiling(self, height: int, width: int) -> bool:
        """Whether one untiled pass would take more than half the device's free memory."""
        return self.batch_capacity(height, width) < 1

    def _upscale_tiled(
        self,
        image: Image.Image,
        *,
        tile: int,
        overlap: int | None,
        match_histograms: bool,
        progress: bool,
    ) -> Image.Image:
        """Upscale in tiles that each read the network's receptive radius around them (or half
        of `overlap`), so the result is the untiled one (`tiling.upscale_tiled`)."""
        tiling.check_upscale_tiling(tile, overlap)
        context = tiling.upscale_context(self._sr_config()) if overlap is None else -(-overlap // 2)
        photo = np.asarray(image.convert("RGB"))  # (H, W, 3) uint8
        out = tiling.upscale_tiled(
            self.backend,
            photo,
            scale=self.scale,
            context=context,
            tile=tile,
            device=self.device,
            progress=progress,
        )
        if match_histograms:
            # On the 8-bit result (an uint8 lookup table, in place): a float copy of a ×4
            # 4000×3000 photo would be 2.3 GB.
            color.match_histograms_uint8(out, photo)
        return Image.fromarray(out, "RGB")

    def _stylize_tiled(
        self,
        image: Image.Image,
        *,
        tile: int,
        overlap: int | None,
        stats_size: int,
        preserve_color: bool,
        strength: float,
        progress: bool,
    ) -> Image.Image:
        net = self.backend.net
        if net is None:
            raise ConfigError(
                f"tiling needs the network's instance-norm layers, which a {self.backend.name} "
                "export hides; use the model.pt file or checkpoint (or a smaller image)"
            )
        photo = np.asarray(image.convert("RGB"))  # (H, W, 3) uint8
        out = tiling.stylize_tiled(
            net,
            photo,
            tile=tile,
            overlap=overlap,
            stats_size=stats_size,
            device=self.device,
            dtype=self.backend.dtype,
            progress=progress,
        )
        if preserve_color or strength != 1.0:
            # In bands of rows: a full-size float copy of an 8000×6000 photo is 576 MB.
            for top in range(0, out.shape[0], _BAND_ROWS):
                rows = slice(top, top + _BAND_ROWS)
                band = postprocess(
                    uint8_to_float(out[rows])[None],
                    uint8_to_float(photo[rows])[None],
                    preserve_color=preserve_color,
                    strength=strength,
                )
                out[rows] = float_to_uint8(band[0])
        return Image.fromarray(out, "RGB")


def free_memory(device: torch.device) -> int:
    """Bytes free for a forward pass on `device` (CUDA: the device's own; else system RAM)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return int(psutil.virtual_memory().available)


def check_size(height: int, width: int, *, min_side: int = MIN_SIDE, task: str = "style") -> None:
    """Refuse images too small to stylize (or upscale: ``task="superres"``), with the size in
    the message."""
    if min(height, width) < min_side:
        verb = "upscale" if task == "superres" else "stylize"
        raise InputImageError(
            f"image of {width}×{height} px is too small to {verb}: "
            f"each side needs at least {min_side} px"
        )


def postprocess(
    stylized: Tensor, photo: Tensor, *, preserve_color: bool = False, strength: float = 1.0
) -> Tensor:
    """Apply colour preservation, then strength blending (both no-ops by default)."""
    if preserve_color:
        stylized = color.preserve_color(stylized, photo)
    return color.blend(stylized, photo, strength)


def load(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    channels_last: bool = False,
    backend: str | None = None,
    compile: bool = False,
    preserve_color: bool = False,
    strength: float = 1.0,
    match_histograms: bool | None = None,
    style: StyleKey | None = None,
    mix: Mapping[StyleKey, float] | None = None,
) -> Stylizer:
    """Load a trained model (model.pt, Lightning .ckpt, TorchScript or ONNX) as a `Stylizer`:
    a style model, or a super-resolution model (its outputs are ``scale`` × larger).

    Args:
        path: The model file; its format is detected from its content.
        device: "cuda", "mps", "cpu" or None (auto: CUDA, else MPS, else CPU).
        precision: "fp32", "fp16" or "bf16" (where the device has it).
        channels_last: NHWC memory layout (eager and TorchScript).
        backend: "eager", "torchscript", "onnxruntime" or "auto" (None: $STYLENET_BACKEND,
            else auto: the fastest exact backend for the device and file,
            `stylenet.inference.backends.choose_backend`).
        compile: `torch.compile` the eager network (faster for many same-size images).
        preserve_color: Default for luminance-only transfer (style models).
        strength: Default stylization strength in [0, 1] (style models).
        match_histograms: Default for histogram matching to the input (super-resolution
            models, Johnson et al. 2016, Sec. 4.2).
        style: For a multi-style model, the style (name or index) used by default; None: its
            first style. Any call can pick another (``stylizer(img, style="candy")``).
        mix: Or a blend of styles, {style: weight}.

    Raises:
        ModelFileError: Not a model stylenet reads.
        ConfigError: An option the model, file or device cannot honour (a style, strength or
            colour preservation for a super-resolution model; histogram matching for a style
            model).
    """
    color.check_strength(strength)
    path = Path(path)

    options = dict(
        device=device,
        precision=precision,
        channels_last=channels_last,
        backend=backend,
        compile=compile,
    )

    def select(style: StyleKey | None, mix: Mapping[StyleKey, float] | None) -> Backend:
        return load_backend(path, style=style, mix=mix, **options)  # type: ignore[arg-type]

    # A multi-style model without a choice runs its first style (0 is also a one-style model's).
    first = select(style if style is not None or mix is not None else 0, mix)
    return Stylizer(
        first,
        preserve_color=preserve_color,
        strength=strength,
        match_histograms=match_histograms,
        styles=first.styles,
        select=select,
    )


__all__ = ["InputImageError", "Stylizer", "check_size", "free_memory", "load"]
