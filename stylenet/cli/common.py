"""The error boundary every console script shares.

A user error (a `StylenetError`: bad argument, setting or input file; or an `OSError`: a path the
system refused) becomes one line on stderr, ``PROG: message``, and an exit code; anything else is
a bug and keeps its traceback. ``--debug`` shows the traceback of user errors too.

Exit codes: 0 done; 1 the work failed or some inputs failed (named on stderr); 2 the command could
not start (bad argument, setting, model or input file); 130 interrupted.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from stylenet.errors import ConfigError, StylenetError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

EPILOG = (
    "exit status: 0 done, 1 the work or some inputs failed (each named on stderr), 2 bad "
    "arguments, model or input file (nothing done)"
)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a ``--debug`` flag and usage errors on one line, like every other error:
    ``PROG: argument --tile: must be ...``, exit status 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument(
            "--debug", action="store_true", help="show the traceback of an error, not just its line"
        )

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see --help)\n")


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer no smaller than `minimum`."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = "integer"  # argparse names the type in "invalid integer value"
    return parse


def positive_float(text: str) -> float:
    """An argparse type: a finite number greater than 0 (``inf`` and ``nan`` parse as floats
    but would end in an overflow or a silently wrong result later)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def check_output_folder(path: Path, flag: str) -> None:
    """Refuse, before any work, an output folder that cannot be made: `path` or a folder above
    it is an existing file.

    Args:
        path: The output folder (it may not exist yet).
        flag: The option that named it, for the message (``-o/--output``).

    Raises:
        ConfigError: The message names the option and the file in the way.
    """
    blocker = _file_in_the_way(path)
    if blocker == path:
        raise ConfigError(f"{flag} {path} is a file, not a folder")
    if blocker is not None:
        raise ConfigError(f"{flag} {path} is inside {blocker}, which is a file, not a folder")


def check_output_file(path: Path, flag: str) -> None:
    """Refuse, before any work, an output file that cannot be written: `path` is a folder, or a
    folder above it is an existing file.

    Raises:
        ConfigError: The message names the option and the path in the way.
    """
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder, not a file")
    if (blocker := _file_in_the_way(path.parent)) is not None:
        raise ConfigError(f"{flag} {path} is inside {blocker}, which is a file, not a folder")


def _file_in_the_way(folder: Path) -> Path | None:
    """The nearest of `folder` and the folders above it that exists, if it is not a folder."""
    for above in (folder, *folder.parents):
        if above.exists():
            return None if above.is_dir() else above
    return None


def add_files_arguments(parser: argparse.ArgumentParser, *, inputs: str) -> None:
    """The model, the inputs (`inputs`: what they may be), ``-o`` and ``--overwrite`` of the
    commands that run a model on files (stylize, upscale)."""
    parser.add_argument("model", type=Path, help="model.pt, last.ckpt, .torchscript.pt or .onnx")
    parser.add_argument("inputs", type=Path, nargs="*", metavar="INPUT", help=inputs)
    parser.add_argument(
        "--list",
        type=Path,
        metavar="FILE",
        help="a text file naming more inputs, one path per line (relative to the file's "
        "folder; # comments); the outputs mirror their paths below the folder they share",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="output file (one input file) or folder (mirrors the inputs' layout)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def parse_files_arguments(
    parser: argparse.ArgumentParser, argv: list[str] | None
) -> argparse.Namespace:
    """`parser.parse_args`, with at least one INPUT or ``--list`` (see `add_files_arguments`)."""
    args = parser.parse_args(argv)
    if not args.inputs and args.list is None:
        parser.error("give at least one INPUT, or --list FILE")
    return args


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """How the model runs (device, precision, backend, batch size) for stylize and upscale."""
    from stylenet.inference.backends import AUTO, BACKEND_ENV, BACKENDS, PRECISIONS

    parser.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    parser.add_argument("--precision", choices=list(PRECISIONS), default="fp32")
    parser.add_argument(
        "--backend",
        choices=[*BACKENDS, AUTO],
        help=f"default ${BACKEND_ENV}, else auto: the fastest exact one for the device "
        "(model.pt on a CPU: onnxruntime, converted once and cached; on a GPU: eager); an "
        "export runs on its own",
    )
    parser.add_argument(
        "--batch-size", type=at_least(1), default=4, help="same-size images per forward pass"
    )


def add_style_arguments(parser: argparse.ArgumentParser, *, all_styles: bool = False) -> None:
    """``--style`` and ``--mix`` (and ``--all-styles``): which style of a multi-style model."""
    group = parser.add_mutually_exclusive_group()
    if all_styles:
        group.add_argument(
            "--all-styles",
            action="store_true",
            help="one output per style: OUT_<style>.jpg for one photo, else OUT/<style>/",
        )
    group.add_argument(
        "--style", metavar="NAME|INDEX", help="the style of a multi-style model to use"
    )
    group.add_argument(
        "--mix",
        metavar="NAME:W,...",
        help="blend styles of a multi-style model, e.g. mosaic:0.7,candy:0.3 (scaled to sum 1)",
    )


def chosen_style(args: argparse.Namespace) -> dict[str, Any]:
    """``style=``/``mix=`` keyword arguments from `add_style_arguments`' flags (checked)."""
    from stylenet.inference.styles import parse_mix

    return {"style": args.style, "mix": parse_mix(args.mix) if args.mix else None}


def process_rank() -> int:
    """This process's rank, from the variables Lightning reads (its rank_zero_only), without
    importing Lightning (stylenet-train checks its inputs before it is loaded)."""
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if key in os.environ:
            return int(os.environ[key])
    return 0


def report(prog: str, err: BaseException) -> None:
    """Print an error as ``PROG: message`` on stderr."""
    message = str(err) or type(err).__name__
    print(f"{prog}: {message}", file=sys.stderr, flush=True)


def exit_code(err: BaseException) -> int:
    """The exit code of a user error (`StylenetError.exit_code`; OSError: the work failed)."""
    return err.exit_code if isinstance(err, StylenetError) else EXIT_FAILED


def run(prog: str, body: Callable[[], int], *, debug: bool = False) -> int:
    """Run a command's body inside the error boundary; return its exit code.

    Args:
        prog: The command's name, for messages.
        body: Does the work; returns 0, or 1 when some inputs failed.
        debug: Re-raise user errors with their traceback instead of one line.
    """
    try:
        return body()
    except (StylenetError, OSError) as err:
        if debug:
            raise
        report(prog, err)
        return exit_code(err)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def add_serving_arguments(parser: argparse.ArgumentParser, *, port: int) -> None:
    """What the page (stylenet-app) and the server (stylenet-serve) share: the models on offer,
    where to listen, tiling and the largest photo taken."""
    from stylenet.inference.serving import MAX_PIXELS

    parser.add_argument(
        "models",
        type=Path,
        nargs="*",
        default=[Path("outputs")],
        metavar="MODEL_OR_FOLDER",
        help="model files, or folders searched for them (default: outputs/, where "
        "stylenet-train writes its runs)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1; 0.0.0.0: all)"
    )
    parser.add_argument(
        "--port", type=at_least(1), default=port, help=f"port to serve on (default {port})"
    )
    parser.add_argument(
        "--tile",
        type=at_least(64),
        help="always stylize in N-px tiles (default: only photos too large for the free memory)",
    )
    parser.add_argument(
        "--max-pixels",
        type=at_least(64),
        default=MAX_PIXELS,
        metavar="N",
        help=f"refuse photos of more than N pixels, read from the file's header before it is "
        f"decoded (default {MAX_PIXELS}, {MAX_PIXELS / 1e6:g} MP)",
    )
