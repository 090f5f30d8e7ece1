"""`stylenet-export MODEL [--format torchscript|onnx|all]`: files that run without stylenet.

stylenet-export run/model.pt                    # run/model.torchscript.pt and run/model.onnx
stylenet-export last.ckpt --format onnx -o exports/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stylenet.cli.common import (
    EPILOG,
    EXIT_OK,
    ArgumentParser,
    add_style_arguments,
    check_output_file,
    check_output_folder,
    chosen_style,
    run,
)
from stylenet.errors import ConfigError, OutputExistsError
from stylenet.inference.export import (
    DEFAULT_OPSET,
    FORMATS,
    MIN_OPSET,
    TOLERANCE,
    check_opset,
    default_output,
    export_onnx,
    export_torchscript,
)
from stylenet.inference.model_file import load_network
from stylenet.inference.styles import style_weights
from stylenet.models import TransformerNet


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="stylenet-export",
        description=(
            "Export a trained stylenet model (model.pt or Lightning .ckpt; a style or a "
            "super-resolution model) as TorchScript and/or ONNX that runs without stylenet on "
            "any image size. Each export is verified against "
            f"eager PyTorch (max abs difference <= {TOLERANCE:g}) before it is kept."
        ),
        epilog=EPILOG,
    )
    parser.add_argument("model", type=Path, help="model.pt or Lightning .ckpt")
    parser.add_argument(
        "--format", choices=[*FORMATS, "all"], default="all", help="what to write (default: all)"
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "-o", "--output-dir", type=Path, help="folder for the outputs (default: next to MODEL)"
    )
    where.add_argument("--output", type=Path, help="output file (with a single --format)")
    parser.add_argument(
        "--opset",
        type=int,
        default=DEFAULT_OPSET,
        help=f"ONNX opset, {MIN_OPSET} up to what the installed onnx knows (default "
        f"{DEFAULT_OPSET})",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing outputs (default: refuse)"
    )
    add_style_arguments(parser)
    return parser


def _outputs(args: argparse.Namespace) -> dict[str, Path]:
    """{format: output path}, checked before any work: none is the input or exists unasked."""
    formats = list(FORMATS) if args.format == "all" else [args.format]
    if args.output is not None and len(formats) > 1:
        raise ConfigError("--output names one file: use it with --format torchscript or onnx")
    if "onnx" in formats:
        try:
            check_opset(args.opset)
        except ConfigError as err:  # name the flag
            raise ConfigError(f"--{err}") from None
    if args.output_dir is not None:
        check_output_folder(args.output_dir, "-o/--output-dir")
    if args.output is not None:
        check_output_file(args.output, "--output")
    outputs = {
        fmt: args.output or default_output(args.model, fmt, args.output_dir) for fmt in formats
    }
    for out in outputs.values():
        if out.exists() and out.resolve() == args.model.resolve():
            raise ConfigError(f"output {out} is the input model: refusing to overwrite it")
        if out.exists() and not args.overwrite:
            raise OutputExistsError(f"output {out} exists; pass --overwrite")
    return outputs


def _export(args: argparse.Namespace) -> int:
    outputs = _outputs(args)
    net, card = load_network(args.model)
    # Carried into the exported file so it still says what it was trained on.
    card = card.replace(exported_from=args.model.name)
    choice = chosen_style(args)
    if not isinstance(net, TransformerNet):  # a SuperResolutionNet: exported as it is
        if args.style is not None or args.mix is not None:
            flag = "--style" if args.style is not None else "--mix"
            raise ConfigError(
                f"{flag}: {args.model} is a ×{net.scale} super-resolution model, and a "
                "super-resolution model has no styles"
            )
    elif args.style is not None or args.mix is not None:
        # One chosen style or mix, folded into a plain one-image-input export.
        names = card.style_names(net.num_styles)
        weights = style_weights(names, **choice)
        net = net.bind(weights)
        chosen = [s for s, w in zip(card.styles, weights.tolist(), strict=False) if w == 1.0]
        card = card.replace(
            style_weights=dict(zip(names, weights.tolist(), strict=True)),
            styles=tuple(chosen) if chosen else card.styles,  # one style: its record first
        )
    for fmt, out in outputs.items():
        if fmt == "torchscript":
            report = export_torchscript(net, out, overwrite=args.overwrite, card=card)
        else:
            report = export_onnx(net, out, opset=args.opset, overwrite=args.overwrite, card=card)
        print(report.summary())
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run("stylenet-export", lambda: _export(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
