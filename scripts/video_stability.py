"""Stability training against the recipe without it (issue 18): train, score, draw.

For each style and each motion weight, one ``stylenet-train`` run with the same recipe
(``experiment=cpu_quick``, 128² crops, batch 4, bf16-mixed, ``--steps`` steps, seed 0; the motion
term in its compound form, ``loss.motion_noise=0.02``, so one extra network pass per step),
skipped where its model.pt exists. Then, per model, ``stylenet-evaluate --moves`` on the held-out
photos (the package photos and coco-mini's held-out split, as scripts/compare_superres.py makes
them): held-out style and content loss, pan warping error, noise gain (``--moves pan noise``);
and ``--video`` on a clip
made here with PyAV (a hand-held camera move over a held-out photo, with sensor noise), frame by
frame and with ``--temporal``. Prints the table, writes the trade-off plot and a frame strip.

    python scripts/video_stability.py --styles starry_night mosaic --weights 0 300 1000 \
        --style-weights mosaic=0,100 --strip 0 300
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from stylenet.evaluation.temporal import camera_moves
from stylenet.inference.api import load
from stylenet.io.images import load_image_tensor

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from compare_superres import heldout  # noqa: E402  (the held-out photos, made the same way)


def train(runs: Path, style: str, weight: float, args: argparse.Namespace) -> Path:
    run = runs / f"{style}_m{weight:g}"
    if (run / "model.pt").is_file():
        return run
    cmd = [
        sys.executable, "-m", "stylenet.cli.train", "experiment=cpu_quick", f"style={style}",
        f"data.root={args.photos}", f"trainer.max_steps={args.steps}",
        "trainer.val_check_interval=100", "trainer.precision=bf16-mixed", "logger=csv",
        f"loss.motion_weight={weight:g}", "loss.motion_noise=0.02", f"hydra.run.dir={run}",
        "trainer.enable_progress_bar=false",
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    (run / "seconds.txt").write_text(f"{time.perf_counter() - start:.1f}")
    return run


def make_clip(
    photo: Path, path: Path, frames: int = 48, size: tuple[int, int] = (270, 480)
) -> Path:
    """A hand-held camera move over a photo: a slow pan with a little zoom and roll along a
    smooth path, sensor noise σ 2/255 in every frame, H.264 CRF 18 at 24 fps."""
    import av

    from stylenet.losses.motion import motion_matrix, warp

    if path.is_file():
        return path
    h, w = size
    image = load_image_tensor(photo, size=2 * w)
    base = torch.nn.functional.interpolate(image[None], size=(h, w), mode="bicubic", antialias=True)
    g = torch.Generator().manual_seed(0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "18"}
        for t in range(frames):
            s = t / (frames - 1)
            shift = torch.tensor(
                [[0.25 * s - 0.12 + 0.01 * math.sin(7 * s), 0.03 * math.sin(3 * s)]]
            )
            theta = motion_matrix(
                shift,
                torch.tensor([1.25 + 0.05 * s]),
                torch.tensor([math.radians(1.5 * math.sin(4 * s))]),
                w / h,
            )
            frame = warp(base.clamp(0, 1), theta)[0][0]
            frame = (frame + torch.randn(frame.shape, generator=g) * 2 / 255).clamp(0, 1)
            rgb = (frame.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            video = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            video.pts, video.time_base = t, Fraction(1, 24)
            for packet in stream.encode(video):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def evaluate(run: Path, photos: Path, clip: Path, strength: float) -> dict:
    out = run / "eval"
    if not (out / "temporal.json").is_file():
        cmd = [
            sys.executable, "-m", "stylenet.cli.evaluate", str(run / "model.pt"),
            "--content", str(photos), "--moves", "pan", "noise", "--video", str(clip),
            "--temporal-strength", str(strength), "-o", str(out), "-q", "--overwrite",
        ]  # fmt: skip
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    report = json.loads((out / "report.json").read_text())
    temporal = json.loads((out / "temporal.json").read_text())
    means = {(m["clip"], m["method"]): m for m in temporal["means"]}
    terms = [row["model"]["terms"] for row in report["rows"]]
    video_plain = means[("video", "model")]
    video_steady = next(m for (c, k), m in means.items() if c == "video" and k != "model")
    return {
        # The model's held-out losses (weighted, as in training), mean over the photos.
        "style": float(np.mean([t["style"] for t in terms])),
        "content": float(np.mean([t["content"] for t in terms])),
        "pan": means[("pan", "model")]["output_error"],
        "noise_gain": means[("noise", "model")]["ratio"],
        "video": video_plain["output_error"],
        "video_input": video_plain["input_error"],
        "video_temporal": video_steady["output_error"],
        "s_per_frame": video_plain["seconds_per_frame"],
        "s_per_frame_temporal": video_steady["seconds_per_frame"],
        "seconds": float((run / "seconds.txt").read_text())
        if (run / "seconds.txt").is_file()
        else None,
    }


def world_clip() -> Path | None:
    """The real clip that ships in gradio (a turning Earth, 480×270), if gradio is installed."""
    try:
        import gradio
    except ImportError:
        return None
    path = Path(gradio.__file__).parent / "media_assets" / "videos" / "world.mp4"
    return path if path.is_file() else None


def evaluate_world(run: Path, clip: Path, strength: float) -> tuple[float, float]:
    """(frame by frame, --temporal) warping error on the first 48 frames of `clip`."""
    out = run / "eval_world"
    if not (out / "temporal.json").is_file():
        cmd = [
            sys.executable, "-m", "stylenet.cli.evaluate", str(run / "model.pt"),
            "--video", str(clip), "--max-frames", "48", "--temporal-strength", str(strength),
            "-o", str(out), "-q", "--overwrite",
        ]  # fmt: skip
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    means = json.loads((out / "temporal.json").read_text())["means"]
    plain = next(m for m in means if m["method"] == "model")["output_error"]
    steady = next(m for m in means if m["method"] != "model")["output_error"]
    return plain, steady


def plot(rows: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for style in dict.fromkeys(s for s, _ in rows):
        pts = sorted((w, r) for (s, w), r in rows.items() if s == style)
        xs = [r["style"] for _, r in pts]
        ys = [r["pan"] for _, r in pts]
        ax.plot(xs, ys, "o-", label=style)
        for (w, r), x, y in zip(pts, xs, ys, strict=True):
            ax.annotate(f"  w={w:g}, gain {r['noise_gain']:.2f}", (x, y), fontsize=7)
    ax.set_xlabel("held-out style loss (lower: more of the painting)")
    ax.set_ylabel("pan warping error (lower: steadier)")
    ax.set_title("Stability weight: steadier video against style", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def strip(models: list[tuple[str, Path]], photo: Path, path: Path) -> None:
    """Per model a row: frames 0, 1, 2 of a 2 px/frame pan, then |O[1] − W(O[0])| × 5."""
    clip = camera_moves(load_image_tensor(photo, size=640), frames=3, moves=("pan",))[0]
    rows = []
    for label, model in models:
        with torch.no_grad():
            out = load(model, device="cpu").stylize_batch(clip.frames).clamp(0, 1)
        following, moved, visible = clip.step(out)
        error = ((following[0] - moved[0]).abs().mean(0, keepdim=True) * 5 * visible[0]).clamp(0, 1)
        tiles = [*out, error.expand(3, -1, -1)]
        row = torch.cat([torch.nn.functional.pad(t, (2, 2, 2, 2), value=1) for t in tiles], dim=2)
        rows.append((label, row))
    h, w = rows[0][1].shape[1:]
    canvas = Image.new("RGB", (w, (h + 16) * len(rows)), "white")
    draw = ImageDraw.Draw(canvas)
    for k, (label, row) in enumerate(rows):
        image = Image.fromarray((row.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
        canvas.paste(image, (0, k * (h + 16) + 16))
        draw.text((4, k * (h + 16) + 2), label, fill="black")
    canvas.save(path, quality=88)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--styles", nargs="+", default=["starry_night", "mosaic"])
    p.add_argument("--weights", type=float, nargs="+", default=[0, 300, 1000])
    p.add_argument(
        "--style-weights",
        nargs="*",
        default=[],
        metavar="STYLE=W,W",
        help="other motion weights for one style (e.g. mosaic=0,100); the first is its baseline",
    )
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--photos", type=Path, default=REPO.parent / "shared" / "data" / "coco-mini")
    p.add_argument("--runs", type=Path, default=REPO / "outputs" / "stability")
    p.add_argument("--out", type=Path, default=REPO / "compare_stability")
    p.add_argument("--strength", type=float, default=0.5, help="--temporal's blend weight")
    p.add_argument("--strip", nargs=2, type=float, metavar=("W_OFF", "W_ON"), default=None)
    args = p.parse_args()
    shared = REPO.parent / "shared" / "data"
    os.environ.setdefault("STYLENET_STYLE_DIR", str(shared / "styles"))
    if (shared / "vgg16_features_imagenet.safetensors").is_file():  # else stylenet's cache
        os.environ.setdefault(
            "STYLENET_VGG16_WEIGHTS", str(shared / "vgg16_features_imagenet.safetensors")
        )
    args.out.mkdir(parents=True, exist_ok=True)
    photos = heldout(args.photos, args.out)
    clip = make_clip(photos / "astronaut.jpg", args.out / "handheld.mp4")
    world = world_clip()
    per_style = {
        k: [float(w) for w in v.split(",")] for k, v in (a.split("=") for a in args.style_weights)
    }
    rows = {}
    for style in args.styles:
        for weight in per_style.get(style, args.weights):
            run = train(args.runs, style, weight, args)
            rows[(style, weight)] = evaluate(run, photos, clip, args.strength)
            if world is not None:
                rows[(style, weight)]["world"], rows[(style, weight)]["world_temporal"] = (
                    evaluate_world(run, world, args.strength)
                )
    count = len(list(photos.iterdir()))
    print(f"\n{args.steps} steps, 128², batch 4, bf16; {count} held-out photos\n")
    print(
        "| style | motion weight | held-out style | content | pan warping error | noise gain | "
        "hand-held clip | + --temporal | world clip | + --temporal |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (style, weight), r in rows.items():
        base = rows[(style, per_style.get(style, args.weights)[0])]
        print(
            f"| {style} | {weight:g} | {r['style']:.3f} (×{r['style'] / base['style']:.2f}) | "
            f"{r['content']:.3f} (×{r['content'] / base['content']:.2f}) | "
            f"{r['pan']:.4f} (×{r['pan'] / base['pan']:.2f}) | {r['noise_gain']:.2f} | "
            f"{r['video']:.4f} | {r['video_temporal']:.4f} | "
            f"{r.get('world', math.nan):.4f} | {r.get('world_temporal', math.nan):.4f} |"
        )
    r = next(iter(rows.values()))
    print(
        f"\nhand-held clip input floor {r['video_input']:.4f}; s/frame {r['s_per_frame']:.3f} "
        f"frame by frame, {r['s_per_frame_temporal']:.3f} with --temporal {args.strength:g}"
    )
    (args.out / "table.json").write_text(
        json.dumps({f"{s}_m{w:g}": r for (s, w), r in rows.items()}, indent=2)
    )
    plot(rows, args.out / "stability_tradeoff.png")
    if args.strip:
        style = args.styles[0]
        models = [
            (f"{style}, motion weight {w:g}", args.runs / f"{style}_m{w:g}" / "model.pt")
            for w in args.strip
        ]
        strip(models, photos / "chelsea.jpg", args.out / "stability_strip.jpg")
    print(f"wrote {args.out}/stability_tradeoff.png, table.json")


if __name__ == "__main__":
    main()
