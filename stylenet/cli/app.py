"""`stylenet-app [MODEL_OR_FOLDER ...]`: a web page (gradio) to try trained models on photos.

    stylenet-app outputs/train/mosaic/<run>/model.pt
    stylenet-app outputs/ exported/model.onnx --host 0.0.0.0 --port 8080

Pick a model (every model file in the files and folders given), a style of a multi-style model
(several: an equal blend), a photo (upload, drop, paste; the webcam where the browser allows it:
localhost or HTTPS), strength and preserve-colour; press Stylize, download the result. A photo
too large for the free memory is stylized in tiles. Needs the ``app`` extra (gradio).

The page's work is plain functions (`find_models`, `Models`, `style_choice`, `stylize_photo`);
`build_app` only wires them to gradio, which is imported there and nowhere else.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from stylenet.cli.common import EPILOG, EXIT_OK, ArgumentParser, at_least, report, run
from stylenet.errors import ConfigError, StylenetError
from stylenet.inference import tiling
from stylenet.inference.api import Stylizer, check_size, load
from stylenet.inference.batch import fit_size
from stylenet.inference.color import check_strength
from stylenet.inference.model_file import ModelFileError, detect_format
from stylenet.io.images import ImageReadError, load_image, save_image

if TYPE_CHECKING:
    import gradio as gr

log = logging.getLogger(__name__)

PROG = "stylenet-app"
# A folder offers these files (when their content is a model: never judged by name alone) ...
MODEL_SUFFIXES = (".pt", ".pth", ".onnx")
# ... and its Lightning checkpoints only where it holds none of those: a training run's model.pt
# stands for the checkpoints beside it.
CHECKPOINT_SUFFIXES = (".ckpt",)
# Models kept loaded at once (a 32-channel model is 7 MB of weights; the bound is for big ones).
MAX_LOADED = 4
INSTALL_HINT = "pip install 'stylenet[app]'"


def find_models(paths: Sequence[str | os.PathLike[str]]) -> dict[str, Path]:
    """The models to offer: {label: file}, in the order the paths were given.

    A file is taken as it is; a folder is searched recursively (hidden folders skipped) for
    ``*.pt``, ``*.pth`` and ``*.onnx`` files whose content is a stylenet model, or, where it holds
    none, for Lightning checkpoints (``*.ckpt``). Labels are the paths as given, and relative to
    the folder for files found in one.

    Raises:
        ConfigError: A path that does not exist, or no model anywhere.
        ModelFileError: A file given by name that is not a model stylenet reads.
    """
    found: dict[str, Path] = {}

    def add(label: str, path: Path) -> None:
        if any(p.resolve() == path.resolve() for p in found.values()):
            return  # a file named and also found in a folder: offered once
        found[label if label not in found else str(path.resolve())] = path

    for given in map(Path, paths):
        if given.is_file():
            detect_format(given)  # raises ModelFileError: it was asked for by name
            add(str(given), given)
        elif given.is_dir():
            for path in _models_in(given):
                add(str(path.relative_to(given)), path)
        else:
            raise ConfigError(f"{given}: no such file or folder")
    if not found:
        where = ", ".join(str(p) for p in paths)
        raise ConfigError(
            f"no model files in {where}: give model files (model.pt, .ckpt, .torchscript.pt, "
            ".onnx) or folders that hold them"
        )
    return found


def _models_in(folder: Path) -> list[Path]:
    """The model files under `folder` (see `find_models`), sorted."""
    files: list[Path] = []
    seen: set[Path] = set()  # real folders: a symlink loop is walked once
    for root, dirs, names in os.walk(folder, followlinks=True):
        real = Path(root).resolve()
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files += [Path(root) / n for n in sorted(names) if not n.startswith(".")]
    for suffixes in (MODEL_SUFFIXES, CHECKPOINT_SUFFIXES):
        models = []
        for path in (f for f in files if f.suffix.lower() in suffixes):
            try:
                detect_format(path)
            except ModelFileError as err:  # VGG weights, an optimizer state, ...: not offered
                log.info("skipping %s", err)
            else:
                models.append(path)
        if models:
            return models
    return []


class Models:
    """The models on offer, each loaded on first use and kept (the `max_loaded` last used).

    Args:
        files: {label: model file}, from `find_models`.
        device: Where the models run; None: CUDA, else MPS, else the CPU.
        max_loaded: Models kept in memory at once.
    """

    def __init__(
        self, files: dict[str, Path], *, device: str | None = None, max_loaded: int = MAX_LOADED
    ) -> None:
        self.files = dict(files)
        self.device = device
        self.max_loaded = max_loaded
        self._loaded: OrderedDict[str, Stylizer] = OrderedDict()
        self._lock = threading.Lock()  # the page's events run in threads

    @property
    def labels(self) -> list[str]:
        return list(self.files)

    def get(self, label: str) -> Stylizer:
        """The model offered as `label`, loaded once.

        Raises:
            ConfigError: No model has this label.
            ModelFileError: The file cannot be loaded.
        """
        if label not in self.files:
            raise ConfigError(f"no model {label!r}; the models are {', '.join(self.files)}")
        with self._lock:
            if label not in self._loaded:
                self._loaded[label] = load(self.files[label], device=self.device)
                while len(self._loaded) > self.max_loaded:
                    self._loaded.popitem(last=False)
            self._loaded.move_to_end(label)
            return self._loaded[label]

    def describe(self, label: str) -> str:
        """One line on the model: its styles, backend and device."""
        stylizer = self.get(label)
        styles = stylizer.styles
        kind = f"{len(styles)} styles ({', '.join(styles)})" if styles else "one style"
        return f"{self.files[label]}: {kind}; {stylizer.backend.name} on {stylizer.device}"


def style_choice(styles: Sequence[str], chosen: Sequence[str] | None) -> dict[str, Any]:
    """``style=`` / ``mix=`` for what the page's style picker holds: one style, or several
    blended equally; nothing for a one-style model (`styles` empty).

    Raises:
        ConfigError: A multi-style model and no style picked.
    """
    chosen = list(chosen or [])
    if not styles:
        return {}
    if not chosen:
        raise ConfigError(f"pick a style ({', '.join(styles)}), or several to blend them equally")
    if len(chosen) == 1:
        return {"style": chosen[0]}
    return {"mix": dict.fromkeys(chosen, 1.0)}


@dataclass(frozen=True)
class Result:
    """A stylized photo and the page's line about it."""

    image: Image.Image
    info: str
    tiled: bool
    seconds: float


