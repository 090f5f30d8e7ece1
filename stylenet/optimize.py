"""`stylenet-optimize`: the slow reference — optimize the image itself (Gatys et al.).

Three modes share `PerceptualLoss` and `VGGFeatures` with training (no second loss):

- ``style``: content + style (+ TV), from the content photo or from noise (Gatys, Ecker &
  Bethge 2016, "Image Style Transfer Using Convolutional Neural Networks");
- ``texture``: style only, from noise, any output size (Gatys et al. 2015, "Texture Synthesis
  Using Convolutional Neural Networks");
- ``invert``: content only, from noise, at one layer (Mahendran & Vedaldi 2015, "Understanding
  Deep Image Representations by Inverting Them").

    stylenet-optimize style --content photo.jpg --style painting.jpg -o out.png --iterations 300
    stylenet-optimize texture --style painting.jpg --size 256 -o texture.png
    stylenet-optimize invert --content photo.jpg --layer relu2_2 -o inverted.png
    stylenet-optimize style --net vgg19 --content photo.jpg --style painting.jpg -o gatys.png

The loss network is the training one (VGG-16, Johnson's layers and stylenet's default weights) or,
with ``--net vgg19``, Gatys et al.'s: VGG-19, content at relu4_2, style at relu1_1 … relu5_1.
TV regularization stays on in every mode: it is the natural-image prior of Mahendran & Vedaldi
and what makes inversion from noise work (measured in the README).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from stylenet.images import ImageReadError, load_image_tensor, save_image
from stylenet.losses import PerceptualLoss

MODES = ("style", "texture", "invert")
# Inversion from noise settles the photo's overall brightness last: on hoovertowernight.jpg at
# 256 px (relu2_2, TV 10) PSNR was 14.7 dB after 300 iterations, 18.3 after 500, 30.8 after 1000.
DEFAULT_ITERATIONS = {"style": 300, "texture": 300, "invert": 1000}
JOHNSON_STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
GATYS_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


@dataclass(frozen=True)
class LossPreset:
    """Layers and weights of one loss network."""

    content_layer: str
    style_layers: tuple[str, ...]
    content_weight: float
    style_weight: float
    tv_weight: float


PRESETS = {
    # Johnson et al. 2016 layers with stylenet's training defaults (configs/loss/johnson.yaml).
    "vgg16": LossPreset("relu2_2", JOHNSON_STYLE_LAYERS, 1.0, 0.5, 10.0),
    # Gatys et al. 2016 layers (Sec. 3, equal style-layer weights). The VGG-19 weights here are
    # the Caffe originals, fed 0-255 images, so their raw losses are ~2.5e4 (content at relu4_2)
    # and ~1e10 (style) times VGG-16's. These weights give the same starting balance as the
    # VGG-16 defaults (chicago.jpg × mosaic.jpg at 256 px: content of noise ≈ 33, style of the
    # photo ≈ 38); they are not the paper's α/β, which belong to its unnormalized sums.
    "vgg19": LossPreset("relu4_2", GATYS_STYLE_LAYERS, 4e-5, 4.6e-11, 10.0),
}


@dataclass
class OptimizeResult:
    image: Tensor  # (1, 3, H, W) in [0, 1]
    history: list[dict[str, float]] = field(default_factory=list)  # loss terms per iteration
    seconds: float = 0.0

    @property
    def seconds_per_iteration(self) -> float:
        return self.seconds / max(1, len(self.history))


def optimize_image(
    loss: PerceptualLoss,
    init: Tensor,
    *,
    content: Tensor | None = None,
    iterations: int = 300,
    optimizer: str = "lbfgs",
    lr: float | None = None,
    progress: bool = True,
    callback: Callable[[int, Tensor], None] | None = None,
) -> OptimizeResult:
    """Minimize `loss` over the pixels of an image.

    Args:
        loss: The perceptual loss, its style set if it has style layers.
        init: (1, 3, H, W) starting image in [0, 1] (not modified).
        content: (1, 3, H, W) content photo for the content/pixel terms (None: unused).
        iterations: Loss evaluations (L-BFGS) or steps (Adam).
        optimizer: "lbfgs" (Gatys et al.) or "adam".
        lr: Learning rate; default 1 for L-BFGS, 0.02 for Adam.
        progress: tqdm bar with the loss terms.
        callback: Called as callback(iteration, image) at every loss evaluation (snapshots).
    """
    if optimizer not in ("lbfgs", "adam"):
        raise ValueError(f"optimizer must be 'lbfgs' or 'adam', got {optimizer!r}")
    device = next(loss.vgg.buffers()).device
    # contiguous: L-BFGS flattens gradients with view().
    image = init.detach().to(device).clamp(0, 1).contiguous().requires_grad_(True)
    target = image.detach() if content is None else content.to(device)
    if optimizer == "lbfgs":
        # One L-BFGS "step" runs up to max_iter evaluations; counting evaluations makes
        # iterations comparable between the two optimizers.
        opt = torch.optim.LBFGS(
            [image],
            lr=lr or 1.0,
            max_iter=iterations,
            history_size=50,
            tolerance_grad=0.0,
            tolerance_change=0.0,
        )
    else:
        opt = torch.optim.Adam([image], lr=lr or 0.02)
    result = OptimizeResult(image=image.detach())
    bar = tqdm(total=iterations, desc="optimize", disable=not progress, unit="it")
    start = time.perf_counter()

    def closure() -> Tensor:
        opt.zero_grad()
        terms = loss(image, target)
        terms["total"].backward()
        result.history.append({k: float(v.detach()) for k, v in terms.items()})
        bar.set_postfix({k: f"{v:.3g}" for k, v in result.history[-1].items()})
        bar.update(1)
        if callback is not None:
            callback(len(result.history), image.detach().clamp(0, 1))
        return terms["total"]

    while len(result.history) < iterations:
        before = len(result.history)
        opt.step(closure)
        with torch.no_grad():
            image.clamp_(0, 1)  # stay a valid image between steps
        if len(result.history) == before:  # L-BFGS converged and stopped evaluating
            break
    bar.close()
    result.seconds = time.perf_counter() - start
    result.image = image.detach()
    return result


def build_loss(
    mode: str,
    *,
    net: str = "vgg16",
    content_layer: str | None = None,
    style_layers: tuple[str, ...] | None = None,
    content_weight: float | None = None,
    style_weight: float | None = None,
    tv_weight: float | None = None,
    vgg_weights: str | None = None,
) -> PerceptualLoss:
    """The training loss, restricted to what `mode` optimizes; None takes `PRESETS[net]`."""
    from stylenet.losses import VGGFeatures

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if net not in PRESETS:
        raise ValueError(f"net must be one of {list(PRESETS)}, got {net!r}")
    preset = PRESETS[net]
    content_layer = content_layer or preset.content_layer
    style_layers = tuple(style_layers or preset.style_layers)
    return PerceptualLoss(
        content_layers=[] if mode == "texture" else [content_layer],
        style_layers=[] if mode == "invert" else list(style_layers),
        content_weight=0.0 if mode == "texture" else _pick(content_weight, preset.content_weight),
        style_weight=0.0 if mode == "invert" else _pick(style_weight, preset.style_weight),
        tv_weight=_pick(tv_weight, preset.tv_weight),
        vgg=partial(VGGFeatures, arch=net, weights=vgg_weights),
    )


def _pick(value: float | None, default: float) -> float:
    return default if value is None else value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="stylenet-optimize", description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=MODES)
    p.add_argument("--content", type=Path, help="content photo (style, invert)")
    p.add_argument("--style", type=Path, help="style image (style, texture)")
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--size", type=int, default=256, help="long side of the output (px)")
    p.add_argument("--style-size", type=int, default=256, help="long side of the style image")
    p.add_argument(
        "--iterations",
        type=int,
        help=f"loss evaluations (default: {DEFAULT_ITERATIONS['style']}; "
        f"{DEFAULT_ITERATIONS['invert']} for invert, whose global brightness converges slowly)",
    )
    p.add_argument("--optimizer", choices=["lbfgs", "adam"], default="lbfgs")
    p.add_argument("--lr", type=float)
    p.add_argument("--init", choices=["content", "noise"], help="default: content for style")
    p.add_argument(
        "--net",
        choices=list(PRESETS),
        default="vgg16",
        help="loss network: vgg16 (training's, default) or vgg19 (Gatys et al.; weights from "
        "$STYLENET_VGG19_WEIGHTS, stylenet's cache or torchvision)",
    )
    p.add_argument("--weights", help="loss-network weight file (default: the usual lookup)")
    p.add_argument("--layer", help="content layer (default relu2_2; relu4_2 with vgg19)")
    p.add_argument(
        "--style-layers",
        type=lambda v: tuple(x for x in v.split(",") if x),
        help="comma-separated style layers (default Johnson's; Gatys' with vgg19)",
    )
    p.add_argument("--content-weight", type=float, help="default per --net (vgg16: 1)")
    p.add_argument("--style-weight", type=float, help="default per --net (vgg16: 0.5)")
    p.add_argument("--tv-weight", type=float, help="default 10")
    p.add_argument("--save-every", type=int, help="also save every N iterations")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)

    if args.mode in ("style", "invert") and args.content is None:
        p.error(f"mode {args.mode} needs --content")
    if args.mode in ("style", "texture") and args.style is None:
        p.error(f"mode {args.mode} needs --style")
    if args.output.exists() and not args.overwrite:
        p.error(f"output {args.output} exists; pass --overwrite to replace it")
    try:
        content = load_image_tensor(args.content, size=args.size)[None] if args.content else None
        style = load_image_tensor(args.style, size=args.style_size)[None] if args.style else None
    except ImageReadError as err:
        print(f"stylenet-optimize: {err}", file=sys.stderr)
        return 1

    torch.manual_seed(args.seed)
    try:
        loss = build_loss(
            args.mode,
            net=args.net,
            content_layer=args.layer,
            style_layers=args.style_layers,
            content_weight=args.content_weight,
            style_weight=args.style_weight,
            tv_weight=args.tv_weight,
            vgg_weights=args.weights,
        ).to(args.device)
    except (ValueError, OSError, RuntimeError) as err:  # bad layer name, weights missing, ...
        print(f"stylenet-optimize: {err}", file=sys.stderr)
        return 2
    if style is not None and args.mode != "invert":
        loss.set_style(style)
    shape = content.shape if content is not None else (1, 3, args.size, args.size)
    use_content = args.init == "content" or (args.init is None and args.mode == "style")
    init = content.clone() if use_content and content is not None else torch.rand(shape)

    def snapshot(i: int, image: Tensor) -> None:
        if args.save_every and i % args.save_every == 0:
            path = args.output.with_name(f"{args.output.stem}_{i:05d}{args.output.suffix}")
            save_image(image[0].cpu(), path, overwrite=True)

    result = optimize_image(
        loss,
        init,
        content=content,
        iterations=args.iterations or DEFAULT_ITERATIONS[args.mode],
        optimizer=args.optimizer,
        lr=args.lr,
        callback=snapshot,
    )
    save_image(result.image[0].cpu(), args.output, overwrite=args.overwrite)
    first, last = result.history[0]["total"], result.history[-1]["total"]
    print(
        f"{args.mode}: total loss {first:.4g} -> {last:.4g} ({first / max(last, 1e-12):.1f}x) in "
        f"{len(result.history)} iterations, {result.seconds_per_iteration:.3f} s/iteration; "
        f"wrote {args.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
