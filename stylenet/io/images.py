"""Image I/O shared by training, the stylize CLI and the other tools.

Every image leaves this module as 8-bit RGB (PIL) or as a float tensor in [0, 1] of shape (3, H, W),
whatever the mode, bit depth or orientation of the file it came from.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, features
from torch import Tensor

from stylenet.errors import ConfigError, FileReadError
from stylenet.io.files import atomic_write

__all__ = [
    "IMAGE_EXTENSIONS",
    "FolderReadError",
    "ImageReadError",
    "find_images",
    "fit_long_side",
    "float_to_uint8",
    "image_format",
    "image_size",
    "load_image",
    "load_image_tensor",
    "make_grid",
    "pil_to_tensor",
    "save_image",
    "tensor_to_pil",
    "uint8_to_float",
]

# Formats Pillow reads out of the box. GIF and multi-page TIFF load their first frame.
_BASE_EXTENSIONS = {
    ".bmp",
    ".dib",
    ".gif",
    ".jfif",
    ".jpe",
    ".jpeg",
    ".jpg",
    ".pbm",
    ".pgm",
    ".png",
    ".pnm",
    ".ppm",
    ".tga",
    ".tif",
    ".tiff",
    ".webp",
}
# AVIF only where this Pillow build has the codec; otherwise such files would be listed and then
# every one of them skipped with an unhelpful "cannot identify image file".
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    _BASE_EXTENSIONS | ({".avif"} if features.check("avif") else set())
)

# Where transparent pixels end up; see _composite_alpha.
_ALPHA_BACKGROUND = (255, 255, 255)
_JPEG_QUALITY = 95


log = logging.getLogger(__name__)


class ImageReadError(FileReadError):
    """An image file could not be read or decoded (``.path``, ``.reason``)."""

    kind = "image"


class FolderReadError(FileReadError):
    """A folder of images could not be listed (``.path``, ``.reason``: ``permission denied``)."""

    kind = "folder"


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """Reads an image file as upright 8-bit RGB.

    The file is decoded completely here, so a truncated or corrupt file fails now rather than
    later in a transform. EXIF orientation is applied. Every Pillow mode is converted to RGB:
    16-bit and 32-bit integer images are rescaled (not clipped), float images are scaled from
    [0, 1] (or min-max normalised when outside [0, 255]), and transparency is composited over
    white (see ``_composite_alpha``).

    Pillow's ``LOAD_TRUNCATED_IMAGES`` is left alone (default False, which is what makes truncated
    files fail); if a caller has set it True, truncated files load padded with grey.

    Args:
        path: Image file.

    Returns:
        A new RGB image, independent of the file.

    Raises:
        ImageReadError: Missing or unreadable file, zero bytes, not an image, truncated or
            corrupt data, or a decompression bomb (more than 2 * ``Image.MAX_IMAGE_PIXELS``).
    """
    path = Path(path)
    with _read_errors(path), Image.open(path) as stored:
        stored.load()
        return _to_rgb(_exif_upright(stored))


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(W, H) of an image file as `load_image` would return it (EXIF orientation applied), read
    from its header: nothing is decoded, so a small file that declares a huge image costs
    nothing to measure.

    Raises:
        ImageReadError: As `load_image` says it (no such file, empty file, not an image, a
            decompression bomb); damage past the header shows only when it is decoded.
    """
    path = Path(path)
    with _read_errors(path), Image.open(path) as stored:
        w, h = stored.size
        try:
            # Image's own getexif reads what the header holds; PNG's would decode the whole
            # image to look for an eXIf chunk after the pixels (rare: then the size is as stored).
            orientation = Image.Image.getexif(stored).get(_EXIF_ORIENTATION)
        except Exception:  # a malformed EXIF block: `load_image` keeps the photo as stored too
            orientation = None
        return (h, w) if orientation in _AXES_SWAPPED else (w, h)