def stylize_photo(
    stylizer: Stylizer,
    photo: Image.Image | str | os.PathLike[str],
    *,
    styles: Sequence[str] | None = None,
    strength: float = 1.0,
    preserve_color: bool = False,
    max_side: int | None = None,
    tile: int | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> Result:
    """Stylize one photo as the page asks: resized to `max_side` first (None or 0: as it is),
    tiled when memory is short (or always, in `tile`-px tiles).

    Args:
        stylizer: The model.
        photo: A PIL image or an image file (any format Pillow reads; EXIF orientation applied).
        styles: The styles picked (`style_choice`).
        strength: 0 (the photo) … 1 (full style).
        preserve_color: Keep the photo's colours (luminance-only transfer).
        max_side: Downscale so the long side is at most this many pixels.
        tile: Always tile, in tiles of this many pixels.
        progress: Called with (fraction done, what is happening).

    Raises:
        ImageReadError: The file is not an image Pillow can read.
        InputImageError: A side under 8 px (after `max_side`).
        ConfigError: A bad strength or style, or tiling that the model's format cannot do.
    """

    def step(fraction: float, what: str) -> None:
        if progress is not None:
            progress(fraction, what)

    check_strength(strength)
    choice = style_choice(stylizer.styles, styles)
    image = photo if isinstance(photo, Image.Image) else load_image(photo)
    original = image.size
    if (size := fit_size(image.size, max_side=max_side or None)) != image.size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    check_size(image.height, image.width)
    tiled = bool(tile) or stylizer.needs_tiling(image.height, image.width)
    step(0.1, "stylizing in tiles" if tiled else "stylizing")
    start = time.perf_counter()
    out = stylizer(
        image,
        strength=strength,
        preserve_color=preserve_color,
        tile=tile or (tiling.DEFAULT_TILE if tiled else None),
        progress=tiled and progress is not None,  # a tqdm bar over the tiles, which gradio shows
        **choice,
    )
    seconds = time.perf_counter() - start
    assert isinstance(out, Image.Image)  # a PIL image in, a PIL image out
    w, h = image.size
    parts = [f"{w}×{h} px in {seconds:.2f} s ({stylizer.backend.name} on {stylizer.device})"]
    if image.size != original:
        parts.append(f"resized from {original[0]}×{original[1]}")
    if tiled:
        why = "as asked" if tile else "too large for the free memory in one pass"
        parts.append(f"tiled in {tile or tiling.DEFAULT_TILE}-px tiles ({why})")
    else:
        parts.append("one pass, not tiled")
    return Result(out, "; ".join(parts), tiled, seconds)


def output_name(photo: str | os.PathLike[str], choice: Sequence[str] | None) -> str:
    """The download's file name: the photo's stem and the styles, as JPEG for a JPEG photo,
    else PNG (lossless, like the photo)."""
    path = Path(photo)
    suffix = ".jpg" if path.suffix.lower() in (".jpg", ".jpeg", ".jfif") else ".png"
    tag = "+".join(choice or []) or "styled"
    return f"{path.stem or 'photo'}_{tag}{suffix}"


def user_message(err: BaseException) -> str:
    """The page's one-line message for a user error; an uploaded photo is named by its file name,
    not by the server's temporary path."""
    if isinstance(err, ImageReadError):
        return f"cannot read image {err.path.name}: {err.reason}"
    if isinstance(err, torch.OutOfMemoryError):
        return "out of memory for this photo: set a smaller max side"
    return str(err) or type(err).__name__


def import_gradio() -> ModuleType:
    """gradio, or a one-line error saying how to install it."""
    try:
        import gradio
    except ImportError as err:
        raise StylenetError(f"{PROG} needs gradio ({err}): {INSTALL_HINT}") from None
    return gradio


def lenient_preprocess(image: gr.Image) -> gr.Image:
    """Leave the verdict on an uploaded file to stylenet's image loader: gradio opens an upload
    with Pillow first, and a file that is no image would fail there with a bare "Error" instead
    of the loader's message. (Patched on the instance: a subclass of a gradio component makes
    gradio write a .pyi stub beside this module.)"""
    strict = image.preprocess

    def preprocess(payload: Any) -> Any:
        try:
            return strict(payload)
        except Exception:  # whatever Pillow raises; `load_image` says what is wrong
            return getattr(payload, "path", None)

    image.preprocess = preprocess  # type: ignore[method-assign]
    return image


def build_app(models: Models, *, tile: int | None = None, out_dir: Path | None = None) -> gr.Blocks:
    """The page: model and style pickers, photo, controls, result, download and info line.

    Args:
        models: The models on offer.
        tile: Always tile, in tiles of this many pixels (None: only when memory is short).
        out_dir: Where results are written for download (default: a temporary folder).
    """
    gr = import_gradio()
    outputs = out_dir or Path(tempfile.mkdtemp(prefix="stylenet-app-"))
    user_errors = (StylenetError, OSError, torch.OutOfMemoryError)

    def page_error(err: BaseException) -> Exception:
        """The error's one line, for the page (a gradio message) and the server's log."""
        report(PROG, err)
        return gr.Error(user_message(err), print_exception=False)

    def pick_model(label: str) -> tuple[Any, str]:
        try:
            styles = models.get(label).styles
        except user_errors as err:
            raise page_error(err) from None
        picker = gr.Dropdown(
            choices=styles, value=styles[:1], visible=bool(styles), interactive=True
        )
        return picker, models.describe(label)

    def stylize(
        label: str,
        styles: list[str] | None,
        photo: str | None,
        strength: float,
        preserve_color: bool,
        max_side: float | None,
        progress: Any = gr.Progress(track_tqdm=True),  # noqa: B008 (gradio's own idiom)
    ) -> tuple[str, Any, str]:
        try:
            if not photo:
                raise ConfigError(
                    "first give a photo: upload, drop or paste one, or use the webcam"
                )
            progress(0.0, desc="loading the model")
            stylizer = models.get(label)
            chosen = styles if stylizer.styles else []
            result = stylize_photo(
                stylizer,
                photo,
                styles=chosen,
                strength=strength,
                preserve_color=preserve_color,
                max_side=int(max_side or 0) or None,
                tile=tile,
                progress=lambda f, what: progress(f, desc=what),
            )
            progress(0.95, desc="saving")
            path = outputs / uuid.uuid4().hex[:12] / output_name(photo, chosen)
            save_image(result.image, path)
        except user_errors as err:
            raise page_error(err) from None
        download = gr.DownloadButton(f"Download {path.name}", value=str(path), interactive=True)
        return str(path), download, result.info

    first = models.labels[0]
    first_styles: list[str] = []
    try:
        first_styles = models.get(first).styles
        about = models.describe(first)
    except user_errors as err:  # the page still opens; picking it shows the error
        about = user_message(err)

    with gr.Blocks(title="stylenet: try a model", analytics_enabled=False) as demo:
        gr.Markdown(
            "## stylenet: try a model\nFeed-forward style transfer (Johnson et al. 2016): pick a "
            "model, give a photo, press **Stylize**. Large photos are stylized in tiles."
        )
        with gr.Row(equal_height=False):
            with gr.Column():
                with gr.Row():
                    model = gr.Dropdown(models.labels, value=first, label="Model", scale=2)
                    style = gr.Dropdown(
                        first_styles,
                        value=first_styles[:1],
                        multiselect=True,
                        label="Style",
                        info="several: an equal blend",
                        visible=bool(first_styles),
                        scale=2,
                    )
                photo = gr.Image(
                    sources=["upload", "webcam", "clipboard"],
                    type="filepath",
                    image_mode=None,  # the file as sent: stylenet's loader decodes it
                    label="Photo (upload, drop, paste or webcam)",
                    height=380,
                )
                lenient_preprocess(photo)
                with gr.Row():
                    strength = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Strength")
                    preserve = gr.Checkbox(label="Preserve colours", value=False)
                    max_side = gr.Number(
                        value=0,
                        label="Max side (px)",
                        info="0: full size",
                        minimum=0,
                        precision=0,
                    )
                button = gr.Button("Stylize", variant="primary")
            with gr.Column():
                result = gr.Image(
                    type="filepath",
                    label="Stylized",
                    interactive=False,
                    buttons=["download", "fullscreen"],
                    height=380,
                )
                info = gr.Markdown(about)
                download = gr.DownloadButton("Download", interactive=False)
        model.change(pick_model, model, [style, info], api_name="model")
        button.click(
            stylize,
            [model, style, photo, strength, preserve, max_side],
            [result, download, info],
            api_name="stylize",
        )
    return demo


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog=PROG,
        description="A web page (gradio) to try trained stylenet models on photos.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"Needs the app extra: {INSTALL_HINT}\n" + EPILOG,
    )
    p.add_argument(
        "models",
        type=Path,
        nargs="*",
        default=[Path("outputs")],
        metavar="MODEL_OR_FOLDER",
        help="model files, or folders searched for them (default: outputs/, where "
        "stylenet-train writes its runs)",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1; 0.0.0.0: all)"
    )
    p.add_argument("--port", type=at_least(1), default=7860, help="port to serve on (default 7860)")
    p.add_argument(
        "--share", action="store_true", help="also a public gradio.live link (needs internet)"
    )
    p.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    p.add_argument(
        "--tile",
        type=at_least(64),
        help="always stylize in N-px tiles (default: only photos too large for the free memory)",
    )
    return p


def _serve(args: argparse.Namespace) -> int:
    models = Models(find_models(args.models), device=args.device)
    demo = build_app(models, tile=args.tile)  # imports gradio, or says how to install it
    print(f"{PROG}: {len(models.labels)} model(s): {', '.join(models.labels)}", flush=True)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(PROG, lambda: _serve(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
