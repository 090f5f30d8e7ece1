"""`stylenet-stylize MODEL INPUT... -o OUTPUT`: stylize photos, folders and videos.

    stylenet-stylize model.pt photo.jpg -o photo_styled.jpg
    stylenet-stylize model.onnx photos/ more.png -o styled/ --max-side 1024
    stylenet-stylize model.pt huge.tif -o huge_styled.tif --tile 1024
    stylenet-stylize model.pt clip.mp4 -o clip_styled.mp4

Any image size works: the output has exactly the input's size (after --max-side/--scale). Inputs
are never overwritten; existing outputs only with --overwrite. Unreadable inputs are reported by
name and skipped; the exit code is 1 if anything failed.
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
    add_style_arguments,
    at_least,
    chosen_style,
    parse_files_arguments,
    positive_float,
    run,
)
from stylenet.errors import ConfigError
from stylenet.inference import tiling
from stylenet.inference.api import load
from stylenet.inference.backends import model_task
from stylenet.inference.batch import Options, plan, plan_styles, stylize_all
from stylenet.inference.color import check_strength
from stylenet.inference.model_file import read_card
from stylenet.inference.temporal import DEFAULT_STRENGTH


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="stylenet-stylize",
        description="Stylize photos, folders (recursive) and videos with a trained stylenet model.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Outputs keep the input's exact size (after --max-side/--scale).\n" + EPILOG,
    )
    add_files_arguments(p, inputs="images, folders, videos")
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--max-side", type=at_least(1), help="downscale so the long side is at most N px"
    )
    size.add_argument("--scale", type=positive_float, help="resize by this factor first")
    add_run_arguments(p)
    p.add_argument("--channels-last", action="store_true", help="NHWC memory layout")
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the network (eager backend): pays off over many same-size images",
    )
    p.add_argument(
        "--tile",
        type=int,
        help=f"stylize in N-px tiles, e.g. {tiling.DEFAULT_TILE} (bounded memory for huge "
        "images; photos too large for the free memory are tiled anyway)",
    )
    p.add_argument(
        "--overlap",
        type=int,
        help=f"tile overlap in px (default {tiling.DEFAULT_OVERLAP}, or a quarter of a smaller "
        "tile)",
    )
    p.add_argument(
        "--stats-size",
        type=int,
        default=tiling.DEFAULT_STATS_SIZE,
        help="long side of the downscaled whole-image pass whose instance-norm statistics all "
        "tiles share",
    )
    p.add_argument("--preserve-color", action="store_true", help="keep the photo's colours")
    p.add_argument("--strength", type=float, default=1.0, help="0 = photo … 1 = full style")
    p.add_argument(
        "--temporal",
        type=float,
        nargs="?",
        const=DEFAULT_STRENGTH,
        metavar="S",
        help="videos: blend each frame with the previous output moved by optical flow where "
        f"the flow is reliable, S its weight in [0, 1) (default {DEFAULT_STRENGTH}); less "
        'flicker, some cost per frame (README, "Video without flicker")',
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    add_style_arguments(p, all_styles=True)
    spread = p.add_argument_group(
        "many devices and nodes (photos; Lightning's Trainer.predict, README \"Batch "
        'stylization at scale")'
    )
    spread.add_argument(
        "--devices",
        help="stylize on this many devices (a count, or auto: all); outputs already written are "
        "skipped, so a killed job can be started again",
    )
    spread.add_argument(
        "--num-nodes", type=at_least(1), default=None, help="machines (with --devices each)"
    )
    return p


def _options(args: argparse.Namespace) -> Options:
    """The options, checked: a bad value stops the command before any work."""
    check_strength(args.strength)
    if args.temporal is not None and not 0 <= args.temporal < 1:
        raise ConfigError(f"--temporal {args.temporal}: the blend weight must be in [0, 1)")
    tile = args.tile or tiling.DEFAULT_TILE  # auto-tiling uses the default tile
    overlap = tiling.default_overlap(tile) if args.overlap is None else args.overlap
    try:
        tiling.check_tiling(tile, overlap, args.stats_size)
    except ConfigError as err:  # its message starts with the option's name: make it the flag's
        raise ConfigError("--" + str(err).replace("stats_size", "stats-size")) from None
    return Options(
        max_side=args.max_side,
        scale=args.scale,
        batch_size=args.batch_size,
        tile=args.tile,
        overlap=args.overlap,
        stats_size=args.stats_size,
        preserve_color=args.preserve_color,
        strength=args.strength,
        temporal=args.temporal,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )


def _stylize(args: argparse.Namespace) -> int:
    options = _options(args)
    if args.devices is not None or args.num_nodes is not None:
        return _stylize_distributed(args, options)
    if not args.all_styles:
        work = plan(args.inputs, args.output, overwrite=args.overwrite, listed=args.list)
    card = read_card(args.model)
    if model_task(None, card) == "superres":  # also with --style/--mix/--all-styles: it has none
        raise ConfigError(
            f"{args.model} is a ×{card.scale} super-resolution model, which has no styles: "
            f"upscale photos with stylenet-upscale {args.model} INPUT... -o OUTPUT"
        )
    stylizer = load(
        args.model,
        device=args.device,
        precision=args.precision,
        channels_last=args.channels_last,
        backend=args.backend,
        compile=args.compile,
        **chosen_style(args),
    )
    if args.all_styles and not stylizer.styles:
        raise ConfigError(f"--all-styles needs a multi-style model; {args.model} has one style")
    if stylizer.styles and args.style is None and args.mix is None and not args.all_styles:
        raise ConfigError(
            f"{args.model} carries {len(stylizer.styles)} styles ({', '.join(stylizer.styles)}): "
            "choose one with --style NAME|INDEX, blend them with --mix NAME:W,..., or write "
            "each with --all-styles"
        )
    if args.tile and not stylizer.can_tile:
        raise ConfigError(
            f"--tile needs a model.pt or checkpoint, not a {stylizer.backend.name} export"
        )
    if args.all_styles:  # every style of every photo in one pass; outputs checked first
        work = plan_styles(
            args.inputs, args.output, stylizer.styles, overwrite=args.overwrite, listed=args.list
        )
    summary = stylize_all(stylizer, work, options)
    per_mp = summary.seconds / summary.megapixels if summary.megapixels else float("nan")
    print(
        f"done {summary.done}, failed {len(summary.failed)}; {summary.megapixels:.2f} MP in "
        f"{summary.seconds:.2f} s ({per_mp:.3f} s/MP) on {stylizer.backend.name}/"
        f"{stylizer.device}"
    )
    photos = {job.src for job in work.jobs}
    if len(photos) == 1 and summary.done == len(work.jobs):
        for job in work.jobs:
            print(f"wrote {job.dst}")
    return EXIT_FAILED if summary.failed else EXIT_OK


def _stylize_distributed(args: argparse.Namespace, options: Options) -> int:
    """--devices / --num-nodes: photos spread over processes (`stylize_distributed`)."""
    devices: int | str = args.devices or "auto"
    if devices != "auto":
        if not str(devices).isdigit() or int(devices) < 1:
            raise ConfigError(f"--devices must be a positive count or auto, got {devices!r}")
        devices = int(devices)
    for flag, on in [
        ("--all-styles", args.all_styles),
        ("--temporal", args.temporal is not None),
        ("--compile", args.compile),
    ]:
        if on:
            raise ConfigError(f"{flag} does not apply with --devices/--num-nodes (photos only)")
    accelerator = {None: "auto", "cpu": "cpu", "cuda": "gpu", "mps": "mps"}.get(args.device)
    if accelerator is None:
        raise ConfigError(f"--device {args.device!r} with --devices: use cpu, cuda or mps")
    card = read_card(args.model)
    styles = int(card.config.get("num_styles", 1))
    if styles > 1 and args.style is None and args.mix is None:
        raise ConfigError(
            f"{args.model} carries {styles} styles: choose one with --style NAME|INDEX or blend "
            "them with --mix NAME:W,..."
        )
    work = plan(args.inputs, args.output, overwrite=True, videos=False, listed=args.list)
    from stylenet.inference.distributed import stylize_distributed

    summary = stylize_distributed(
        args.model,
        work.jobs,
        options,
        output=args.output if not args.output.suffix else args.output.parent,
        accelerator=accelerator,
        devices=devices,
        num_nodes=args.num_nodes or 1,
        load_options={
            "precision": args.precision,
            "channels_last": args.channels_last,
            "backend": args.backend,
            **chosen_style(args),
        },
    )
    if summary is None:  # not rank 0: rank 0 reports
        return EXIT_OK
    for src, reason in work.missing:
        summary.failed.append((src, reason))
    for src, reason in summary.failed:
        print(f"FAILED {src}: {reason}", file=sys.stderr)
    print(
        f"done {summary.done}, skipped {summary.skipped} (already written), failed "
        f"{len(summary.failed)}; {summary.processes} process(es)"
    )
    return EXIT_FAILED if summary.failed else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = parse_files_arguments(build_parser(), argv)
    return run("stylenet-stylize", lambda: _stylize(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
