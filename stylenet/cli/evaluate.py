"""`stylenet-evaluate MODEL --content DIR -o OUT`: score a style model against the optimum of its
loss, or a super-resolution model against bicubic upsampling (the model's card says which).

stylenet-evaluate model.pt --content photos/ -o eval/
stylenet-evaluate model.pt --content photos/ --style art.jpg -o eval/ --optimize 100,300,500
stylenet-evaluate sr_x4.pt --content photos/ -o eval/ --compare pixel_x4.pt
stylenet-evaluate model.pt --content photos/ -o eval/ --moves        # + temporal stability
stylenet-evaluate model.pt --video clip.mp4 -o eval/                  # warping error of a video
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stylenet.cli.common import (
    EPILOG,
    EXIT_FAILED,
    EXIT_OK,
    ArgumentParser,
    at_least,
    check_output_folder,
    run,
)
from stylenet.errors import ConfigError
from stylenet.evaluation.evaluate import DEFAULT_OPTIMIZE, DEFAULT_SIZE, evaluate_styles
from stylenet.evaluation.superres import evaluate_superres
from stylenet.evaluation.temporal import MOVES, MOVES_FRAMES, TemporalReport, evaluate_temporal
from stylenet.inference.api import load
from stylenet.inference.model_card import ModelCard
from stylenet.inference.model_file import read_card
from stylenet.inference.temporal import DEFAULT_STRENGTH


def _iterations(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive iteration counts, got {text!r}")
    return values


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="stylenet-evaluate",
        description="How close does a trained model come to the optimum of its own loss? Scores "
        "the model's outputs with its training loss and with LPIPS and SSIM against the photo, "
        "next to the photos and, with --optimize, Gatys L-BFGS optimization; writes "
        "report.json, report.md, grid.jpg and images/. A super-resolution model is scored "
        "instead against bicubic upsampling (and --compare models) on the photos' degraded "
        "copies: PSNR and SSIM on the Y channel with the border cropped, as SR papers report "
        "them, and LPIPS against the photo.",
        epilog=EPILOG,
    )
    p.add_argument("model", type=Path, help="model.pt, .ckpt, TorchScript or ONNX file")
    p.add_argument(
        "--content", type=Path, help="photo folder (or one photo); needed but with --video alone"
    )
    p.add_argument(
        "--style", type=Path, help="style image (default: recorded in model.pt; style models)"
    )
    p.add_argument(
        "--style-size", type=at_least(1), help="long side of the style image (default: recorded)"
    )
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument(
        "--size", type=at_least(1), default=DEFAULT_SIZE, help="long side of the photos (px)"
    )
    p.add_argument(
        "--optimize",
        type=_iterations,
        nargs="?",
        const=list(DEFAULT_OPTIMIZE),
        default=[],
        metavar="N,N,...",
        help="also run Gatys L-BFGS optimization and report it after these iteration counts "
        "(default when given without a value: 100,300,500)",
    )
    p.add_argument("--device", help="cuda, mps, cpu (default: CUDA, else MPS, else CPU)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--model-style",
        metavar="NAME|INDEX",
        help="which style of a multi-style model (default: each, into OUTPUT/<style>/)",
    )
    p.add_argument(
        "--compare",
        type=Path,
        action="append",
        default=[],
        metavar="OTHER_MODEL.pt",
        help="super-resolution only: another model of the same scale to score beside it (e.g. "
        "the pixel-loss model); repeatable",
    )
    p.add_argument(
        "--no-match-histograms",
        dest="match_histograms",
        action="store_false",
        help="super-resolution only: score the models' outputs as they are, without the paper's "
        "histogram matching to the low-res input (Johnson et al. 2016, Sec. 4.2)",
    )
    temporal = p.add_argument_group(
        'temporal stability (style models; README, "Video without flicker")'
    )
    temporal.add_argument(
        "--moves",
        nargs="*",
        choices=list(MOVES),
        metavar="MOVE",
        help="also score synthetic camera moves of each --content photo (320×240: a 2 px/frame "
        "pan, a zoom, a rotation, a still with fresh noise σ 2/255; or only the MOVEs named: "
        f"{', '.join(MOVES)}): warping error with the exact warp, and the noise gain; writes "
        "temporal.json and temporal.md",
    )
    temporal.add_argument(
        "--video",
        type=Path,
        action="append",
        default=[],
        metavar="CLIP",
        help="score a video: warping error with DIS optical flow and an occlusion mask, frame "
        "by frame and with --temporal's flow-guided blend; repeatable",
    )
    temporal.add_argument(
        "--temporal-strength",
        type=float,
        default=DEFAULT_STRENGTH,
        metavar="S",
        help=f"the blend strength scored for --video (default {DEFAULT_STRENGTH})",
    )
    temporal.add_argument(
        "--frames", type=at_least(2), default=MOVES_FRAMES, help="frames per synthetic clip"
    )
    temporal.add_argument(
        "--max-frames", type=at_least(2), help="score at most this many frames of each video"
    )
    return p


# Options that mean something for style-transfer models only.
_STYLE_ONLY = (
    ("--style", "style"),
    ("--style-size", "style_size"),
    ("--optimize", "optimize"),
    ("--model-style", "model_style"),
    ("--moves", "moves"),
    ("--video", "video"),
)


def _temporal(args: argparse.Namespace, out: Path, model_style: str | None) -> TemporalReport:
    report = evaluate_temporal(
        args.model,
        out,
        content=args.content if args.moves is not None else None,
        moves=args.moves or MOVES,
        videos=args.video,
        temporal=args.temporal_strength,
        device=args.device,
        model_style=model_style,
        frames=args.frames,
        max_video_frames=args.max_frames,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    print(report.markdown())
    print(f"wrote {out / 'temporal.json'}, temporal.md")
    return report


def _evaluate_superres(args: argparse.Namespace, card: ModelCard) -> int:
    for flag, dest in _STYLE_ONLY:
        value = getattr(args, dest)  # --moves alone is [] (every move): given all the same
        if value is not None and (value != [] or dest == "moves"):
            raise ConfigError(
                f"{flag} is for style-transfer models; {args.model} is a super-resolution "
                f"model (×{card.scale})"
            )
    report = evaluate_superres(
        args.model,
        args.content,
        args.output,
        compare=args.compare,
        size=args.size,
        device=args.device,
        match_histograms=args.match_histograms,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    print(report.markdown())
    print(f"wrote {args.output / 'report.json'}, report.md, grid.jpg")
    return EXIT_FAILED if report.skipped else EXIT_OK


def _evaluate(args: argparse.Namespace) -> int:
    # Before the model, the loss network and the first photo are loaded: minutes of work on
    # a large folder that a mistyped path would waste.
    check_output_folder(args.output, "-o/--output")
    if args.moves is not None and args.content is None:
        raise ConfigError("--moves makes its clips from the --content photos: give --content")
    if args.content is None and not args.video:
        raise ConfigError("give --content PHOTOS (or --video CLIP to score a video alone)")
    if args.content is not None and not args.content.exists():
        raise ConfigError(f"--content {args.content}: no such file or folder")
    if not 0 <= args.temporal_strength < 1:
        raise ConfigError(f"--temporal-strength {args.temporal_strength}: must be in [0, 1)")
    for clip in args.video:
        if not clip.is_file():
            raise ConfigError(f"--video {clip}: no such file")
    card = read_card(args.model)
    if card.task == "superres":
        return _evaluate_superres(args, card)
    if args.content is None:  # a video alone: its temporal report only
        _temporal(args, args.output, args.model_style)
        return EXIT_OK
    if args.compare:
        raise ConfigError(
            f"--compare is for super-resolution models; {args.model} is a style-transfer model"
        )
    if not args.match_histograms:
        raise ConfigError(
            f"--no-match-histograms is for super-resolution models; {args.model} is a "
            "style-transfer model"
        )
    styles: list[str] = []
    if args.model_style is None:
        styles = load(args.model, device="cpu").styles  # multi-style: a report per style
    skipped = False
    for style, out, report in evaluate_styles(
        args.model,
        args.content,
        args.output,
        styles,
        style=args.style,
        style_size=args.style_size,
        size=args.size,
        optimize=args.optimize,
        device=args.device,
        overwrite=args.overwrite,
        progress=not args.quiet,
        **({"model_style": args.model_style} if args.model_style is not None else {}),
    ):
        if style:
            print(f"## style {style}\n")
        print(report.markdown())
        print(f"wrote {out / 'report.json'}, report.md, grid.jpg")
        skipped = skipped or bool(report.skipped)
        if args.moves is not None or args.video:
            _temporal(args, out, style or args.model_style)
    return EXIT_FAILED if skipped else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run("stylenet-evaluate", lambda: _evaluate(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
