"""`make gallery`: the README's pictures, made by the project's own models.

    python scripts/gallery.py --runs gallery-runs --out docs/images
    python scripts/gallery.py --runs gallery-runs --steps 2000 --size 256   # better models

1. Models: one per style (``--styles``), trained with ``stylenet-train experiment=cpu_quick``
   on ``--data`` into ``RUNS/<style>/`` unless a ``model.pt`` is already there (so a rerun only
   redraws). The paintings come from ``$STYLENET_STYLE_DIR`` (README, "Named styles").
2. Photos no model saw in training: the colour photos shipped inside scikit-image (public
   domain / CC0) and scikit-learn (china.jpg: CC BY 2.0, danielbuechele on Flickr).

Writes small JPEGs (the folder stays well under 3 MB):
- ``gallery_grid.jpg``: the paintings, then one row per photo: the photo and every style;
- ``gallery_gatys.jpg``: photo, painting, the model's output (one forward pass) and the Gatys
  optimum of the same loss (``stylenet-optimize style``, L-BFGS);
- ``gallery_tiled.jpg``: a photo upscaled to ``--tiled-side`` px, stylized in tiles with one set of
  instance-norm statistics: the whole picture, downscaled, and a 1:1 crop of it;
- ``gallery_curves.png``: held-out content and style loss against the training step, from each
  run's CSV log;

and prints the README's captions (steps, size, times) as measured.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

import stylenet
from stylenet.io.images import (
    load_image,
    load_image_tensor,
    make_grid,
    pil_to_tensor,
    tensor_to_pil,
)
from stylenet.io.samples import package_photos

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STYLES = ["mosaic", "candy", "udnie", "starry_night"]
JPEG_QUALITY = 85


def train(run: Path, style: str, data: Path, steps: int, size: int, extra: list[str]) -> None:
    """``stylenet-train`` of one style into `run`, unless it holds a model already."""
    if (run / "model.pt").is_file():
        print(f"{style}: using {run / 'model.pt'}")
        return
    cmd = [
        str(BIN / "stylenet-train"), "experiment=cpu_quick", f"style={style}",
        f"data.root={data}", f"data.image_size={size}", f"trainer.max_steps={steps}",
        f"trainer.val_check_interval={max(1, steps // 10)}", "logger=csv",
        f"hydra.run.dir={run}", *extra,
    ]  # fmt: skip
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    (run / "seconds.txt").write_text(f"{time.perf_counter() - start:.1f}")


def describe(run: Path) -> str:
    """ "300 steps at 128², 4 min" from the run's config and timing."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(run / "config.yaml")
    seconds = run / "seconds.txt"
    took = f", {float(seconds.read_text()) / 60:.0f} min" if seconds.is_file() else ""
    return f"{cfg.trainer.max_steps} steps at {cfg.data.image_size}²{took}"


def fit(image: Tensor, height: int, width: int) -> Tensor:
    """Resize to cover (height, width), then centre-crop to it."""
    _, h, w = image.shape
    scale = max(height / h, width / w)
    size = (max(height, round(h * scale)), max(width, round(w * scale)))
    image = torch.nn.functional.interpolate(
        image[None], size=size, mode="bilinear", antialias=True, align_corners=False
    )[0]
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    return image[:, top : top + height, left : left + width].clamp(0, 1)


def save_jpeg(image: Tensor | Image.Image, path: Path) -> None:
    if isinstance(image, Tensor):
        image = tensor_to_pil(image)
    image.save(path, quality=JPEG_QUALITY, optimize=True)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")


def grid(
    models: dict[str, Path], photos: list[Path], paintings: dict[str, Path], out: Path
) -> None:
    side = 224
    tiles = [[torch.ones(3, side, side)] + [fit(load_image_tensor(paintings[s]), side, side)
                                            for s in models]]  # fmt: skip
    stylizers = {s: stylenet.load(m, device="cpu") for s, m in models.items()}
    for path in photos:
        photo = fit(load_image_tensor(path), side, side)
        row = [photo]
        for stylizer in stylizers.values():
            styled = stylizer(photo)
            assert isinstance(styled, Tensor)
            row.append(styled)
        tiles.append(row)
    save_jpeg(make_grid(tiles), out / "gallery_grid.jpg")


