"""`stylenet-upscale MODEL INPUT... -o OUTPUT`: upscale photos and folders with a super-resolution
model.

    stylenet-upscale sr/model.pt photo.jpg -o photo_x4.png
    stylenet-upscale sr/model.onnx photos/ more.png -o upscaled/ --no-match-histograms
    stylenet-upscale sr/model.pt huge.tif -o huge_x4.tif --tile 128

Outputs are the model's scale times the input's size (after --max-side), in the input's format
and with `stylenet-stylize`'s naming; inputs are never overwritten, existing outputs only with
--overwrite. Photos whose result would not fit in memory in one pass are upscaled in tiles, with
the same result. Unreadable inputs are named and skipped; the exit code is 1 if any failed.
"""

from __future__ import annotations

import argparse
import sys

from stylenet.cli.common import (
    EPILOG,
    EXIT_FAILED,
    EXIT_OK,
    ArgumentParser,
    add_files_arguments,
    add_run_arguments,
    at_least,
    parse_files_arguments,
    run,
)
from stylenet.errors import ConfigError
from stylenet.inference import tiling
from stylenet.inference.api import load
from stylenet.inference.backends import model_task
from stylenet.inference.batch import Options, plan, stylize_all
from stylenet.inference.model_file import read_card

PROG = "stylenet-upscale"


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog=PROG,
        description="Upscale photos and folders (recursive) with a stylenet super-resolution "
        "model.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Outputs are the model's scale times the input's size (after --max-side).\n"
        + EPILOG,
    )
    add_files_arguments(p, inputs="images and folders")
    p.add_argument(
        "--max-side", type=at_least(1), help="first downscale so the long side is at most N px"
    )
    p.add_argument(
        "--no-match-histograms",
        dest="match_histograms",
        action="store_false",
        help="leave out the paper's post-processing, which gives each colour channel of the "
        "result the histogram of the input's (Johnson et al. 2016, Sec. 4.2; on by default)",
    )
    add_run_arguments(p)
    p.add_argument(
        "--tile",
        type=at_least(tiling.MIN_UPSCALE_TILE),
        help="upscale in tiles of N input px (bounded memory, the same result; photos too large "
        "for the free memory are tiled anyway, in tiles whose result is "
        f"{tiling.DEFAULT_TILE} px)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return p


def _upscale(args: argparse.Namespace) -> int:
    options = Options(
        max_side=args.max_side,
        batch_size=args.batch_size,
        tile=args.tile,
        match_histograms=args.match_histograms,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    work = plan(args.inputs, args.output, overwrite=args.overwrite, videos=False, listed=args.list)
    card = read_card(args.model)
    if model_task(None, card) != "superres":
        raise ConfigError(
            f"{args.model} is a style model, not a super-resolution model: stylize photos with "
            f"stylenet-stylize {args.model} INPUT... -o OUTPUT"
        )
    upscaler = load(
        args.model,
        device=args.device,
        precision=args.precision,
        backend=args.backend,
        match_histograms=args.match_histograms,
    )
    summary = stylize_all(upscaler, work, options)
    per_mp = summary.seconds / summary.megapixels if summary.megapixels else float("nan")
    print(
        f"done {summary.done}, failed {len(summary.failed)}; {summary.megapixels:.2f} MP "
        f"upscaled ×{upscaler.scale} in {summary.seconds:.2f} s ({per_mp:.3f} s per input MP) "
        f"on {upscaler.backend.name}/{upscaler.device}"
    )
    if len(work.jobs) == 1 and summary.done == 1:
        print(f"wrote {work.jobs[0].dst}")
    return EXIT_FAILED if summary.failed else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = parse_files_arguments(build_parser(), argv)
    return run(PROG, lambda: _upscale(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
