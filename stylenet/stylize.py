"""`stylenet-stylize MODEL INPUT -o OUTPUT`: stylize a photo with a trained model.

Any image size works: the photo is reflect-padded to a multiple of 4 and cropped back, so the
output has exactly the input's size.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylenet.images import ImageReadError, load_image, pil_to_tensor, save_image
from stylenet.model_file import ModelFileError, load_model


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
    """Stylize (B, 3, H, W) in [0, 1] of any H, W ≥ 1; output has the same shape."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected (B, 3, H, W) images, got {tuple(images.shape)}")
    padded, (h, w) = pad_to_multiple(images)
    return net(padded)[..., :h, :w]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="stylenet-stylize",
        description="Stylize a photo with a trained stylenet model (model.pt).",
    )
    parser.add_argument("model", type=Path, help="model file written by stylenet-train (model.pt)")
    parser.add_argument("input", type=Path, help="photo to stylize")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output image path")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace OUTPUT if it exists (default: refuse)"
    )
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device"
    )
    args = parser.parse_args(argv)

    if args.output.resolve() == args.input.resolve():
        parser.error(f"output {args.output} is the input: refusing to overwrite a photo")
    if args.output.exists() and not args.overwrite:
        parser.error(f"output {args.output} exists; pass --overwrite to replace it")
    try:
        net = load_model(args.model).to(args.device)
    except (FileNotFoundError, ModelFileError) as err:
        print(f"stylenet-stylize: {err}", file=sys.stderr)
        return 2
    try:
        photo = pil_to_tensor(load_image(args.input)).unsqueeze(0)
    except ImageReadError as err:
        print(f"stylenet-stylize: {err}", file=sys.stderr)
        return 1
    start = time.perf_counter()
    out = stylize_tensor(net, photo.to(args.device))
    seconds = time.perf_counter() - start
    save_image(out[0].cpu(), args.output, overwrite=args.overwrite)
    print(f"{args.input} -> {args.output} ({photo.shape[-1]}×{photo.shape[-2]}, {seconds:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
