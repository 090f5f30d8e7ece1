"""What serves models to many users, shared by `stylenet-serve` and `stylenet-app`: the models
on offer in the files and folders given (`find_models`), each loaded once and lent to one request
at a time (`Models`), a photo's size checked from its header before it is decoded
(`check_pixels`), and one photo stylized (or upscaled) as a request asks (`stylize_photo`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from stylenet.errors import ConfigError
from stylenet.inference.api import InputImageError, Stylizer, load
from stylenet.inference.batch import fit_size
from stylenet.inference.color import check_strength
from stylenet.inference.model_file import ModelFileError, detect_format
from stylenet.io.images import image_size, load_image, walk_files

log = logging.getLogger(__name__)

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
    wanted = MODEL_SUFFIXES + CHECKPOINT_SUFFIXES
    files = walk_files(folder, lambda name: os.path.splitext(name)[1].lower() in wanted)
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
        check_pixels(photo, max_pixels, scale=stylizer.scale, max_side=max_side or None)
    image = photo if isinstance(photo, Image.Image) else load_image(photo)
    original = image.size
    if (size := fit_size(image.size, max_side=max_side or None)) != image.size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    stylizer.check_input_size(image.height, image.width)
    used = stylizer.choose_tile(image.height, image.width, tile)
    tiled = used is not None
    verb = "upscaling" if upscale else "stylizing"
    step(0.1, f"{verb} in tiles" if tiled else verb)
    start = time.perf_counter()
    out = stylizer(
        image,
        strength=strength,
        preserve_color=preserve_color,
        match_histograms=match_histograms,
        tile=used,
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
        parts.append(f"tiled in {used}-px tiles ({why})")
    else:
        parts.append("one pass, not tiled")
    return Result(out, "; ".join(parts + notes), tiled, seconds)


def check_pixels(
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
            f"{name} is {w}×{h} px ({w * h / 1e6:.0f} MP): photos of up to "
            f"{max_pixels / 1e6:g} MP are taken; shrink it first"
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
            f"MP): results of up to {max_pixels / 1e6:g} MP are made; set a max side of "
            f"{fits} px or less"
        )
