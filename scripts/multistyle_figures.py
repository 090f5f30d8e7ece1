"""README figures of a multi-style model: a mixing strip and a photos × styles grid.

    python scripts/multistyle_figures.py MODEL.pt --photos ../shared/data/content \
        --mix mosaic candy --out docs/images

Writes (small JPEGs):
- ``multistyle_mix.jpg``: a photo, then the model's output as the mix moves from style A to
  style B in ``--steps`` steps (A at 0, B at 1);
- ``multistyle_grid.jpg``: one row per photo: the photo, then every style.

Photos are resized to ``--size`` px on their long side first.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import stylenet
from stylenet.io.images import find_images, load_image_tensor, make_grid, save_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--photos", type=Path, required=True, help="folder of photos")
    parser.add_argument("--count", type=int, default=3, help="photos in the grid")
    parser.add_argument("--mix", nargs=2, metavar=("A", "B"), help="styles to blend")
    parser.add_argument("--steps", type=int, default=5, help="mix steps from A to B")
    parser.add_argument("--size", type=int, default=256, help="long side of the photos")
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    args = parser.parse_args()

    stylizer = stylenet.load(args.model, device="cpu")
    styles = stylizer.styles
    if not styles:
        parser.error(f"{args.model} has one style")
    photos = [load_image_tensor(p, size=args.size) for p in find_images(args.photos)]
    # One grid needs equal sizes: the centre crop common to the chosen photos.
    photos = photos[: args.count]
    h = min(p.shape[1] for p in photos)
    w = min(p.shape[2] for p in photos)
    photos = [
        p[:, (p.shape[1] - h) // 2 :][:, :h, (p.shape[2] - w) // 2 :][:, :, :w] for p in photos
    ]
    args.out.mkdir(parents=True, exist_ok=True)

    def styled(photo: Tensor, **choice: Any) -> Tensor:
        out = stylizer(photo, **choice)
        assert isinstance(out, Tensor)  # a tensor in, a tensor out
        return out

    with torch.no_grad():
        rows = [(p, *(styled(p, style=s) for s in styles)) for p in photos]
        save_image(make_grid(rows), args.out / "multistyle_grid.jpg", overwrite=True)
        a, b = args.mix or styles[:2]
        ts = [i / (args.steps - 1) for i in range(args.steps)]
        strip = [photos[0], *(styled(photos[0], mix={a: 1 - t, b: t}) for t in ts)]
        save_image(make_grid([strip]), args.out / "multistyle_mix.jpg", overwrite=True)
    print(f"grid: photo | {' | '.join(styles)}")
    print(f"mix: photo | {a} → {b} at " + ", ".join(f"{t:.2f}" for t in ts))
    print(f"wrote {args.out / 'multistyle_grid.jpg'} and {args.out / 'multistyle_mix.jpg'}")


if __name__ == "__main__":
    main()
