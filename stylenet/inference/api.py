"""Python API for trained models: ``stylenet.load(path)`` returns a `Stylizer`.

import stylenet
stylize = stylenet.load("model.pt")   # or model.onnx, model.torchscript.pt, last.ckpt
out = stylize("photo.jpg")            # PIL image, same size as the photo
out = stylize(pil_image, strength=0.7, preserve_color=True)
batch = stylize(torch.rand(2, 3, 256, 256))  # (B, 3, H, W) in [0, 1] -> same shape
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

log = logging.getLogger(__name__)

# Images narrower than this are refused: the network's first 9×9 conv needs 8 px, and a
# stylization of a 1-px line means nothing.
MIN_SIDE = 8
# Peak memory of one untiled forward pass per pixel and per unit of `base_channels`, fp32, in
# inference mode (README, "Large images": the 32-channel network peaks at ~1 KB per pixel).
_BYTES_PER_PIXEL_CHANNEL = 32.0
# Share of the free memory an untiled forward may take before `Stylizer` tiles instead.
_MEMORY_SHARE = 0.5
# Rows per band when post-processing a tiled result, to keep memory bounded on huge images.
_BAND_ROWS = 512


class InputImageError(StylenetError, ValueError):
    """A photo that cannot be stylized as given (too small); the message gives its size."""

    exit_code = 1


class Stylizer:
    """Callable wrapper of a trained model.

    Args:
        backend: What runs the network (see `stylenet.inference.backends.load_backend`).
        preserve_color: Default for luminance-only transfer (keep the photo's colours).
        strength: Default stylization strength, 0 (photo) … 1 (full style).
        styles: The model's style names (multi-style models; [] when unknown).
        select: Loads the backend of another style or mix (``load`` provides it), for
            `with_style` and the ``style=`` / ``mix=`` arguments.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        preserve_color: bool = False,
        strength: float = 1.0,
        styles: list[str] | None = None,
        select: Callable[[StyleKey | None, Mapping[StyleKey, float] | None], Backend] | None = None,
    ) -> None:
        self.backend = backend
        self.preserve_color = preserve_color
        self.strength = strength
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
                styles=self.styles,
                select=self._select,
            )
        return self._by_style[key]

    @property
    def device(self) -> torch.device:
        return self.backend.device

    @property
    def can_tile(self) -> bool:
        """Whether `tile=` works: tiling needs the network's instance norms, which exports hide."""
        return self.backend.net is not None

    def __repr__(self) -> str:
        return f"Stylizer(backend={self.backend.name}, device={self.device})"

    def __call__(
        self,
        image: Image.Image | str | os.PathLike[str] | Tensor,
        *,
        preserve_color: bool | None = None,
        strength: float | None = None,
        tile: int | None = None,
        overlap: int | None = None,
        stats_size: int = tiling.DEFAULT_STATS_SIZE,
        progress: bool = False,
        style: StyleKey | None = None,
        mix: Mapping[StyleKey, float] | None = None,
    ) -> Image.Image | Tensor:
        """Stylize a PIL image, an image file, or a (B, 3, H, W) / (3, H, W) tensor in [0, 1].

        Returns a PIL image for PIL/path input, else a tensor of the input's shape on the input's
        device. ``tile`` (pixels) stylizes a large image tile by tile with bounded memory (model
        files and checkpoints, not exports); a photo too large for the free memory is tiled
        without being asked (`needs_tiling`).

        ``style`` / ``mix`` pick another style or a blend of a multi-style model for this call
        (see `with_style`).

        Raises:
            InputImageError: A side under 8 px.
            ConfigError: Bad tiling options, or tiling asked of (or needed by) an export; an
                unknown style.
        """
        me = self if style is None and mix is None else self.with_style(style, mix)
        pc = self.preserve_color if preserve_color is None else preserve_color
        st = self.strength if strength is None else strength
        if isinstance(image, Tensor):
            batch = image.unsqueeze(0) if image.ndim == 3 else image
            out = me.stylize_batch(batch, preserve_color=pc, strength=st)
            return out[0] if image.ndim == 3 else out
        if not isinstance(image, Image.Image):
            image = load_image(image)
        check_size(image.height, image.width)
        if tile is None and me.needs_tiling(image.height, image.width):
            tile = tiling.DEFAULT_TILE
            log.warning(
                "a %d×%d photo needs more memory untiled than is free; stylizing it in %d-px "
                "tiles (set tile= to choose)",
                image.width,
                image.height,
                tile,
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
        return tensor_to_pil(me.stylize_batch(photo, preserve_color=pc, strength=st)[0])

    def stylize_batch(
        self,
        images: Tensor,
        *,
        preserve_color: bool = False,
        strength: float = 1.0,
        styles: Sequence[StyleKey] | None = None,
    ) -> Tensor:
        """(B, 3, H, W) in [0, 1] → stylized, same shape, on the input's device.

        ``styles`` (a multi-style model): one style per image, all in one forward pass; e.g.
        a photo repeated N times with ``styles=stylizer.styles`` gives it in every style.

        Raises:
            ConfigError: ``styles`` for a one-style model, or an unknown style.
            ValueError: ``styles`` not one per image.
        """
        if images.ndim == 4:
            check_size(images.shape[-2], images.shape[-1])
        rows = None
        if styles is not None:
            if not self.styles:
                raise ConfigError(f"{self.backend.source} carries one style: styles= needs more")
            if len(styles) != len(images):
                raise ValueError(f"give one style per image: {len(styles)} for {len(images)}")
            rows = torch.stack([style_weights(self.styles, style=key) for key in styles])
        photo = images.to(self.device, torch.float32)
        out = self.backend(photo, rows).to(self.device, torch.float32)
        out = postprocess(out, photo, preserve_color=preserve_color, strength=strength)
        return out.to(images.device)

    def untiled_bytes(self, height: int, width: int) -> int:
        """Estimated peak memory of stylizing one image of this size in one pass."""
        net = self.backend.net
        channels = net.config.base_channels if net is not None else 32
        return int(height * width * channels * _BYTES_PER_PIXEL_CHANNEL)

    def batch_capacity(self, height: int, width: int) -> int:
        """How many images of this size one untiled pass may take: those that fit in half the
        device's free memory (0: even one must be tiled)."""
        budget = _MEMORY_SHARE * free_memory(self.device)
        return int(budget // max(1, self.untiled_bytes(height, width)))

    def needs_tiling(self, height: int, width: int) -> bool:
        """Whether one untiled pass would take more than half the device's free memory."""
        return self.batch_capacity(height, width) < 1

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


def check_size(height: int, width: int) -> None:
    """Refuse images too small to stylize, with the size in the message."""
    if min(height, width) < MIN_SIDE:
        raise InputImageError(
            f"image of {width}×{height} px is too small to stylize: "
            f"each side needs at least {MIN_SIDE} px"
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
    style: StyleKey | None = None,
    mix: Mapping[StyleKey, float] | None = None,
) -> Stylizer:
    """Load a trained model (model.pt, Lightning .ckpt, TorchScript or ONNX) as a `Stylizer`.

    Args:
        path: The model file; its format is detected from its content.
        device: "cuda", "mps", "cpu" or None (auto: CUDA, else MPS, else CPU).
        precision: "fp32", "fp16" or "bf16" (where the device has it).
        channels_last: NHWC memory layout (eager and TorchScript).
        backend: Force "eager", "torchscript" or "onnxruntime" (default: from the file).
        compile: `torch.compile` the eager network (faster for many same-size images).
        preserve_color: Default for luminance-only transfer.
        strength: Default stylization strength in [0, 1].
        style: For a multi-style model, the style (name or index) used by default; None: its
            first style. Any call can pick another (``stylizer(img, style="candy")``).
        mix: Or a blend of styles, {style: weight}.
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
        styles=first.styles,
        select=select,
    )


__all__ = ["InputImageError", "Stylizer", "check_size", "free_memory", "load"]
