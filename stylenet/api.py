"""Python API for trained models: ``stylenet.load(path)`` returns a `Stylizer`.

import stylenet
stylize = stylenet.load("model.pt")     # or model.onnx, model.torchscript.pt, last.ckpt
out = stylize("photo.jpg")                       # PIL image, same size as the photo
out = stylize(pil_image, strength=0.7, preserve_color=True)
batch = stylize(torch.rand(2, 3, 256, 256))      # (B, 3, H, W) in [0, 1] -> same shape
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from stylenet import color
from stylenet.backends import Backend, load_backend
from stylenet.images import load_image, pil_to_tensor, tensor_to_pil

# Images narrower than this are refused: the network's first 9×9 conv needs 8 px, and a
# stylization of a 1-px line means nothing.
MIN_SIDE = 8
# Rows per band when post-processing a tiled result, to keep memory bounded on huge images.
_BAND_ROWS = 512


class Stylizer:
    """Callable wrapper of a trained model.

    Args:
        backend: What runs the network (see `stylenet.backends.load_backend`).
        preserve_color: Default for luminance-only transfer (keep the photo's colours).
        strength: Default stylization strength, 0 (photo) … 1 (full style).
    """

    def __init__(
        self, backend: Backend, *, preserve_color: bool = False, strength: float = 1.0
    ) -> None:
        self.backend = backend
        self.preserve_color = preserve_color
        self.strength = strength

    @property
    def device(self) -> torch.device:
        return self.backend.device

    @property
    def eager_net(self) -> torch.nn.Module | None:
        """The PyTorch network when the backend is eager (tiling needs its layers), else None."""
        return self.backend.module if self.backend.name == "eager" else None

    def __repr__(self) -> str:
        return f"Stylizer(backend={self.backend.name}, device={self.device})"

    def __call__(
        self,
        image: Image.Image | str | os.PathLike | Tensor,
        *,
        preserve_color: bool | None = None,
        strength: float | None = None,
        tile: int | None = None,
        overlap: int = 128,
        stats_size: int = 1024,
    ) -> Image.Image | Tensor:
        """Stylize a PIL image, an image file, or a (B, 3, H, W) / (3, H, W) tensor in [0, 1].

        Returns a PIL image for PIL/path input, else a tensor of the input's shape on the input's
        device. ``tile`` (pixels) stylizes large images tile by tile with bounded memory (eager
        model files only).
        """
        pc = self.preserve_color if preserve_color is None else preserve_color
        st = self.strength if strength is None else strength
        if isinstance(image, Tensor):
            batch = image.unsqueeze(0) if image.ndim == 3 else image
            out = self.stylize_tensor(batch, preserve_color=pc, strength=st)
            return out[0] if image.ndim == 3 else out
        if not isinstance(image, Image.Image):
            image = load_image(image)
        if tile:
            return self.stylize_tiled(
                image,
                tile=tile,
                overlap=overlap,
                stats_size=stats_size,
                preserve_color=pc,
                strength=st,
            )
        photo = pil_to_tensor(image).unsqueeze(0)
        return tensor_to_pil(self.stylize_tensor(photo, preserve_color=pc, strength=st)[0])

    @torch.inference_mode()
    def stylize_tensor(
        self, images: Tensor, *, preserve_color: bool = False, strength: float = 1.0
    ) -> Tensor:
        """(B, 3, H, W) in [0, 1] → stylized, same shape, on the input's device."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) images, got {tuple(images.shape)}")
        check_size(images.shape[-2], images.shape[-1])
        photo = images.to(self.device, torch.float32)
        out = self.backend(photo).to(self.device, torch.float32)
        out = postprocess(out, photo, preserve_color=preserve_color, strength=strength)
        return out.to(images.device)

    def stylize_tiled(
        self,
        image: Image.Image,
        *,
        tile: int,
        overlap: int = 128,
        stats_size: int = 1024,
        preserve_color: bool = False,
        strength: float = 1.0,
        progress: bool = False,
    ) -> Image.Image:
        """Tile-by-tile stylization of a large image (see `stylenet.tiling`)."""
        from stylenet.tiling import stylize_tiled

        net = self.eager_net
        if net is None:
            raise ValueError(
                f"tiling needs the network's instance-norm layers, which a {self.backend.name} "
                "export hides; use the model.pt file (eager backend) with --tile"
            )
        check_size(image.height, image.width)
        photo = np.asarray(image.convert("RGB"))  # (H, W, 3) uint8
        out = stylize_tiled(
            net,
            photo,
            tile=tile,
            overlap=overlap,
            stats_size=stats_size,
            device=self.device,
            progress=progress,
        )
        if preserve_color or strength != 1.0:
            # In bands of rows: a full-size float copy of an 8000×6000 photo is 576 MB.
            for top in range(0, out.shape[0], _BAND_ROWS):
                rows = slice(top, top + _BAND_ROWS)
                band = postprocess(
                    _u8_to_tensor(out[rows]),
                    _u8_to_tensor(photo[rows]),
                    preserve_color=preserve_color,
                    strength=strength,
                )
                out[rows] = _tensor_to_u8(band)
        return Image.fromarray(out, "RGB")


def check_size(height: int, width: int) -> None:
    """Refuse images too small to stylize, with the size in the message."""
    if min(height, width) < MIN_SIDE:
        raise ValueError(
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


def _u8_to_tensor(a: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).unsqueeze(0).float() / 255


def _tensor_to_u8(t: Tensor) -> np.ndarray:
    return (t[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def load(
    path: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    channels_last: bool = False,
    backend: str | None = None,
    compile: bool = False,
    preserve_color: bool = False,
    strength: float = 1.0,
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
    """
    be = load_backend(
        Path(path),
        device=device,
        precision=precision,
        channels_last=channels_last,
        backend=backend,
        compile=compile,
    )
    return Stylizer(be, preserve_color=preserve_color, strength=strength)
