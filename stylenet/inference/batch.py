"""Stylize (or upscale) many files: map inputs (photos, folders, videos) to outputs, batch
same-size photos, and keep going past any input that fails, naming it.

`plan` checks every output before any work starts (an input is never overwritten, an existing
output only when asked); `plan_styles` does the same for every style of a multi-style model;
`stylize_all` runs a plan and returns a `Summary`. A photo wanted in several styles is decoded
once and stylized in all of them in one forward pass.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from stylenet.errors import ConfigError, OutputExistsError, StylenetError
from stylenet.inference import tiling
from stylenet.inference.api import InputImageError, Stylizer, free_memory
from stylenet.inference.temporal import TemporalBlend
from stylenet.io.images import (
    IMAGE_EXTENSIONS,
    find_images,
    image_size,
    load_image,
    pil_to_tensor,
    save_image,
)
from stylenet.io.video import VIDEO_EXTENSIONS, is_video, transcode_videos

log = logging.getLogger(__name__)

# What one input may fail with and the run still go on: a bad or too-small file, a refused
# output path, a photo too large for the device.
INPUT_ERRORS = (StylenetError, OSError, Image.DecompressionBombError, torch.OutOfMemoryError)
# Bytes per pixel of a photo held on the host while it is stylized, tiled or not: the resized
# photo and its array, then the result's array and the result image (per pixel of the result,
# ×scale² for a super-resolution model), 8-bit RGB each.
_HOST_BYTES_PER_PIXEL = 6
_HOST_BYTES_PER_OUTPUT_PIXEL = 6


@dataclass
class Job:
    """One input file and where its result goes."""

    src: Path
    dst: Path
    video: bool = False
    size: tuple[int, int] = (0, 0)  # (W, H) after orientation and resizing; photos only
    style: str | None = None  # the style of a multi-style model (None: the stylizer's own)


@dataclass
class Plan:
    jobs: list[Job]
    missing: list[tuple[Path, str]]  # inputs that do not exist or hold nothing to stylize


@dataclass(frozen=True)
class Options:
    """How to stylize (the ``stylenet-stylize`` options) or upscale (``stylenet-upscale``'s:
    `match_histograms`; `tile` in input pixels)."""

    max_side: int | None = None
    scale: float | None = None
    batch_size: int = 4
    tile: int | None = None
    overlap: int | None = None
    stats_size: int = tiling.DEFAULT_STATS_SIZE
    preserve_color: bool = False
    strength: float = 1.0
    match_histograms: bool | None = None  # None: the model's default (on for super-resolution)
    temporal: float | None = None  # videos: the flow-guided blend's weight (`TemporalBlend`)
    overwrite: bool = False
    progress: bool = True


@dataclass
class Summary:
    done: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    megapixels: float = 0.0
    seconds: float = 0.0

    def fail(self, path: Path, reason: str) -> None:
        self.failed.append((path, reason))
        tqdm.write(f"FAILED {path}: {reason}", file=sys.stderr)


def read_list(path: Path) -> list[Path]:
    """The files a list file names, one per line (``#`` starts a comment, blank lines are
    skipped); a relative path is relative to the list file's folder.

    Raises:
        ConfigError: The list cannot be read, is not text, or names nothing.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else err
        raise ConfigError(f"--list {path}: cannot read it as a text file ({reason})") from None
    names = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    files = [path.parent / name for name in names if name]
    if not files:
        raise ConfigError(f"--list {path}: names no files (one path per line)")
    return files