def gatys(model: Path, photo: Path, painting: Path, out: Path, size: int, iterations: int) -> str:
    stylizer = stylenet.load(model, device="cpu")
    image = load_image_tensor(photo, size=size)
    start = time.perf_counter()
    styled = stylizer(image)
    forward = time.perf_counter() - start
    assert isinstance(styled, Tensor)
    with tempfile.TemporaryDirectory() as tmp:
        optimum = Path(tmp) / "gatys.png"
        cmd = [
            str(BIN / "stylenet-optimize"), "style", "--content", str(photo), "--style",
            str(painting), "--size", str(size), "--iterations", str(iterations), "-q",
            "-o", str(optimum),
        ]  # fmt: skip
        print("$", " ".join(cmd), flush=True)
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        optimized = time.perf_counter() - start
        gatys_image = pil_to_tensor(load_image(optimum))
    _, h, w = image.shape
    row = [image, fit(load_image_tensor(painting), h, w), styled, fit(gatys_image, h, w)]
    save_jpeg(make_grid([row]), out / "gallery_gatys.jpg")
    return (
        f"photo | painting | model, one forward pass ({forward:.2f} s) | Gatys optimum, "
        f"{iterations} L-BFGS evaluations ({optimized:.0f} s); {w}×{h}, CPU"
    )


def tiled(model: Path, photo: Path, out: Path, long_side: int, tile: int) -> str:
    image = load_image(photo)
    scale = long_side / max(image.size)
    big = image.resize(
        (round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS
    )
    stylizer = stylenet.load(model, device="cpu")
    start = time.perf_counter()
    styled = stylizer(big, tile=tile, progress=True)
    seconds = time.perf_counter() - start
    assert isinstance(styled, Image.Image)
    crop = 480
    view = styled.resize((crop * styled.width // styled.height, crop), Image.Resampling.LANCZOS)
    # A 1:1 crop of the middle: what one screen shows of the full-size result.
    cx, cy = styled.width // 2, styled.height // 2
    detail = styled.crop((cx - crop // 2, cy - crop // 2, cx + crop // 2, cy + crop // 2))
    panel = Image.new("RGB", (view.width + 8 + crop, crop), "white")
    panel.paste(view, (0, 0))
    panel.paste(detail, (view.width + 8, 0))
    save_jpeg(panel, out / "gallery_tiled.jpg")
    return (
        f"{styled.width}×{styled.height} px ({styled.width * styled.height / 1e6:.0f} MP) in "
        f"{tile}-px tiles: {seconds:.0f} s on the CPU; left the whole picture, right a 1:1 crop"
    )


def curves(runs: dict[str, Path], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), dpi=100)
    for style, run in runs.items():
        with open(run / "csv" / "metrics.csv") as f:
            rows = [r for r in csv.DictReader(f) if r.get("val/content")]
        steps = [int(r["step"]) for r in rows]
        for ax, key in zip(axes, ("val/content", "val/style"), strict=True):
            ax.plot(steps, [float(r[key]) for r in rows], marker=".", label=style)
    for ax, title in zip(axes, ("held-out content loss", "held-out style loss"), strict=True):
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "gallery_curves.png")
    print(f"wrote {out / 'gallery_curves.png'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("gallery-runs"), help="model folder")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--styles", nargs="+", default=STYLES)
    default_data = REPO.parent / "shared" / "data" / "coco-mini"
    parser.add_argument(
        "--data", type=Path, default=default_data, help=f"training photos (default {default_data})"
    )
    parser.add_argument("--steps", type=int, default=300, help="training steps per style")
    parser.add_argument("--size", type=int, default=128, help="training crop size")
    parser.add_argument("--gatys-size", type=int, default=256)
    parser.add_argument("--gatys-iterations", type=int, default=300)
    parser.add_argument("--tiled-side", type=int, default=8000)
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("overrides", nargs="*", help="more stylenet-train overrides")
    args = parser.parse_args()

    style_dir = Path(os.environ.get("STYLENET_STYLE_DIR", "styles"))
    paintings = {s: style_dir / f"{s}.jpg" for s in args.styles}
    if missing := [str(p) for p in paintings.values() if not p.is_file()]:
        parser.error(f"paintings not found: {', '.join(missing)} (set STYLENET_STYLE_DIR)")
    runs = {s: args.runs / s for s in args.styles}
    for style, run in runs.items():
        train(run, style, args.data, args.steps, args.size, args.overrides)
    models = {s: r / "model.pt" for s, r in runs.items()}
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        photos = {p.stem: p for p in package_photos(tmp, max_side=1024)}
        shown = [photos[n] for n in ("astronaut", "chelsea", "coffee", "china") if n in photos]
        grid(models, shown, paintings, args.out)
        first = args.styles[0]
        gatys_caption = gatys(
            models[first], shown[0], paintings[first], args.out, args.gatys_size,
            args.gatys_iterations,
        )  # fmt: skip
        tiled_caption = tiled(models[first], shown[-1], args.out, args.tiled_side, args.tile)
    curves(runs, args.out)

    print("\ncaptions (measured now):")
    for style, run in runs.items():
        print(f"- {style}: {describe(run)}")
    print(f"- gallery_gatys.jpg ({first}): {gatys_caption}")
    print(f"- gallery_tiled.jpg ({first}): {tiled_caption}")
    total = sum(p.stat().st_size for p in args.out.iterdir() if p.is_file())
    print(f"{args.out}: {total / 2**20:.2f} MB in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
