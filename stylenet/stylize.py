"""`stylenet-stylize MODEL INPUT... -o OUTPUT`: stylize photos, folders and videos.

    stylenet-stylize model.pt photo.jpg -o photo_styled.jpg
    stylenet-stylize model.onnx photos/ more.png -o styled/ --max-side 1024
    stylenet-stylize model.pt huge.tif -o huge_styled.tif --tile 1024
    stylenet-stylize model.pt clip.mp4 -o clip_styled.mp4

Any image size works: the photo is reflect-padded to a multiple of 4 and cropped back, so the
output has exactly the input's size (after --max-side/--scale). Inputs are never overwritten;
existing outputs only with --overwrite. Unreadable inputs are reported by name and skipped; the
exit code is 1 if anything failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn
from tqdm import tqdm

from stylenet.images import IMAGE_EXTENSIONS, ImageReadError, find_images, load_image

log = logging.getLogger(__name__)


def pad_to_multiple(
    images: Tensor, multiple: int = 4, *, min_size: int = 8
) -> tuple[Tensor, tuple[int, int]]:
    """Reflect-pad (B, 3, H, W) on the bottom/right so H and W are multiples of `multiple` and at
    least `min_size` (what `TransformerNet` accepts).

    Returns:
        The padded batch and the original (H, W) to crop back to.
    """
    h, w = images.shape[-2:]
    pad_h = max(min_size, h + -h % multiple) - h
    pad_w = max(min_size, w + -w % multiple) - w
    if pad_h or pad_w:
        # Reflection needs the pad to be smaller than the side; replicate covers tiny images.
        mode = "reflect" if pad_h < h and pad_w < w else "replicate"
        images = F.pad(images, (0, pad_w, 0, pad_h), mode=mode)
    return images, (h, w)


@torch.inference_mode()
def stylize_tensor(net: nn.Module, images: Tensor) -> Tensor:
    """Stylize (B, 3, H, W) in [0, 1] of any H, W ≥ 1 with an eager network; same shape out."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected (B, 3, H, W) images, got {tuple(images.shape)}")
    padded, (h, w) = pad_to_multiple(images)
    return net(padded)[..., :h, :w]


# --------------------------------------------------------------------------------------------
# The command


@dataclass
class Job:
    src: Path
    dst: Path
    video: bool = False
    size: tuple[int, int] = (0, 0)  # (W, H) after orientation and resizing; images only


@dataclass
class Summary:
    done: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    megapixels: float = 0.0
    seconds: float = 0.0

    def fail(self, path: Path, reason: str) -> None:
        self.failed.append((path, reason))
        tqdm.write(f"FAILED {path}: {reason}", file=sys.stderr)


def _is_video(path: Path) -> bool:
    from stylenet.video import VIDEO_EXTENSIONS

    return path.suffix.lower() in VIDEO_EXTENSIONS


def _plan(inputs: list[Path], output: Path) -> tuple[list[Job], list[tuple[Path, str]]]:
    """Map inputs to outputs. A single file input with an output that has a file extension
    writes that file; otherwise `output` is a folder mirroring the inputs' layout."""
    from stylenet.video import VIDEO_EXTENSIONS

    jobs: list[Job] = []
    missing: list[tuple[Path, str]] = []
    single_file = len(inputs) == 1 and inputs[0].is_file()
    to_file = single_file and output.suffix != "" and not output.is_dir()
    for src in inputs:
        if not src.exists():
            missing.append((src, "no such file or folder"))
        elif src.is_dir():
            files = find_images(src)
            files += sorted(p for p in src.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS)
            if not files:
                missing.append((src, f"no images or videos under {src}"))
            base = output if len(inputs) == 1 else output / src.name
            jobs += [Job(f, base / f.relative_to(src), video=_is_video(f)) for f in files]
        else:
            jobs.append(Job(src, output if to_file else output / src.name, video=_is_video(src)))
    return jobs, missing


