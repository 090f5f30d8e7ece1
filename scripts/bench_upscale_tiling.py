"""Peak memory, time and exactness of tiled super-resolution on a large photo.

Each tile size runs in a fresh process, which loads the model and upscales the photo as
`stylenet-upscale --no-match-histograms` does (``stylenet.load(model)(photo, tile=N)``: a PIL
image in, a PIL image out, `stylenet.inference.tiling.upscale_tiled` in between; no histogram
matching, which depends on the whole image: a region's would differ from the whole photo's) and
reports its time and its peak resident
memory (``ru_maxrss``, the whole process: torch, the model, the photo, the result). Exactness: a
`--crop` px square of the input, centred where four tiles meet, is cut from the tiled result and
compared with the untiled upscale of a region that encloses it with `--margin` px more on every
side (clipped at the photo's edges), computed in another process. The margin is several times
the network's receptive radius (`tiling.upscale_context`: 14 px for the paper's ×4 network), so
the crop's untiled output depends on that region alone: it is the whole photo's untiled output,
which no machine here could hold (the estimate is printed).

    python scripts/bench_upscale_tiling.py           # the paper's ×4 network, random, 4000×3000
    python scripts/bench_upscale_tiling.py --model sr/model.pt --tiles 96 192 384
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import stylenet
from stylenet.inference import tiling
from stylenet.inference.model_card import ModelCard
from stylenet.inference.model_file import read_card, save_model
from stylenet.io.images import float_to_uint8, load_image, pil_to_tensor
from stylenet.io.samples import stained_glass
from stylenet.models import SuperResolutionConfig, SuperResolutionNet

SHARED_PHOTO = Path(__file__).resolve().parents[2] / "shared" / "data" / "content" / "chicago.jpg"


def peak_gib() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def context_of(model: Path) -> int:
    """The receptive radius of the model's network: what each tile reads around its part."""
    return tiling.upscale_context(SuperResolutionConfig(**read_card(model).config))


