"""`stylenet-optimize`: the slow reference, optimizing the image itself (Gatys et al.).

stylenet-optimize style --content photo.jpg --style painting.jpg -o out.png --iterations 300
stylenet-optimize texture --style painting.jpg --size 256 -o texture.png
stylenet-optimize invert --content photo.jpg --layer relu2_2 -o inverted.png
stylenet-optimize style --net vgg19 --content photo.jpg --style painting.jpg -o gatys.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from torch import Tensor

from stylenet.cli.common import EPILOG, EXIT_OK, ArgumentParser, at_least, positive_float, run
from stylenet.errors import OutputExistsError
from stylenet.io.images import (
    fit_long_side,
    image_format,
    image_size,
    load_image_tensor,
    save_image,
)
from stylenet.reference.optimize import (
    DEFAULT_ITERATIONS,
    DEFAULT_LR,
    MODES,
    NET_PRESETS,
    check_sizes,
    loss_config,
    optimize,
)


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="stylenet-optimize",
        description="Optimize an image against the training loss (Gatys et al.): style transfer, "
        "texture synthesis or feature inversion.",
        epilog=EPILOG,
    )
    p.add_argument("mode", choices=MODES)
    p.add_argument("--content", type=Path, help="content photo (style, invert)")
    p.add_argument("--style", type=Path, help="style image (style, texture)")
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--size", type=at_least(1), default=256, help="long side of the output (px)")
    p.add_argument(
        "--style-size", type=at_least(1), default=256, help="long side of the style image"
    )
    p.add_argument(
        "--iterations",
        type=at_least(1),
        help=f"loss evaluations (default: {DEFAULT_ITERATIONS['style']}; "
        f"{DEFAULT_ITERATIONS['invert']} for invert, whose global brightness converges slowly)",
    )
    p.add_argument("--optimizer", choices=["lbfgs", "adam"], default="lbfgs")
    p.add_argument(
        "--lr",
        type=positive_float,
        help=f"learning rate (default: {DEFAULT_LR['lbfgs']:g} for lbfgs, "
        f"{DEFAULT_LR['adam']:g} for adam)",
    )
    p.add_argument("--init", choices=["content", "noise"], help="default: content for style")
    p.add_argument(
        "--net",
        choices=list(NET_PRESETS),
        default="vgg16",
        help="loss network and preset: vgg16 (loss=johnson, training's default) or vgg19 "
        "(loss=gatys; weights from $STYLENET_VGG19_WEIGHTS, stylenet's cache or torchvision)",
    )
    p.add_argument("--weights", help="loss-network weight file (default: the usual lookup)")
    p.add_argument("--layer", help="content layer (default: the preset's, relu2_2 / relu4_2)")
    p.add_argument(
        "--style-layers",
        type=lambda v: tuple(x for x in v.split(",") if x),
        help="comma-separated style layers (default: the preset's)",
    )
    p.add_argument("--content-weight", type=float, help="default: the preset's")
    p.add_argument("--style-weight", type=float, help="default: the preset's")
    p.add_argument("--tv-weight", type=float, help="default: the preset's (10)")
    p.add_argument("--save-every", type=at_least(1), help="also save every N iterations")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def _check_sizes(args: argparse.Namespace, cfg: dict[str, Any]) -> None:
    """Refuse a --size or --style-size the loss network cannot take, before the images are
    resized to it (the resize alone of a photo to --size 100000 takes tens of GB). The photos
    are decoded for their sizes here and again, resized, for the work."""
    image = (args.size, args.size)
    if args.content is not None:
        image = _fitted(args.content, args.size)
    style = None
    if args.style is not None and args.mode != "invert":
        style = _fitted(args.style, args.style_size)
    check_sizes(cfg, image, style, optimizer=args.optimizer, device=args.device)


def _fitted(path: str, long_side: int) -> tuple[int, int]:
    """(H, W) of the image at `path` resized to `long_side`, as `load_image_tensor` does (read
    from its header)."""
    w, h = fit_long_side(image_size(path), long_side)
    return h, w


def _optimize(args: argparse.Namespace) -> int:
    if args.output.exists() and not args.overwrite:
        raise OutputExistsError(f"output {args.output} exists; pass --overwrite to replace it")
    image_format(args.output)  # a name Pillow can write, before the work
    loss_options: dict[str, Any] = {
        "net": args.net,
        "content_layer": args.layer,
        "style_layers": args.style_layers,
        "content_weight": args.content_weight,
        "style_weight": args.style_weight,
        "tv_weight": args.tv_weight,
        "vgg_weights": args.weights,
    }
    _check_sizes(args, loss_config(args.mode, **loss_options))
    content = load_image_tensor(args.content, size=args.size)[None] if args.content else None
    style = load_image_tensor(args.style, size=args.style_size)[None] if args.style else None

    def snapshot(i: int, image: Tensor) -> None:
        if args.save_every and i % args.save_every == 0:
            path = args.output.with_name(f"{args.output.stem}_{i:05d}{args.output.suffix}")
            save_image(image[0].cpu(), path, overwrite=True)

    result = optimize(
        args.mode,
        content=content,
        style=style,
        size=args.size,
        init=args.init,
        iterations=args.iterations,
        seed=args.seed,
        device=args.device,
        progress=not args.quiet,
        callback=snapshot,
        optimizer=args.optimizer,
        lr=args.lr,
        **loss_options,
    )
    save_image(result.image[0].cpu(), args.output, overwrite=args.overwrite)
    first, last = result.history[0]["total"], result.history[-1]["total"]
    print(
        f"{args.mode}: total loss {first:.4g} -> {last:.4g} ({first / max(last, 1e-12):.1f}x) in "
        f"{len(result.history)} iterations, {result.seconds_per_iteration:.3f} s/iteration; "
        f"wrote {args.output}"
    )
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run("stylenet-optimize", lambda: _optimize(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