def _target_size(path: Path, max_side: int | None, scale: float | None) -> tuple[int, int]:
    """(W, H) the image will have, read from its header (no decoding)."""
    with Image.open(path) as img:
        w, h = img.size
        if img.getexif().get(0x0112) in (5, 6, 7, 8):  # EXIF orientations that swap the axes
            w, h = h, w
    return _resized(w, h, max_side, scale)


def _resized(w: int, h: int, max_side: int | None, scale: float | None) -> tuple[int, int]:
    if scale is not None:
        w, h = max(1, round(w * scale)), max(1, round(h * scale))
    if max_side is not None and max(w, h) > max_side:
        f = max_side / max(w, h)
        w, h = max(1, round(w * f)), max(1, round(h * f))
    return w, h


def _load(job: Job) -> Image.Image:
    img = load_image(job.src)  # EXIF orientation applied
    if img.size != job.size:
        img = img.resize(job.size, Image.Resampling.LANCZOS)
    return img


def _run_images(stylizer, jobs: list[Job], args: argparse.Namespace, summary: Summary) -> None:
    from stylenet.api import check_size
    from stylenet.images import pil_to_tensor, save_image, tensor_to_pil

    for job in list(jobs):
        try:
            job.size = _target_size(job.src, args.max_side, args.scale)
            check_size(job.size[1], job.size[0])
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            summary.fail(job.src, str(err) or type(err).__name__)
            jobs.remove(job)
    # Same-size images share a batch: sort by size, then cut each size group into batches.
    jobs.sort(key=lambda j: (j.size, str(j.src)))
    batch_size = 1 if args.tile else args.batch_size
    bar = tqdm(total=len(jobs), unit="img", desc="stylize", disable=args.quiet)
    for _, group in groupby(jobs, key=lambda j: j.size):
        group = list(group)
        for i in range(0, len(group), batch_size):
            loaded: list[tuple[Job, Image.Image]] = []
            for job in group[i : i + batch_size]:
                try:
                    loaded.append((job, _load(job)))
                except ImageReadError as err:
                    summary.fail(job.src, err.reason)
                    bar.update(1)
            if not loaded:
                continue
            start = time.perf_counter()
            if args.tile:
                outputs = [
                    stylizer.stylize_tiled(
                        img,
                        tile=args.tile,
                        overlap=args.overlap,
                        stats_size=args.stats_size,
                        preserve_color=args.preserve_color,
                        strength=args.strength,
                        progress=not args.quiet,
                    )
                    for _, img in loaded
                ]
            else:
                photos = torch.stack([pil_to_tensor(img) for _, img in loaded])
                styled = stylizer.stylize_tensor(
                    photos, preserve_color=args.preserve_color, strength=args.strength
                )
                outputs = [tensor_to_pil(t) for t in styled]
            summary.seconds += time.perf_counter() - start
            for (job, img), out in zip(loaded, outputs, strict=True):
                save_image(out, job.dst, overwrite=args.overwrite)
                summary.done += 1
                summary.megapixels += img.width * img.height / 1e6
                bar.update(1)
    bar.close()


