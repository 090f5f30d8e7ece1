"""`stylenet-app [MODEL_OR_FOLDER ...]`: a web page (gradio) to try trained models on photos.

    stylenet-app outputs/train/mosaic/<run>/model.pt
    stylenet-app outputs/ exported/model.onnx --host 0.0.0.0 --port 8080

Pick a model (every model file in the files and folders given), a style of a multi-style model
(several: an equal blend), a photo (upload, drop, paste; the webcam where the browser allows it:
localhost or HTTPS), strength and preserve-colour; press Stylize, download the result. A photo
too large for the free memory is stylized in tiles. A super-resolution model upscales the photo
instead: the style menu, strength and preserve-colour are hidden (and ignored, with a note, when
sent through the API), a "Match histograms" box is shown. Needs the ``app`` extra (gradio).

The page is open to whoever reaches it: a photo over `MAX_PIXELS` is refused from its header
(for a super-resolution model, also one whose upscaled result would be over `MAX_PIXELS`),
`CONCURRENCY` photos are stylized at once (so one large photo does not hold up everyone else),
uploads and results are deleted after `KEEP_FILES` seconds, and model menu labels never show the
server's paths.

The page's work is plain functions (`find_models`, `Models`, `style_choice`, `stylize_photo`,
`remove_old_results`); `build_app` only wires them to gradio, which is imported there and nowhere
else.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from stylenet.cli.common import EPILOG, EXIT_OK, ArgumentParser, at_least, report, run
from stylenet.errors import ConfigError, FileReadError, StylenetError
from stylenet.inference.api import InputImageError, Stylizer, load
from stylenet.inference.batch import fit_size
from stylenet.inference.color import check_strength
from stylenet.inference.model_file import ModelFileError, detect_format
from stylenet.io.images import image_size, load_image, save_image

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
# Largest photo taken, in pixels: above an 8000×6000 (48 MP) photo, the largest phones take, which
# is stylized in tiles in 1.65 GiB and about 3 min on 2 CPU cores (README, "Large images"); a
# 12 KB PNG that declares 100 MP is refused from its header instead of holding a worker. A
# super-resolution result is held to it too (its output pixels: a 10 MP photo ×4 is 160 MP),
# since the result, not the photo, is what takes the memory (3 bytes a pixel as an array, 4 as an
# image) and the download.
MAX_PIXELS = 50_000_000
# Photos stylized at once: a second visitor's photo is answered while one large photo is tiled.
# Each one costs the memory of its photo (above), so more only split the same device.
CONCURRENCY = 2
# Seconds uploads and results are kept (gradio's cache and the app's own result files): a result
# stays downloadable for an hour, and a server left running does not fill its disk.
KEEP_FILES = 3600
# Each result is written to its own folder, named so, inside the results folder.
RESULT_PREFIX = "result-"
INSTALL_HINT = "pip install 'stylenet[app]'"


def find_models(paths: Sequence[str | os.PathLike[str]]) -> dict[str, Path]:
    """The models to offer: {label: file}, in the order the paths were given.

    A file is taken as it is; a folder is searched recursively (hidden folders skipped) for
    ``*.pt``, ``*.pth`` and ``*.onnx`` files whose content is a stylenet model, or, where it holds
    none, for Lightning checkpoints (``*.ckpt``). Labels never show the server's paths (every
    visitor reads them): a file's name, or its path relative to the folder it was found in, with
    as many of its parent folders in front as it takes to tell models apart.

    Raises:
        ConfigError: A path that does not exist, or no model anywhere.
        ModelFileError: A file given by name that is not a model stylenet reads.
    """
    found: dict[Path, int] = {}  # model file -> parts its label has at least

    def add(path: Path, parts: int) -> None:
        if all(p.resolve() != path.resolve() for p in found):  # named and in a folder: once
            found[path] = parts

    for given in map(Path, paths):
        if given.is_file():
            detect_format(given)  # raises ModelFileError: it was asked for by name
            add(given, 1)
        elif given.is_dir():
            for path in _models_in(given):
                add(path, len(path.relative_to(given).parts))
        else:
            raise ConfigError(f"{given}: no such file or folder")
    if not found:
        where = ", ".join(str(p) for p in paths)
        raise ConfigError(
            f"no model files in {where}: give model files (model.pt, .ckpt, .torchscript.pt, "
            ".onnx) or folders that hold them"
        )
    return dict(zip(_unique_tails(found), found, strict=True))


def _unique_tails(files: dict[Path, int]) -> list[str]:
    """A label per file: its last `n` path parts, lengthened (never to the root) while another
    label is the same or ends with it (``model.pt`` beside ``a/model.pt``); a number tells apart
    the rest (files on different drives)."""
    parts = [Path(os.path.abspath(f)).parts[1:] for f in files]
    sizes = list(files.values())
    while True:
        labels = ["/".join(p[-n:]) for p, n in zip(parts, sizes, strict=True)]
        grow = [
            i
            for i, label in enumerate(labels)
            if sizes[i] < len(parts[i])
            and any(o == label or o.endswith(f"/{label}") for o in labels[:i] + labels[i + 1 :])
        ]
        if not grow:
            break
        for i in grow:
            sizes[i] += 1
    seen: Counter[str] = Counter()
    for i, label in enumerate(labels):
        seen[label] += 1
        if seen[label] > 1:
            labels[i] = f"{label} ({seen[label]})"
    return labels


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

    A photo is stylized with a model borrowed for it alone (`borrow`): tiling patches the
    network's instance norms in place (`tiling.instance_norm_stats`), so two photos stylized at
    once never share one network; a second copy is loaded when the first is in use.

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
        self._idle: OrderedDict[str, list[Stylizer]] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()  # the page's events run in threads

    @property
    def labels(self) -> list[str]:
        return list(self.files)

    def get(self, label: str) -> Stylizer:
        """The model offered as `label`, loaded once: to read its styles and backend (to stylize
        with it, `borrow` it).

        Raises:
            ConfigError: No model has this label.
            ModelFileError: The file cannot be loaded.
        """
        with self.borrow(label) as stylizer:
            return stylizer

    @contextlib.contextmanager
    def borrow(self, label: str) -> Iterator[Stylizer]:
        """The model offered as `label`, for the caller alone inside the ``with`` block.

        Raises:
            ConfigError: No model has this label.
            ModelFileError: The file cannot be loaded.
        """
        if label not in self.files:
            raise ConfigError(f"no model {label!r}; the models are {', '.join(self.files)}")
        with self._lock:
            idle = self._idle.get(label)
            stylizer = idle.pop() if idle else None
        if stylizer is None:
            stylizer = load(self.files[label], device=self.device)
        try:
            yield stylizer
        finally:
            with self._lock:
                self._idle.setdefault(label, []).append(stylizer)
                self._idle.move_to_end(label)
                while len(self._idle) > self.max_loaded:
                    self._idle.popitem(last=False)

    def describe(self, label: str) -> str:
        """One line on the model: its styles (or its scale), backend and device."""
        stylizer = self.get(label)
        styles = stylizer.styles
        kind = f"{len(styles)} styles ({', '.join(styles)})" if styles else "one style"
        if stylizer.task == "superres":
            kind = f"×{stylizer.scale} super-resolution"
        return f"{label}: {kind}; {stylizer.backend.name} on {stylizer.device}"


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
    max_pixels: int | None = MAX_PIXELS,
    match_histograms: bool | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> Result:
    """Stylize (or upscale, with a super-resolution model) one photo as the page asks: resized to
    `max_side` first (None or 0: as it is), tiled when memory is short (or always, in `tile`-px
    tiles).

    Controls that do not apply to the model are ignored, with a note in the result's line:
    strength and preserve-colour for a super-resolution model, match-histograms for a style
    model (the page hides them; the API may still send them).

    Args:
        stylizer: The model.
        photo: A PIL image or an image file (any format Pillow reads; EXIF orientation applied).
        styles: The styles picked (`style_choice`).
        strength: 0 (the photo) … 1 (full style).
        preserve_color: Keep the photo's colours (luminance-only transfer).
        max_side: Downscale so the long side is at most this many pixels.
        tile: Always tile, in tiles of this many (input) pixels.
        max_pixels: Refuse a photo of more pixels (as given, before `max_side`), a file from its
            header before it is decoded, and, for a super-resolution model, a photo whose
            result (after `max_side`) would have more; None: any size.
        match_histograms: Match the upscaled result's histograms to the photo's
            (super-resolution; None: the model's default, on).
        progress: Called with (fraction done, what is happening).

    Raises:
        ImageReadError: The file is not an image Pillow can read.
        InputImageError: A side under the model's minimum (after `max_side`), or more than
            `max_pixels`.
        ConfigError: A bad strength, max side or style, or tiling that the model's format
            cannot do.
    """

    def step(fraction: float, what: str) -> None:
        if progress is not None:
            progress(fraction, what)

    check_strength(strength)
    if max_side is not None and max_side < 0:
        raise ConfigError(f"max side must be 0 (full size) or more, got {max_side}")
    choice = style_choice(stylizer.styles, styles)
    upscale = stylizer.task == "superres"
    notes = []
    if upscale and (strength != 1.0 or preserve_color):
        notes.append("strength and preserve colours do not apply to super-resolution: ignored")
        strength, preserve_color = 1.0, False
    if not upscale and match_histograms:
        notes.append("match histograms applies to super-resolution models only: ignored")
        match_histograms = False
    if max_pixels is not None:
        _check_pixels(photo, max_pixels, scale=stylizer.scale, max_side=max_side or None)
    image = photo if isinstance(photo, Image.Image) else load_image(photo)
    original = image.size
    if (size := fit_size(image.size, max_side=max_side or None)) != image.size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    stylizer.check_input_size(image.height, image.width)
    tiled = bool(tile) or stylizer.needs_tiling(image.height, image.width)
    verb = "upscaling" if upscale else "stylizing"
    step(0.1, f"{verb} in tiles" if tiled else verb)
    start = time.perf_counter()
    out = stylizer(
        image,
        strength=strength,
        preserve_color=preserve_color,
        match_histograms=match_histograms,
        tile=tile or (stylizer.default_tile if tiled else None),
        progress=tiled and progress is not None,  # a tqdm bar over the tiles, which gradio shows
        **choice,
    )
    seconds = time.perf_counter() - start
    assert isinstance(out, Image.Image)  # a PIL image in, a PIL image out
    w, h = image.size
    size_text = f"{w}×{h} px"
    if upscale:
        size_text += f" upscaled ×{stylizer.scale} to {out.width}×{out.height} px"
    parts = [f"{size_text} in {seconds:.2f} s ({stylizer.backend.name} on {stylizer.device})"]
    if image.size != original:
        parts.append(f"resized from {original[0]}×{original[1]}")
    if tiled:
        why = "as asked" if tile else "too large for the free memory in one pass"
        parts.append(f"tiled in {tile or stylizer.default_tile}-px tiles ({why})")
    else:
        parts.append("one pass, not tiled")
    return Result(out, "; ".join(parts + notes), tiled, seconds)


def _check_pixels(
    photo: Image.Image | str | os.PathLike[str],
    max_pixels: int,
    *,
    scale: int = 1,
    max_side: int | None = None,
) -> None:
    """Refuse a photo of more than `max_pixels`, or (`scale` > 1, super-resolution) one whose
    result, after `max_side`, would have more; a file is measured by its header alone
    (`image_size`), so a small file that declares a huge image costs nothing.

    Raises:
        InputImageError: Too many pixels.
        ImageReadError: The file is not an image (or past Pillow's own bomb limit).
    """
    if isinstance(photo, Image.Image):
        (w, h), name = photo.size, "the photo"
    else:
        (w, h), name = image_size(photo), Path(photo).name
    if w * h > max_pixels:
        raise InputImageError(
            f"{name} is {w}×{h} px ({w * h / 1e6:.0f} MP): this page takes photos of up to "
            f"{max_pixels / 1e6:g} MP; shrink it first"
        )
    fw, fh = fit_size((w, h), max_side=max_side)
    out = fw * fh * scale**2
    if scale > 1 and out > max_pixels:
        # The longest side whose ×scale result still fits (fit_size rounds the other side).
        fits = int(max(fw, fh) * math.sqrt(max_pixels / out))
        while fits > 1 and math.prod(fit_size((w, h), max_side=fits)) * scale**2 > max_pixels:
            fits -= 1
        raise InputImageError(
            f"{name} upscaled ×{scale} would be {fw * scale}×{fh * scale} px ({out / 1e6:.0f} "
            f"MP): this page makes images of up to {max_pixels / 1e6:g} MP; set a max side of "
            f"{fits} px or less"
        )


def remove_old_results(folder: Path, age: float) -> None:
    """Delete the results (``result-*`` folders) in `folder` written more than `age` seconds
    ago; nothing else in it is touched."""
    cutoff = time.time() - age
    for entry in folder.glob(f"{RESULT_PREFIX}*"):
        try:
            if entry.is_dir() and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry)
        except FileNotFoundError:  # removed meanwhile, by the sweep of a concurrent request
            continue


def output_name(photo: str | os.PathLike[str], choice: Sequence[str] | None) -> str:
    """The download's file name: the photo's stem and the styles, as JPEG for a JPEG photo,
    else PNG (lossless, like the photo)."""
    path = Path(photo)
    suffix = ".jpg" if path.suffix.lower() in (".jpg", ".jpeg", ".jfif") else ".png"
    tag = "+".join(choice or []) or "styled"
    return f"{path.stem or 'photo'}_{tag}{suffix}"


def user_message(err: BaseException) -> str:
    """The page's one-line message for a user error; a file (an uploaded photo, a model) is named
    by its file name, not by its path on the server."""
    if isinstance(err, FileReadError):
        return f"cannot read {err.kind} {err.path.name}: {err.reason}"
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


def defer_checks(component: gr.components.Component) -> gr.components.Component:
    """Leave the verdict on an input to stylenet's own checks, which say in one line what is
    wrong: gradio's preprocessing refuses an upload Pillow cannot open with a bare "Error", and a
    value out of a slider's range or a menu's choices (sent through the API) with a traceback in
    the server's log. (Patched on the instance: a subclass of a gradio component makes gradio
    write a .pyi stub beside this module. An instance that gradio replaces, a menu whose choices
    an event updates, loses the patch: give it ``allow_custom_value=True`` instead.)"""
    gr = import_gradio()
    strict = component.preprocess

    def preprocess(payload: Any) -> Any:
        try:
            return strict(payload)
        except Exception as err:
            if (path := getattr(payload, "path", None)) is not None:
                return path  # whatever Pillow raises; `load_image` says what is wrong
            if isinstance(err, gr.Error):
                return payload  # out of range, or no choice: `check_strength`, ... say so
            raise

    component.preprocess = preprocess  # type: ignore[method-assign]
    return component


def build_app(
    models: Models,
    *,
    tile: int | None = None,
    out_dir: Path | None = None,
    max_pixels: int | None = MAX_PIXELS,
    concurrency: int = CONCURRENCY,
    keep_files: int = KEEP_FILES,
) -> gr.Blocks:
    """The page: model and style pickers, photo, controls, result, download and info line.

    Args:
        models: The models on offer.
        tile: Always tile, in tiles of this many pixels (None: only when memory is short).
        out_dir: Where results are written for download (default: a temporary folder, removed
            with the page).
        max_pixels: Refuse photos of more pixels (None: any size).
        concurrency: Photos stylized at once.
        keep_files: Seconds after which uploads and results are deleted.
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

    def pick_controls(label: str) -> tuple[Any, ...]:
        """Show the controls that apply to the model (loaded by `pick_model` just before):
        (strength, preserve colours, match histograms, button, result)."""
        style = models.get(label).task != "superres"
        return (
            gr.Slider(visible=style),
            gr.Checkbox(visible=style),
            gr.Checkbox(visible=not style),
            gr.Button("Stylize" if style else "Upscale"),
            gr.Image(label="Stylized" if style else "Upscaled"),
        )

    def stylize(
        label: str,
        styles: list[str] | None,
        photo: str | None,
        strength: float,
        preserve_color: bool,
        max_side: float | None,
        match_histograms: bool | None = None,  # last, with a default: older calls leave it out
        progress: Any = gr.Progress(track_tqdm=True),  # noqa: B008 (gradio's own idiom)
    ) -> tuple[str, Any, str]:
        try:
            if not photo:
                raise ConfigError(
                    "first give a photo: upload, drop or paste one, or use the webcam"
                )
            progress(0.0, desc="loading the model")
            with models.borrow(label) as stylizer:
                chosen = styles if stylizer.styles else []
                result = stylize_photo(
                    stylizer,
                    photo,
                    styles=chosen,
                    strength=strength,
                    preserve_color=preserve_color,
                    max_side=int(max_side or 0) or None,
                    tile=tile,
                    max_pixels=max_pixels,
                    match_histograms=None if match_histograms is None else bool(match_histograms),
                    progress=lambda f, what: progress(f, desc=what),
                )
                tag = [f"x{stylizer.scale}"] if stylizer.task == "superres" else chosen
            progress(0.95, desc="saving")
            # gradio serves a copy from its cache (deleted after `keep_files`); this one is ours.
            remove_old_results(outputs, keep_files)
            path = outputs / f"{RESULT_PREFIX}{uuid.uuid4().hex[:12]}" / output_name(photo, tag)
            save_image(result.image, path)
        except user_errors as err:
            raise page_error(err) from None
        download = gr.DownloadButton(f"Download {path.name}", value=str(path), interactive=True)
        return str(path), download, result.info

    first = models.labels[0]
    first_styles: list[str] = []
    first_task = "style"
    try:
        first_styles, first_task = models.get(first).styles, models.get(first).task
        about = models.describe(first)
    except user_errors as err:  # the page still opens; picking it shows the error
        about = user_message(err)
    upscaling = first_task == "superres"

    with gr.Blocks(
        title="stylenet: try a model",
        analytics_enabled=False,
        # (how often, age) in seconds: gradio deletes the uploads and the copies of results it
        # serves once they are `keep_files` old, checking every quarter of that.
        delete_cache=(max(1, keep_files // 4), keep_files),
    ) as demo:
        gr.Markdown(
            "## stylenet: try a model\nFeed-forward style transfer and super-resolution (Johnson "
            "et al. 2016): pick a model, give a photo, press **Stylize** (**Upscale** for a "
            "super-resolution model). Large photos are worked on in tiles."
        )
        with gr.Row(equal_height=False):
            with gr.Column():
                with gr.Row():
                    model = gr.Dropdown(models.labels, value=first, label="Model", scale=2)
                    style = gr.Dropdown(
                        first_styles,
                        value=first_styles[:1],
                        multiselect=True,
                        allow_custom_value=True,  # the model judges (see `defer_checks`)
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
                with gr.Row():
                    strength = gr.Slider(
                        0.0, 1.0, value=1.0, step=0.05, label="Strength", visible=not upscaling
                    )
                    preserve = gr.Checkbox(
                        label="Preserve colours", value=False, visible=not upscaling
                    )
                    match = gr.Checkbox(
                        label="Match histograms",
                        value=True,
                        info="the photo's colour histograms (Johnson et al., Sec. 4.2)",
                        visible=upscaling,
                    )
                    max_side = gr.Number(
                        value=0,
                        label="Max side (px)",
                        info="0: full size",
                        minimum=0,
                        precision=0,
                    )
                button = gr.Button("Upscale" if upscaling else "Stylize", variant="primary")
            with gr.Column():
                result = gr.Image(
                    type="filepath",
                    label="Upscaled" if upscaling else "Stylized",
                    interactive=False,
                    buttons=["download", "fullscreen"],
                    height=380,
                )
                info = gr.Markdown(about)
                download = gr.DownloadButton("Download", interactive=False)
        inputs = [model, style, photo, strength, preserve, max_side, match]
        for component in inputs:
            defer_checks(component)
        picked = model.change(pick_model, model, [style, info], api_name="model")
        # The page's own follow-up (not in the API): show the controls that apply to the model.
        shown = [strength, preserve, match, button, result]
        picked.success(pick_controls, model, shown, api_name=False)
        button.click(
            stylize,
            inputs,
            [result, download, info],
            api_name="stylize",
            concurrency_limit=concurrency,
        )
    if out_dir is None:  # the temporary folder goes with the page, or at exit
        weakref.finalize(demo, shutil.rmtree, outputs, ignore_errors=True)
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
    p.add_argument(
        "--max-pixels",
        type=at_least(64),
        default=MAX_PIXELS,
        metavar="N",
        help=f"refuse photos of more than N pixels, read from the file's header before it is "
        f"decoded (default {MAX_PIXELS}, {MAX_PIXELS / 1e6:g} MP)",
    )
    p.add_argument(
        "--concurrency",
        type=at_least(1),
        default=CONCURRENCY,
        metavar="N",
        help=f"photos stylized at once (default {CONCURRENCY}); more wait their turn",
    )
    p.add_argument(
        "--keep-files",
        type=at_least(1),
        default=KEEP_FILES,
        metavar="SECONDS",
        help=f"delete uploads and results this many seconds old (default {KEEP_FILES})",
    )
    return p


def _serve(args: argparse.Namespace) -> int:
    models = Models(find_models(args.models), device=args.device)
    demo = build_app(  # imports gradio, or says how to install it
        models,
        tile=args.tile,
        max_pixels=args.max_pixels,
        concurrency=args.concurrency,
        keep_files=args.keep_files,
    )
    print(f"{PROG}: {len(models.labels)} model(s): {', '.join(models.labels)}", flush=True)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(PROG, lambda: _serve(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