def fit_long_side(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """(W, H) of an image of `size` resized (aspect kept) so its longer side is `long_side`, as
    `load_image_tensor` resizes it."""
    w, h = size
    scale = long_side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


_EXIF_ORIENTATION = 0x0112
_AXES_SWAPPED = (5, 6, 7, 8)  # the orientations that turn the picture by 90°


@contextlib.contextmanager
def _read_errors(path: Path) -> Iterator[None]:
    """Turn whatever opening or decoding `path` raises into an `ImageReadError` with a reason."""
    try:
        yield
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except IsADirectoryError:
        raise ImageReadError(path, "is a directory") from None
    except Image.UnidentifiedImageError:
        reason = "empty file (0 bytes)" if _is_empty(path) else "not an image Pillow can identify"
        raise ImageReadError(path, reason) from None
    except Image.DecompressionBombError as e:
        raise ImageReadError(path, f"decompression bomb: {e}") from e
    except ImageReadError:
        raise
    # Decoders raise a zoo of types on corrupt data (OSError, SyntaxError, ValueError,
    # struct.error, EOFError, IndexError, ...); a training run over 80k scraped photos must be
    # able to skip any of them, so all of them become ImageReadError.
    except Exception as e:
        raise ImageReadError(path, f"{type(e).__name__}: {e}") from e


def _is_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError:
        return False


def _exif_upright(img: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(img)
    except Exception:
        # A malformed EXIF block should not cost us an otherwise good photo; keep it as stored.
        return img


def _to_rgb(img: Image.Image) -> Image.Image:
    """Converts any Pillow mode to 8-bit RGB (may return ``img`` itself when already RGB)."""
    mode = img.mode
    if mode in ("L", "RGB", "P") and "transparency" in img.info:
        # A tRNS colour key (PNG/GIF): treat it like any other alpha.
        return _composite_alpha(img.convert("RGBA"))
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        return _gray_array_to_rgb(_rescale_int(np.asarray(img)))
    if mode == "F":
        return _gray_array_to_rgb(_rescale_float(np.asarray(img)))
    if mode == "CMYK":
        return _cmyk_to_rgb(img)
    if mode in ("RGBa", "La"):
        # Premultiplied alpha: un-premultiply first so the composite below is correct.
        img = img.convert("RGBA" if mode == "RGBa" else "LA")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA"):
        return _composite_alpha(img.convert("RGBA"))
    # 1, L, P, RGBX, YCbCr, HSV, LAB: Pillow's own conversions are right for these.
    return img.convert("RGB")


def _rescale_int(a: np.ndarray) -> np.ndarray:
    """Integer gray (16-bit, or 32-bit "I") to uint8 by scaling, never by clipping."""
    a = a.astype(np.int64)
    lo, hi = int(a.min()), int(a.max())
    if lo >= 0 and hi <= 65535:
        # Pillow uses "I" for 16-bit PGM/PNG/TIFF too, so [0, 65535] is the 16-bit range:
        # 65535 / 257 == 255 exactly.
        return np.rint(a / 257.0).astype(np.uint8)
    # Genuinely 32-bit (or signed) data has no natural white point; stretch it.
    return _stretch(a.astype(np.float64))


def _rescale_float(a: np.ndarray) -> np.ndarray:
    """Float gray to uint8: [0, 1] is the usual convention, [0, 255] the other one."""
    a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(a.min()), float(a.max())
    if lo >= 0.0 and hi <= 1.0:
        return np.rint(a * 255.0).astype(np.uint8)
    if lo >= 0.0 and hi <= 255.0:
        return np.rint(a).astype(np.uint8)
    return _stretch(a)


def _stretch(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        return np.zeros(a.shape, dtype=np.uint8)
    return np.rint((a - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _gray_array_to_rgb(a: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(a), mode="L").convert("RGB")


def _cmyk_to_rgb(img: Image.Image) -> Image.Image:
    icc = img.info.get("icc_profile")
    if icc:
        # Pillow's plain CMYK->RGB ignores the profile and gives dull, shifted colours for
        # print-oriented files; use the embedded profile when littlecms is available.
        try:
            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            out = ImageCms.profileToProfile(
                img, src, ImageCms.createProfile("sRGB"), outputMode="RGB"
            )
            if out is not None:
                return out
        except Exception:
            pass
    return img.convert("RGB")


def _composite_alpha(rgba: Image.Image) -> Image.Image:
    """RGBA -> RGB over a white background.

    Dropping alpha instead would expose whatever colour the encoder left under transparent
    pixels, which is often black or garbage (a premultiplied or cleared buffer); white is the
    background such images (logos, cut-outs, scans) are drawn for, and it is deterministic.
    """
    background = Image.new("RGB", rgba.size, _ALPHA_BACKGROUND)
    background.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
    return background


def uint8_to_float(
    pixels: np.ndarray, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> Tensor:
    """(..., H, W, 3) uint8 RGB → (..., 3, H, W) in [0, 1] on `device`.

    The uint8 pixels cross to the device before the conversion (4× fewer bytes than float).
    """
    if pixels.dtype != np.uint8 or pixels.ndim < 3 or pixels.shape[-1] != 3:
        raise ValueError(f"expected (..., H, W, 3) uint8 pixels, got {pixels.dtype} {pixels.shape}")
    if not (pixels.flags.c_contiguous and pixels.flags.writeable):
        pixels = np.array(pixels)  # slices are not contiguous, and PIL arrays are read-only
    t = torch.from_numpy(pixels).to(device)
    x = t.movedim(-1, -3).to(dtype, memory_format=torch.contiguous_format)
    return x.div_(255.0)


def float_to_uint8(images: Tensor) -> np.ndarray:
    """(..., 3, H, W) in [0, 1] → (..., H, W, 3) uint8 RGB on the CPU.

    Values are clamped to [0, 1] (NaN becomes 0) and rounded to the nearest 8-bit level.
    """
    if images.ndim < 3 or images.shape[-3] != 3:
        raise ValueError(f"expected (..., 3, H, W) images, got {tuple(images.shape)}")
    x = torch.nan_to_num(images.detach().to("cpu", torch.float32), nan=0.0)  # a copy
    x = x.clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)
    return np.ascontiguousarray(x.movedim(-3, -1).numpy())


def pil_to_tensor(img: Image.Image) -> Tensor:
    """Converts a PIL image to a float32 (3, H, W) tensor in [0, 1].

    Images that are not RGB are converted as in ``load_image``.
    """
    if img.mode != "RGB":
        img = _to_rgb(img)
    return uint8_to_float(np.asarray(img))


def tensor_to_pil(t: Tensor) -> Image.Image:
    """Converts a (3, H, W) or (1, 3, H, W) tensor in [0, 1] to an 8-bit RGB image.

    Values are clamped to [0, 1] (NaN becomes 0) and rounded to the nearest 8-bit level.
    """
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"expected a single image, got a batch of shape {tuple(t.shape)}")
        t = t[0]
    if t.dim() != 3 or t.shape[0] != 3:
        raise ValueError(f"expected shape (3, H, W) or (1, 3, H, W), got {tuple(t.shape)}")
    return Image.fromarray(float_to_uint8(t), mode="RGB")


def load_image_tensor(path: str | os.PathLike[str], *, size: int | None = None) -> Tensor:
    """Reads an image as a float (3, H, W) tensor in [0, 1], optionally resized.

    Args:
        path: Image file.
        size: If given, resize (antialiased bicubic, aspect kept) so the longer side is ``size``.
            Johnson et al. resize the style image this way before computing its Gram targets
            (fast-neural-style ``train.lua``, ``-style_image_size 256``); the scale of the style
            image sets the scale of the painted texture.

    Raises:
        ImageReadError: The file cannot be read (see ``load_image``).
    """
    img = load_image(path)
    if size is not None:
        if size < 1:
            raise ValueError(f"size must be positive, got {size}")
        new = fit_long_side(img.size, size)
        if new != img.size:
            # Resizing the 8-bit image with Pillow: antialiased, and no bicubic overshoot to clamp.
            img = img.resize(new, Image.Resampling.BICUBIC)
    return pil_to_tensor(img)


def image_format(path: str | os.PathLike[str]) -> str:
    """The Pillow format an image written to `path` gets, from its extension (``"PNG"``).

    Raises:
        ConfigError: Pillow cannot write a format with that extension.
    """
    fmt = Image.registered_extensions().get(Path(path).suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise ConfigError(f"cannot tell which image format to write from the name {path}")
    return fmt


def save_image(
    image: Tensor | Image.Image,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    quality: int = _JPEG_QUALITY,
) -> Path:
    """Writes an image atomically; the format comes from the file extension.

    The image is written to a temporary file in the same folder and moved into place, so a
    crash never leaves a half-written image under ``path``.

    Args:
        image: (3, H, W) / (1, 3, H, W) tensor in [0, 1], or a PIL image.
        path: Destination; missing parent folders are created.
        overwrite: Replace an existing file instead of refusing.
        quality: JPEG and WebP quality (95 by default).

    Returns:
        ``path`` as a Path.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        ConfigError: The extension is not a format Pillow can write.
    """
    path = Path(path)
    fmt = image_format(path)
    return atomic_write(path, lambda fh: _write(image, fh, fmt, quality), overwrite=overwrite)


def encode_image(image: Tensor | Image.Image, fmt: str) -> bytes:
    """An image as the bytes of a file in Pillow format `fmt` (``"JPEG"``, ``"PNG"``,
    ``"WEBP"``), written as `save_image` writes it."""
    buffer = io.BytesIO()
    _write(image, buffer, fmt)
    return buffer.getvalue()


def _write(
    image: Tensor | Image.Image, fh: BinaryIO, fmt: str, quality: int = _JPEG_QUALITY
) -> None:
    img = tensor_to_pil(image) if isinstance(image, Tensor) else image
    if fmt in ("JPEG", "MPO") and img.mode not in ("RGB", "L", "CMYK"):
        img = _to_rgb(img)
    params = {"quality": quality} if fmt in ("JPEG", "MPO", "WEBP") else {}
    img.save(fh, format=fmt, **params)


def find_images(root: str | os.PathLike[str], *, recursive: bool = True) -> list[Path]:
    """Lists image files under a folder, sorted.

    Files are recognised by extension (case-insensitive, see ``IMAGE_EXTENSIONS``); files and
    folders whose names start with "." are skipped. Symlinked folders are followed (datasets are
    often assembled from links), each real folder once.

    Args:
        root: A folder, or a single image file.
        recursive: Descend into sub-folders.

    Returns:
        Sorted paths (``root`` joined with the relative path). For an image file, ``[root]``.

    A sub-folder that cannot be listed (permission denied, say) is skipped with a warning.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        FolderReadError: ``root`` itself cannot be listed.
        ValueError: ``root`` is a file without an image extension.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"image folder not found: {root}")
    if not root.is_dir():
        if _is_image_name(root.name):
            return [root]
        raise ValueError(
            f"{root} is not a folder and does not have an image extension "
            f"({', '.join(sorted(IMAGE_EXTENSIONS))})"
        )

    return walk_files(root, _is_image_name, recursive=recursive)


def walk_files(
    root: str | os.PathLike[str], accept: Callable[[str], bool], *, recursive: bool = True
) -> list[Path]:
    """The files under the folder `root` whose names `accept` takes, sorted; folders whose names
    start with "." are skipped, symlinked folders followed (each real folder once), and a
    sub-folder that cannot be listed is skipped with a warning (`find_images`; also the model
    files a server or the app offers).

    Raises:
        FolderReadError: ``root`` itself cannot be listed.
    """
    root = Path(root)
    found: list[Path] = []
    seen_dirs: set[str] = set()

    def unreadable(err: OSError) -> None:
        reason = (err.strerror or str(err)).lower()
        if err.filename is None or Path(err.filename) == root:
            raise FolderReadError(root, reason) from err
        log.warning("skipping folder %s: %s", err.filename, reason)

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen_dirs:
            # A symlink loop, or a second link to a folder already listed.
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        if recursive:
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        else:
            dirnames[:] = []
        base = Path(dirpath)
        found.extend(base / f for f in filenames if accept(f))
    found = [p for p in found if p.is_file()]
    found.sort()
    return found


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def make_grid(
    rows: Sequence[Sequence[Tensor]], *, padding: int = 4, pad_value: float = 1.0
) -> Tensor:
    """Tiles images into one picture: one row per tuple, e.g. (content, stylized).

    Args:
        rows: Rows of equally long tuples of (3, H, W) tensors in [0, 1], all the same size.
        padding: Pixels between (and around) the tiles.
        pad_value: Colour of the padding (1.0 is white).

    Returns:
        A (3, H', W') tensor on the device of the first image.
    """
    if not rows or not rows[0]:
        raise ValueError("make_grid needs at least one row with at least one image")
    ncols = len(rows[0])
    if any(len(r) != ncols for r in rows):
        raise ValueError(f"all rows must have {ncols} images, got {[len(r) for r in rows]}")
    tiles = [t[0] if t.dim() == 4 and t.shape[0] == 1 else t for r in rows for t in r]
    shape = tiles[0].shape
    if tiles[0].dim() != 3 or shape[0] != 3:
        raise ValueError(f"expected (3, H, W) images, got {tuple(shape)}")
    if any(t.shape != shape for t in tiles):
        raise ValueError(f"all images must have shape {tuple(shape)}")
    from torchvision.utils import make_grid as tv_make_grid  # torchvision takes a second to import

    device = tiles[0].device
    batch = torch.stack([t.detach().to(device, torch.float32) for t in tiles])
    return tv_make_grid(batch, nrow=ncols, padding=padding, pad_value=pad_value)