def plan(
    inputs: Sequence[Path],
    output: Path,
    *,
    overwrite: bool = False,
    videos: bool = True,
    listed: Path | None = None,
) -> Plan:
    """Map inputs to outputs. A single file input with an output that has a file extension
    writes that file; otherwise `output` is a folder mirroring the inputs' layout.

    Args:
        inputs: Files and folders (searched recursively).
        output: The output file or folder.
        overwrite: Allow existing outputs to be replaced.
        videos: Take videos too; False: folders give their photos only, and a video given by
            name is refused (``stylenet-upscale``).
        listed: A list file (`read_list`) naming more files, in place of or besides `inputs`;
            `output` is then a folder mirroring their paths below the folder they share.

    Raises:
        ConfigError: An output would overwrite an input, two inputs share an output, an
            output's extension is not an image format, a video given without `videos`, or
            the list file cannot be read.
        OutputExistsError: An output exists and `overwrite` is False.
    """
    jobs: list[Job] = []
    missing: list[tuple[Path, str]] = []
    if listed is not None:
        files = read_list(listed)
        absolute = [Path(os.path.abspath(f)) for f in files]
        root = Path(os.path.commonpath([f.parent for f in absolute]))
        for src, full in zip(files, absolute, strict=True):
            if not src.is_file():
                missing.append((src, "no such file" if not src.exists() else "not a file"))
            elif is_video(src) and not videos:
                missing.append((src, "a video: this command takes photos only"))
            else:
                jobs.append(Job(src, output / full.relative_to(root), video=is_video(src)))
    single_file = len(inputs) == 1 and inputs[0].is_file() and listed is None
    to_file = single_file and output.suffix != "" and not output.is_dir()
    for src in inputs:
        if not src.exists():
            missing.append((src, "no such file or folder"))
        elif src.is_dir():
            files = find_images(src)
            if videos:
                files += sorted(p for p in src.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS)
            if not files:
                kinds = "images or videos" if videos else "images"
                missing.append((src, f"no {kinds} under {src}"))
            base = output if len(inputs) == 1 else output / src.name
            jobs += [Job(f, base / f.relative_to(src), video=is_video(f)) for f in files]
        elif is_video(src) and not videos:
            raise ConfigError(f"{src} is a video: this command takes photos only")
        else:
            jobs.append(Job(src, output if to_file else output / src.name, video=is_video(src)))

    sources = {j.src.resolve() for j in jobs}
    if clobber := [j.dst for j in jobs if j.dst.resolve() in sources]:
        raise ConfigError(f"output {clobber[0]} is an input: refusing to overwrite a photo")
    dsts = [j.dst.resolve() for j in jobs]
    if len(set(dsts)) != len(dsts):
        raise ConfigError("two inputs would be written to the same output; give a folder per input")
    existing = [j.dst for j in jobs if j.dst.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise OutputExistsError(f"output {existing[0]} exists{more}; pass --overwrite to replace")
    if bad := [j.dst for j in jobs if not j.video and j.dst.suffix.lower() not in IMAGE_EXTENSIONS]:
        raise ConfigError(f"cannot tell the image format of output {bad[0]}")
    return Plan(jobs, missing)


def per_style_output(inputs: Sequence[Path], output: Path, style: str) -> Path:
    """Where `plan_styles` writes a style: ``out_<style>.jpg`` for one photo written to a file,
    else the folder ``output/<style>/``."""
    single_file = len(inputs) == 1 and inputs[0].is_file()
    if single_file and output.suffix and not output.is_dir():
        return output.with_name(f"{output.stem}_{style}{output.suffix}")
    return output / style


def plan_styles(
    inputs: Sequence[Path],
    output: Path,
    styles: Sequence[str],
    *,
    overwrite: bool = False,
    listed: Path | None = None,
) -> Plan:
    """`plan` for every style of a multi-style model: each input once per style, written to
    `per_style_output`; every output is checked before any work (see `plan`)."""
    jobs: list[Job] = []
    missing: list[tuple[Path, str]] = []
    for style in styles:
        work = plan(
            inputs, per_style_output(inputs, output, style), overwrite=overwrite, listed=listed
        )
        jobs += [Job(j.src, j.dst, video=j.video, style=style) for j in work.jobs]
        missing = work.missing  # the same inputs for every style: report them once
    return Plan(jobs, missing)


def stylize_all(stylizer: Stylizer, work: Plan, options: Options) -> Summary:
    """Stylize every job of `work`; an input that fails is named and skipped."""
    summary = Summary()
    for src, reason in work.missing:
        summary.fail(src, reason)
    _stylize_images(stylizer, [j for j in work.jobs if not j.video], options, summary)
    _stylize_videos(stylizer, [j for j in work.jobs if j.video], options, summary)
    return summary


def fit_size(
    size: tuple[int, int], *, max_side: int | None = None, scale: float | None = None
) -> tuple[int, int]:
    """(W, H) after ``--scale`` and then ``--max-side`` (downscale only): what a photo of
    `size` is resized to before it is stylized.

    Raises:
        ConfigError: `scale` is not a finite number > 0, or overflows the size.
    """
    w, h = size
    if scale is not None:
        if not (math.isfinite(scale) and scale > 0):
            raise ConfigError(f"scale must be a finite number > 0, got {scale}")
        if not math.isfinite(max(w, h) * scale):  # 1e308 × 40 px: no size at all
            raise ConfigError(f"scale {scale:g} makes a {w}×{h} px photo too large")
        w, h = max(1, round(w * scale)), max(1, round(h * scale))
    if max_side is not None and max(w, h) > max_side:
        f = max_side / max(w, h)
        w, h = max(1, round(w * f)), max(1, round(h * f))
    return w, h


def target_size(path: Path, max_side: int | None, scale: float | None) -> tuple[int, int]:
    """(W, H) the image will have, read from its header (no decoding).

    Raises:
        ImageReadError: The file cannot be opened as an image (`image_size`'s reason).
    """
    return fit_size(image_size(path), max_side=max_side, scale=scale)


def check_room(size: tuple[int, int], scale: int = 1) -> None:
    """Refuse a photo whose resized copy and result (``scale`` × larger for a super-resolution
    model) do not fit in the host's free memory: tiling bounds the network's memory, not theirs
    (``--scale 1e5`` asks for terapixels; a ×4 upscale of a 100 MP photo is 1.6 GP)."""
    w, h = size
    # float: inf rather than an overflow
    need = float(w) * float(h) * (_HOST_BYTES_PER_PIXEL + _HOST_BYTES_PER_OUTPUT_PIXEL * scale**2)
    free = free_memory(torch.device("cpu"))
    if need > free and scale != 1:
        raise InputImageError(
            f"{w}×{h} px upscaled ×{scale} to {w * scale}×{h * scale} px needs about "
            f"{need / 1e9:,.1f} GB of memory to hold, more than the {free / 1e9:.1f} GB free, "
            "tiled or not: choose a smaller --max-side"
        )
    if need > free:
        raise InputImageError(
            f"{float(w):.10g}×{float(h):.10g} px after resizing needs about {need / 1e9:,.1f} GB "
            f"of memory to hold, more than the {free / 1e9:.1f} GB free: choose a smaller "
            "--scale or --max-side"
        )


def load_resized(job: Job) -> Image.Image:
    """`job`'s photo, upright RGB, resized to ``job.size`` (`target_size`)."""
    img = load_image(job.src)  # EXIF orientation applied
    if img.size != job.size:
        img = img.resize(job.size, Image.Resampling.LANCZOS)
    return img


def _stylize_images(
    stylizer: Stylizer, jobs: list[Job], options: Options, summary: Summary
) -> None:
    ready = []
    for job in jobs:
        try:
            job.size = target_size(job.src, options.max_side, options.scale)
            stylizer.check_input_size(job.size[1], job.size[0])
            check_room(job.size, stylizer.scale)
        except INPUT_ERRORS as err:
            summary.fail(job.src, str(err) or type(err).__name__)
        else:
            ready.append(job)
    # Same-size photos share a batch: sort by size (stable: a photo's styles stay together),
    # then cut each size group into batches of `batch_size` photos, each in all its styles.
    ready.sort(key=lambda j: (j.size, str(j.src)))
    per_photo = len({j.style for j in ready}) or 1
    bar = tqdm(total=len(ready), unit="img", desc="stylize", disable=not options.progress)
    for (width, height), same_size in groupby(ready, key=lambda j: j.size):
        group = list(same_size)
        # Tiled one by one when asked, or when even one is too large for the free memory
        # (`Stylizer.choose_tile`); else fewer photos per pass where memory is short.
        tile = stylizer.choose_tile(height, width, options.tile, count=len(group))
        step = (
            1
            if tile
            else min(options.batch_size * per_photo, stylizer.batch_capacity(height, width))
        )
        for i in range(0, len(group), step):
            batch = group[i : i + step]
            try:
                _stylize_batch(stylizer, batch, options, summary, tile=tile)
            except INPUT_ERRORS as err:
                for job in batch:
                    summary.fail(job.src, str(err) or type(err).__name__)
            bar.update(len(batch))
    bar.close()


def _stylize_batch(
    stylizer: Stylizer,
    batch: list[Job],
    options: Options,
    summary: Summary,
    *,
    tile: int | None,
) -> None:
    decoded: dict[Path, Image.Image] = {}  # each photo decoded once, whatever its styles
    loaded: list[tuple[Job, Image.Image]] = []
    for job in batch:
        try:
            if job.src not in decoded:
                decoded[job.src] = load_resized(job)
            loaded.append((job, decoded[job.src]))
        except INPUT_ERRORS as err:
            summary.fail(job.src, str(err))
    if not loaded:
        return
    start = time.perf_counter()
    if tile:
        outputs = [
            stylizer(
                img,
                tile=tile,
                overlap=options.overlap,
                stats_size=options.stats_size,
                preserve_color=options.preserve_color,
                strength=options.strength,
                match_histograms=options.match_histograms,
                progress=options.progress,
                style=job.style,
            )
            for job, img in loaded
        ]
    else:
        photos = torch.stack([pil_to_tensor(img) for _, img in loaded])
        named = [job.style for job, _ in loaded if job.style is not None]
        styled = stylizer.stylize_batch(
            photos,
            preserve_color=options.preserve_color,
            strength=options.strength,
            match_histograms=False,  # on the 8-bit result below, as a tiled photo gets it
            styles=named or None,
        )
        match = options.match_histograms
        match = stylizer.match_histograms if match is None else match
        outputs = [
            stylizer.to_image(t, img, match_histograms=match)
            for t, (_, img) in zip(styled, loaded, strict=True)
        ]
    summary.seconds += time.perf_counter() - start
    for (job, img), out in zip(loaded, outputs, strict=True):
        try:
            save_image(out, job.dst, overwrite=options.overwrite)
        except INPUT_ERRORS as err:  # e.g. an unwritable folder: this photo fails, others go on
            summary.fail(job.src, f"cannot write {job.dst}: {err}")
            continue
        summary.done += 1
        summary.megapixels += img.width * img.height / 1e6


def _stylize_videos(
    stylizer: Stylizer, jobs: list[Job], options: Options, summary: Summary
) -> None:
    """Each video decoded once: its jobs (one per style with ``--all-styles``) are written from
    the same frames, every style of a batch of frames in one pass."""
    by_video: dict[tuple[Path, Path | None], list[Job]] = {}
    for job in jobs:  # a video's styles together; a one-style model's jobs each alone
        by_video.setdefault((job.src, None if job.style else job.dst), []).append(job)
    for (src, _), same in by_video.items():
        if stylizer.task == "superres":  # transcode_video writes frames of the input's size
            summary.fail(src, "a super-resolution model upscales photos, not videos")
            continue
        styles = [job.style for job in same if job.style is not None]  # [] for one style
        blend = None if options.temporal is None else TemporalBlend(None, options.temporal)

        def frames(
            x: torch.Tensor, styles: list[str] = styles, blend: TemporalBlend | None = blend
        ) -> list[torch.Tensor]:  # (B, 3, H, W) -> one (B, 3, H, W) per output
            named = [s for s in styles for _ in range(len(x))] or None
            y = stylizer.stylize_batch(
                x.repeat(len(styles), 1, 1, 1) if named else x,
                preserve_color=options.preserve_color,
                strength=options.strength,
                styles=named,
            )
            outputs = list(y.split(len(x)))  # style-major: one batch per output
            return outputs if blend is None else blend.blend(x, outputs)

        try:
            reports = transcode_videos(
                src,
                [job.dst for job in same],
                map_frames=frames,
                batch_size=options.batch_size,  # frames, each in every style (as photos)
                overwrite=options.overwrite,
                progress=options.progress,
            )
        except (*INPUT_ERRORS, ValueError) as err:
            summary.fail(src, str(err))
            continue
        report = reports[0]
        summary.done += len(reports)
        summary.seconds += report.seconds
        summary.megapixels += len(reports) * report.frames * report.width * report.height / 1e6
        steady = "" if options.temporal is None else f", --temporal {options.temporal:g}"
        outputs = ", ".join(str(r.output) for r in reports)
        print(
            f"{src} -> {outputs}: {report.frames} frames at {float(report.fps):.3g} fps "
            f"({report.processing_fps:.2f} frames/s{steady}); how much it flickers: "
            f"stylenet-evaluate MODEL --video {src}"
        )