def crop_box(height: int, width: int, tile: int, context: int, crop: int) -> tuple[int, ...]:
    """(top, left, bottom, right) of a `crop`-px square of the input centred on the tile corner
    nearest the photo's centre."""

    def cut(length: int) -> int:
        cuts = [a for _, a, _, _ in tiling.upscale_spans(length, tile, context)[1:]] or [
            length // 2
        ]
        return min(cuts, key=lambda c: abs(c - length // 2))

    cy, cx = cut(height), cut(width)
    top, left = max(0, cy - crop // 2), max(0, cx - crop // 2)
    return top, left, min(height, top + crop), min(width, left + crop)


def child_tiled(args: argparse.Namespace) -> dict:
    """Upscale the whole photo in tiles; save the crop; report time and peak memory."""
    upscaler = stylenet.load(args.model, device=args.device, match_histograms=False)
    before = peak_gib()
    photo = load_image(args.photo)
    start = time.perf_counter()
    out = upscaler(photo, tile=args.tile)
    seconds = time.perf_counter() - start
    peak = peak_gib()
    assert isinstance(out, Image.Image)
    s = upscaler.scale
    top, left, bottom, right = args.box
    np.save(args.save, np.asarray(out.crop((left * s, top * s, right * s, bottom * s))))
    context = context_of(args.model)
    tiles = len(tiling.upscale_spans(photo.height, args.tile, context)) * len(
        tiling.upscale_spans(photo.width, args.tile, context)
    )
    return {"seconds": seconds, "peak": peak, "before": before, "tiles": tiles, "out": out.size}


def child_reference(args: argparse.Namespace) -> dict:
    """Upscale the region around the crop in one pass; save the crop of it."""
    upscaler = stylenet.load(args.model, device=args.device, match_histograms=False)
    photo = load_image(args.photo)
    top, left, bottom, right = args.box
    m = args.margin
    y0, x0 = max(0, top - m), max(0, left - m)
    region = photo.crop((x0, y0, min(photo.width, right + m), min(photo.height, bottom + m)))
    with torch.inference_mode():
        out = upscaler.stylize_batch(pil_to_tensor(region)[None])[0]  # untiled, whatever the size
    s = upscaler.scale
    pixels = float_to_uint8(out)[
        (top - y0) * s : (bottom - y0) * s, (left - x0) * s : (right - x0) * s
    ]
    np.save(args.save, pixels)
    clamped = float(((out == 0) | (out == 1)).float().mean())
    return {"region": region.size, "clamped": clamped}


def run_child(mode: str, args: argparse.Namespace, **extra: object) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--model", str(args.model)]
    cmd += ["--photo", str(args.photo), "--margin", str(args.margin)]
    if args.device:
        cmd += ["--device", args.device]
    for key, value in extra.items():
        values = value if isinstance(value, list | tuple) else [value]
        cmd += [f"--{key}", *map(str, values)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{mode} child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def prepare(args: argparse.Namespace, work: Path) -> None:
    """The model (given, or the paper's ×4 network, seeded, with a full-size last conv so the
    output is not nearly bicubic) and the photo at `--size`, as files the children read."""
    if args.model is None:
        torch.manual_seed(0)
        net = SuperResolutionNet(
            scale=args.scale, channels=args.channels, num_residual_blocks=args.blocks
        )
        net.tail.conv.reset_parameters()  # PyTorch's init, not the faint training start
        args.model = save_model(net, work / "model.pt", card=ModelCard("", task="superres"))
    width, height = args.size
    source = (
        load_image(args.source)
        if args.source is not None
        else stained_glass(max(width, height) // 4)
    )
    photo = source.resize((width, height), Image.Resampling.BICUBIC)
    args.photo = work / "photo.png"
    photo.save(args.photo, compress_level=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="an SR model (default: the paper's, random)")
    parser.add_argument(
        "--source",
        type=Path,
        default=SHARED_PHOTO if SHARED_PHOTO.is_file() else None,
        help="the photo, resized to --size (default: ../shared/data/content/chicago.jpg)",
    )
    parser.add_argument("--size", type=int, nargs=2, default=(4000, 3000), metavar=("W", "H"))
    parser.add_argument(
        "--tiles", type=int, nargs="+", help="input tile sides (default: the model's)"
    )
    parser.add_argument(
        "--crop", type=int, default=128, help="side of the compared crop (input px)"
    )
    parser.add_argument("--margin", type=int, default=64, help="untiled region beyond the crop")
    parser.add_argument("--scale", type=int, default=4, help="random model: its factor")
    parser.add_argument("--channels", type=int, default=64, help="random model: its width")
    parser.add_argument("--blocks", type=int, default=4, help="random model: residual blocks")
    parser.add_argument("--device", help="default: the best available")
    parser.add_argument("--child", choices=["tiled", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--photo", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tile", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--box", type=int, nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--save", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child_tiled(args) if args.child == "tiled" else child_reference(args)
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        prepare(args, work)
        upscaler = stylenet.load(args.model, device=args.device, match_histograms=False)
        width, height = args.size
        context = context_of(args.model)
        tiles = args.tiles or [upscaler.default_tile]
        device = upscaler.device
        name = torch.cuda.get_device_name() if device.type == "cuda" else platform.machine()
        model = (
            f"random ×{upscaler.scale} network ({args.channels} channels, {args.blocks} blocks)"
            if args.model.parent == work
            else str(args.model)
        )
        out_w, out_h = width * upscaler.scale, height * upscaler.scale
        print(
            f"device: {device} ({name}, {torch.get_num_threads()} threads), torch "
            f"{torch.__version__}; model {model}, context {context} px; photo "
            f"{args.source or 'stained glass'} resized to {width}×{height} → {out_w}×{out_h}; "
            f"untiled it would need ≈ {upscaler.untiled_bytes(height, width) / 1e9:,.0f} GB "
            "(Stylizer.untiled_bytes)\n"
        )
        print(
            f"| tile (input px) | tiles | time | peak RSS | of which before the photo | "
            f"max / mean abs diff vs untiled, {args.crop}² crop at a tile corner |"
        )
        print("|---|---|---|---|---|---|")
        for tile in tiles:
            box = crop_box(height, width, tile, context, args.crop)
            tiled = run_child("tiled", args, tile=tile, box=box, save=work / "tiled.npy")
            ref = run_child("reference", args, box=box, save=work / "ref.npy")
            diff = np.abs(np.load(work / "tiled.npy").astype(int) - np.load(work / "ref.npy"))
            print(
                f"| {tile} | {tiled['tiles']} | {tiled['seconds']:.0f} s | "
                f"{tiled['peak']:.2f} GiB | {tiled['before']:.2f} GiB | "
                f"{diff.max()}/255, {diff.mean() / 255:.1e} (region {ref['region'][0]}×"
                f"{ref['region'][1]}; {ref['clamped']:.1%} of its output clamped) |",
                flush=True,
            )


if __name__ == "__main__":
    main()
