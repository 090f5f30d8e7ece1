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

The page's work is plain functions, shared with `stylenet-serve` in
`stylenet.inference.serving` (`find_models`, `Models`, `stylize_photo`), and `remove_old_results`
here; `build_app` only wires them to gradio, which is imported there and nowhere else.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import torch

from stylenet.cli.common import (
    EPILOG,
    EXIT_OK,
    ArgumentParser,
    add_serving_arguments,
    at_least,
    report,
    run,
)
from stylenet.errors import ConfigError, FileReadError, StylenetError
from stylenet.inference.serving import MAX_PIXELS, Models, find_models, stylize_photo
from stylenet.io.images import save_image

if TYPE_CHECKING:
    import gradio as gr

log = logging.getLogger(__name__)

PROG = "stylenet-app"
# Photos stylized at once: a second visitor's photo is answered while one large photo is tiled.
# Each one costs the memory of its photo (`MAX_PIXELS`), so more only split the same device.
CONCURRENCY = 2
# Seconds uploads and results are kept (gradio's cache and the app's own result files): a result
# stays downloadable for an hour, and a server left running does not fill its disk.
KEEP_FILES = 3600
# Each result is written to its own folder, named so, inside the results folder.
RESULT_PREFIX = "result-"
INSTALL_HINT = "pip install 'stylenet[app]'"


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
    add_serving_arguments(p, port=7860)
    p.add_argument(
        "--share", action="store_true", help="also a public gradio.live link (needs internet)"
    )
    p.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
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
