"""×4 super-resolution: the perceptual-loss model against the pixel-loss model and bicubic (issue
17's acceptance), trained with the same recipe and scored on the same held-out photos.

Trains, with ``stylenet-train task=superres scale=4 trainer=cpu`` on ``--photos`` (crops of
``--size`` at the photos' own resolution, batch 4, Adam 1e-3; the held-out split of the folder,
``data.val_fraction``, is never trained on):
- ``perceptual/``: ``loss=superres`` (feature loss at relu2_2 + TV);
- ``pixel/``: ``loss=pixel`` (the per-pixel baseline, same TV);

then ``stylenet-evaluate perceptual/model.pt --compare pixel/model.pt`` on the held-out photos:
the photos that ship in scikit-image and scikit-learn plus that split (``heldout/``). Prints the
means (PSNR/SSIM on Y with the border cropped, LPIPS) and writes the README's figure: for one
photo, the low-res input, bicubic, the pixel model, the perceptual model and the photo, whole and
zoomed.

    python scripts/compare_superres.py --steps 2000 --out compare_superres/
    python scripts/compare_superres.py --table-only --out compare_superres/

Needs the real VGG-16 weights ($STYLENET_VGG16_WEIGHTS): the loss and LPIPS.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw

from stylenet.io.images import find_images
from stylenet.io.samples import package_photos
from stylenet.training.data import split_files

REPO = Path(__file__).resolve().parents[1]
VAL_FRACTION = 0.05  # configs/data/photos.yaml's data.val_fraction: the split held out
METHODS = {"bicubic": "bicubic", "compare1": "pixel loss", "model": "perceptual loss"}


def heldout(photos: Path, out: Path) -> Path:
    """The held-out photos: the package photos and the folder's validation split."""
    folder = out / "heldout"
    if not folder.is_dir():
        package_photos(folder)
        _, val = split_files(find_images(photos), val_fraction=VAL_FRACTION, root=photos)
        for path in val:
            shutil.copy(path, folder / f"coco_{path.name}")
    return folder


def train(out: Path, name: str, loss: str, args: argparse.Namespace) -> float:
    """One stylenet-train run into out/name (skipped if its model exists); wall seconds."""
    run = out / name
    if (run / "model.pt").is_file():
        return float((run / "seconds.txt").read_text())
    every = max(1, args.steps // 4)
    cmd = [
        sys.executable, "-m", "stylenet.cli.train", "task=superres", "scale=4", f"loss={loss}",
        "trainer=cpu", f"data.root={args.photos}", f"data.image_size={args.size}",
        f"data.val_fraction={VAL_FRACTION}", "data.batch_size=4", "data.num_workers=2",
        f"trainer.max_steps={args.steps}", f"trainer.val_check_interval={every}",
        f"callbacks.model_checkpoint.every_n_train_steps={every}",
        "trainer.enable_progress_bar=false", "logger=csv", f"hydra.run.dir={run}",
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    (run / "seconds.txt").write_text(f"{seconds:.1f}")
    return seconds


def evaluate(out: Path, photos: Path) -> dict:
    report = out / "eval" / "report.json"
    if not report.is_file():
        cmd = [
            sys.executable, "-m", "stylenet.cli.evaluate", str(out / "perceptual" / "model.pt"),
            "--content", str(photos), "--compare", str(out / "pixel" / "model.pt"),
            "-o", str(out / "eval"), "--size", "256", "--overwrite", "-q",
        ]  # fmt: skip
        subprocess.run(cmd, check=True)
    return json.loads(report.read_text())


def figure(out: Path, photo: str, box: tuple[int, int, int, int], path: Path) -> None:
    """Each method's output for `photo`, whole (top) and the `box` of the high-res photo
    (left, top, width, height) zoomed ×3 (bottom), labelled."""
    images = out / "eval" / "images"
    stem = Path(photo).stem
    panels = [("low-res input (x4, nearest)", "lr"), *((v, k) for k, v in METHODS.items())]
    panels.append(("high-res photo", "hr"))
    hr = Image.open(images / f"{stem}_hr.png")
    left, top, w, h = box
    zoom = 3
    cells = []
    for label, key in panels:
        img = Image.open(images / f"{stem}_{key}.png").convert("RGB")
        if key == "lr":
            img = img.resize(hr.size, Image.Resampling.NEAREST)
        crop = img.crop((left, top, left + w, top + h)).resize((w * zoom, h * zoom), 0)
        whole = img.resize((w * zoom, round(hr.height * w * zoom / hr.width)))
        cells.append((label, whole, crop))
    pad, text_h = 6, 18
    col_w = w * zoom
    height = text_h + cells[0][1].height + pad + h * zoom
    sheet = Image.new("RGB", (len(cells) * (col_w + pad) + pad, height + 2 * pad), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, whole, crop) in enumerate(cells):
        x = pad + i * (col_w + pad)
        draw.text((x, pad), label, fill="black")
        sheet.paste(whole, (x, pad + text_h))
        scale = whole.width / hr.width
        draw.rectangle(
            [x + left * scale, pad + text_h + top * scale,
             x + (left + w) * scale, pad + text_h + (top + h) * scale],
            outline="red",
        )  # fmt: skip
        sheet.paste(crop, (x, pad + text_h + whole.height + pad))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, quality=88)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--size", type=int, default=128, help="high-res crop side")
    parser.add_argument("--photos", type=Path, default=REPO.parent / "shared/data/coco-mini")
    parser.add_argument("--out", type=Path, default=Path("compare_superres"))
    parser.add_argument("--photo", default="chelsea.jpg", help="the figure's photo")
    parser.add_argument("--box", type=int, nargs=4, default=(100, 60, 80, 80), metavar="L T W H")
    parser.add_argument("--figure", type=Path, default=REPO / "docs/images/superres_x4.jpg")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()

    photos = heldout(args.photos, args.out)
    seconds = {}
    if not args.table_only:
        for name, loss in (("perceptual", "superres"), ("pixel", "pixel")):
            seconds[name] = train(args.out, name, loss, args)
    report = evaluate(args.out, photos)
    figure(args.out, args.photo, tuple(args.box), args.figure)

    means = {m["name"]: m for m in report["summary"]["methods"]}
    print(f"×4 on {report['summary']['photos']} held-out photos ({photos}), {args.steps} steps "
          f"of batch 4 at {args.size}² for each model:\n")  # fmt: skip
    print("| method | PSNR (dB, Y) | SSIM (Y) | LPIPS |")
    print("|---|---|---|---|")
    for key, label in METHODS.items():
        m = means[key]
        print(f"| {label} | {m['psnr']:.2f} | {m['ssim']:.4f} | {m['lpips']:.4f} |")
    for name, secs in seconds.items():
        print(f"\n{name}: trained in {secs:.0f} s")
    print(f"\nfigure: {args.figure}")


if __name__ == "__main__":
    main()
