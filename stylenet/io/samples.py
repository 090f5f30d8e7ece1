"""Sample inputs that need no download: a style image the project draws itself and photos that
ship inside PyPI packages (scikit-image, scikit-learn). Used by `make demo` and the tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

# Colour photos bundled in the scikit-image wheel (skimage/data/*.png|jpg; CC0 / public domain
# per skimage/data/README.txt) and the scikit-learn wheel (sklearn/datasets/images/; china.jpg
# CC BY 2.0 danielbuechele, flower.jpg CC BY 2.0 Vincent Hurtado).
SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png")
SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")

# Cathedral-glass palette for the default demo style.
_GLASS_COLOURS = np.array(
    [
        [178, 34, 34], [220, 120, 20], [240, 200, 40], [40, 120, 60], [30, 80, 170],
        [100, 40, 140], [20, 150, 170], [200, 60, 110], [250, 235, 200], [70, 30, 20],
    ],
    dtype=np.float32,
)  # fmt: skip


def stained_glass(size: int = 512, *, cells: int = 90, seed: int = 0) -> Image.Image:
    """A stained-glass Voronoi pattern: flat coloured cells with dark lead lines.

    Args:
        size: Side of the square image.
        cells: Number of Voronoi cells (glass pieces).
        seed: RNG seed; the same seed gives the same image.
    """
    rng = np.random.default_rng(seed)
    points = rng.uniform(0, size, size=(cells, 2)).astype(np.float32)
    colours = _GLASS_COLOURS[rng.integers(0, len(_GLASS_COLOURS), size=cells)]
    colours = np.clip(colours + rng.normal(0, 12, size=colours.shape), 0, 255)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    # (H, W, cells) squared distances; the two nearest seeds give cell id and border distance.
    d2 = (xx[..., None] - points[:, 0]) ** 2 + (yy[..., None] - points[:, 1]) ** 2
    nearest2 = np.partition(d2, 1, axis=-1)[..., :2]
    cell = d2.argmin(axis=-1)
    border = np.sqrt(nearest2[..., 1]) - np.sqrt(nearest2[..., 0])  # ~2× distance to the edge
    img = colours[cell]
    # Light falling through glass: brighter in the middle of each piece.
    img = img * (0.75 + 0.25 * np.clip(border / (0.08 * size), 0, 1))[..., None]
    lead = border < max(2.0, size / 120)
    img[lead] = (25, 22, 20)
    out = Image.fromarray(img.clip(0, 255).astype(np.uint8), "RGB")
    return out.filter(ImageFilter.SMOOTH)


def package_photos(out_dir: str | os.PathLike, *, max_side: int | None = None) -> list[Path]:
    """Copy the colour photos bundled in scikit-image / scikit-learn into `out_dir` as JPEGs.

    Args:
        out_dir: Destination folder (created).
        max_side: Downscale so the long side is at most this (None: keep).

    Returns:
        The written files. Raises ImportError naming the missing package if neither is installed.
    """
    sources: list[Path] = []
    try:
        import skimage

        sources += [Path(skimage.__file__).parent / "data" / n for n in SKIMAGE_PHOTOS]
    except ImportError:
        pass
    try:
        import sklearn

        sources += [
            Path(sklearn.__file__).parent / "datasets" / "images" / n for n in SKLEARN_PHOTOS
        ]
    except ImportError:
        pass
    sources = [p for p in sources if p.is_file()]
    if not sources:
        raise ImportError(
            "no sample photos found: install scikit-image and/or scikit-learn "
            "(pip install 'stylenet[demo]')"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for src in sources:
        img = Image.open(src).convert("RGB")
        if max_side and max(img.size) > max_side:
            img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        dst = out / f"{src.stem}.jpg"
        img.save(dst, quality=95)
        written.append(dst)
    return written