def _run_videos(stylizer, jobs: list[Job], args: argparse.Namespace, summary: Summary) -> None:
    from stylenet.video import VideoReadError, stylize_video

    def fn(frames: Tensor) -> Tensor:
        return stylizer.stylize_tensor(
            frames, preserve_color=args.preserve_color, strength=args.strength
        )

    for job in jobs:
        try:
            report = stylize_video(
                fn,
                job.src,
                job.dst,
                batch_size=args.batch_size,
                overwrite=args.overwrite,
                progress=not args.quiet,
            )
        except (VideoReadError, ValueError, OSError) as err:
            summary.fail(job.src, str(err))
            continue
        summary.done += 1
        summary.seconds += report.seconds
        summary.megapixels += report.frames * report.width * report.height / 1e6
        print(
            f"{job.src} -> {job.dst}: {report.frames} frames at {float(report.fps):.3g} fps, "
            f"flicker {report.output_flicker:.4f} (input {report.input_flicker:.4f})"
        )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="stylenet-stylize",
        description="Stylize photos, folders (recursive) and videos with a trained stylenet model.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Outputs keep the input's exact size (after --max-side/--scale). Exit code: 0 all "
        "done, 1 some input failed, 2 bad arguments or model.",
    )
    p.add_argument("model", type=Path, help="model.pt, last.ckpt, .torchscript.pt or .onnx")
    p.add_argument("inputs", type=Path, nargs="+", metavar="INPUT", help="images, folders, videos")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="output file (one input file) or folder (mirrors the inputs' layout)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--max-side", type=int, help="downscale so the long side is at most N px")
    size.add_argument("--scale", type=float, help="resize by this factor first")
    p.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    p.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default="fp32")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory layout")
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the network (eager backend): pays off over many same-size images",
    )
    p.add_argument(
        "--backend",
        choices=["eager", "torchscript", "onnxruntime"],
        help="default: from the model file's format",
    )
    p.add_argument("--batch-size", type=int, default=4, help="same-size images per forward pass")
    p.add_argument(
        "--tile", type=int, help="stylize in N-px tiles, e.g. 768 (bounded memory for huge images)"
    )
    p.add_argument("--overlap", type=int, default=128, help="tile overlap in px (with --tile)")
    p.add_argument(
        "--stats-size",
        type=int,
        default=1024,
        help="long side of the downscaled whole-image pass whose instance-norm statistics all "
        "tiles share (with --tile)",
    )
    p.add_argument("--preserve-color", action="store_true", help="keep the photo's colours")
    p.add_argument("--strength", type=float, default=1.0, help="0 = photo … 1 = full style")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0.0 <= args.strength <= 1.0:
        parser.error(f"--strength must be in [0, 1], got {args.strength}")
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if args.scale is not None and args.scale <= 0:
        parser.error("--scale must be positive")

    jobs, missing = _plan(args.inputs, args.output)
    inputs = {j.src.resolve() for j in jobs}
    clobber = [j.dst for j in jobs if j.dst.resolve() in inputs]
    if clobber:
        parser.error(f"output {clobber[0]} is an input: refusing to overwrite a photo")
    dsts = [j.dst.resolve() for j in jobs]
    if len(set(dsts)) != len(dsts):
        parser.error("two inputs would be written to the same output; give a folder per input")
    existing = [j.dst for j in jobs if j.dst.exists()]
    if existing and not args.overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        parser.error(f"output {existing[0]} exists{more}; pass --overwrite to replace")
    bad_ext = [j.dst for j in jobs if not j.video and j.dst.suffix.lower() not in IMAGE_EXTENSIONS]
    if bad_ext:
        parser.error(f"cannot tell the image format of output {bad_ext[0]}")

    from stylenet.api import load
    from stylenet.model_file import ModelFileError

    try:
        stylizer = load(
            args.model,
            device=args.device,
            precision=args.precision,
            channels_last=args.channels_last,
            backend=args.backend,
            compile=args.compile,
        )
    except (FileNotFoundError, ModelFileError, ValueError, RuntimeError) as err:
        print(f"stylenet-stylize: {err}", file=sys.stderr)
        return 2
    if args.tile and stylizer.eager_net is None:
        print(
            f"stylenet-stylize: --tile needs a model.pt or checkpoint, not a "
            f"{stylizer.backend.name} export",
            file=sys.stderr,
        )
        return 2

    summary = Summary()
    for src, reason in missing:
        summary.fail(src, reason)
    _run_images(stylizer, [j for j in jobs if not j.video], args, summary)
    _run_videos(stylizer, [j for j in jobs if j.video], args, summary)

    per_mp = summary.seconds / summary.megapixels if summary.megapixels else float("nan")
    print(
        f"done {summary.done}, failed {len(summary.failed)}; {summary.megapixels:.2f} MP in "
        f"{summary.seconds:.2f} s ({per_mp:.3f} s/MP) on {stylizer.backend.name}/{stylizer.device}"
    )
    if len(jobs) == 1 and summary.done == 1:
        print(f"wrote {jobs[0].dst}")
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
