"""How close does a trained model come to the optimum of its own loss?

For each photo the model's output is scored with the loss it was trained with (its named terms,
weighted as in training), next to the photo itself (the starting point) and, if asked,
Gatys-style optimization of the image against the same loss after N L-BFGS iterations (from the
photo, as ``stylenet-optimize style`` does). Wall time is recorded for both, so the report says
what the single forward pass gives up in loss and gains in time.

Beside the loss terms, two content metrics on scales users know say how much of the photo
survived in each image: LPIPS (VGG, v0.1; 0 for the photo itself, higher is further from it) and
SSIM (1 for the photo itself), both against the photo (`stylenet.evaluation.metrics`).

`evaluate` writes into its output folder: ``report.json`` (everything), ``report.md`` (a Markdown
table), ``grid.jpg`` (photo | model | optimization, one row per photo) and ``images/`` (each
output). The loss comes from the model's card (``model.pt`` written by ``stylenet-train``
records its loss config and style image); other formats use the default training loss and need a
style image.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from stylenet.errors import ConfigError, FileReadError, OutputExistsError
from stylenet.evaluation.metrics import LPIPS, LPIPS_MIN_SIDE, ssim
from stylenet.evaluation.report import (
    EvaluationReport,
    PhotoResult,
    Score,
    Skipped,
    Summary,
)
from stylenet.inference.api import Stylizer, load
from stylenet.inference.model_file import read_card
from stylenet.inference.styles import StyleKey, style_index
from stylenet.io.files import atomic_write
from stylenet.io.images import find_images, load_image_tensor, make_grid, save_image
from stylenet.losses import TERM_NAMES, PerceptualLoss
from stylenet.reference.optimize import instantiate_loss, loss_preset, optimize_image

log = logging.getLogger(__name__)

DEFAULT_SIZE = 256
# The image terms at weight 1, the video ones off: what runs of different weights are compared
# by (a sweep's report).
UNIT_WEIGHTS = {"content": 1.0, "style": 1.0, "tv": 1.0, "pixel": 0.0, "noise": 0.0, "motion": 0.0}
DEFAULT_OPTIMIZE = (100, 300, 500)  # L-BFGS iterations reported by --optimize without a value
OUTPUT_FILES = ("report.json", "report.md", "grid.jpg")


@dataclass(frozen=True)
class TrainingLoss:
    """The loss a model was trained with, its style targets set."""

    loss: PerceptualLoss
    style_image: str
    style_size: int | None
    source: str  # where the loss settings came from
    vgg_weights: str | None = None  # the loss network's weight file as configured (None: lookup)


def training_loss(
    model_path: str | os.PathLike[str],
    *,
    style: str | os.PathLike[str] | None = None,
    style_size: int | None = None,
    vgg_weights: str | None = None,
    weights: Mapping[str, float] | None = None,
) -> TrainingLoss:
    """Rebuild the training loss of `model_path`.

    A ``model.pt`` from ``stylenet-train`` records its loss config, style image and style size;
    explicit `style` / `style_size` override them. Other model formats get the default training
    loss (configs/loss/johnson.yaml). `weights` ({term name: weight}) replaces the recorded
    weights: `UNIT_WEIGHTS` gives terms that compare between models trained with different
    weights.

    Raises:
        ConfigError: No style image given and none recorded in the model file.
        FileReadError: The style image cannot be read.
    """
    card = read_card(model_path)
    cfg = card.loss
    source = (
        f"{model_path} model card" if cfg else "default training loss (configs/loss/johnson.yaml)"
    )
    cfg = dict(cfg or loss_preset("johnson"))
    if vgg_weights is not None:
        cfg["vgg"] = {**cfg.get("vgg", {}), "weights": vgg_weights}
    for name, weight in (weights or {}).items():
        cfg[f"{name}_weight"] = float(weight)
    first = card.styles[0] if card.styles else None
    style = style or (first.image if first else None)
    if style is None:
        raise ConfigError(f"{model_path} records no style image; pass --style PAINTING")
    if style_size is None and first is not None:
        style_size = first.size
    style_image = load_image_tensor(style, size=style_size)
    loss = instantiate_loss(cfg)
    loss.set_style(style_image)
    weights = (cfg.get("vgg") or {}).get("weights")
    return TrainingLoss(
        loss=loss,
        style_image=str(style),
        style_size=style_size,
        source=source,
        vgg_weights=None if weights is None else str(weights),
    )


class PhotoScorer:
    """Scores images made from one photo: the loss terms, LPIPS and SSIM against the photo (its
    LPIPS features computed once)."""

    def __init__(self, loss: PerceptualLoss, lpips: LPIPS, photo: Tensor) -> None:
        self.loss, self.lpips, self.photo = loss, lpips, photo
        with torch.no_grad():
            self.photo_features = lpips.embed(photo)

    def __call__(
        self, image: Tensor, *, seconds: float | None = None, iterations: int | None = None
    ) -> Score:
        with torch.no_grad():
            terms = self.loss(image, self.photo)
            feats = self.photo_features if image is self.photo else self.lpips.embed(image)
            distance = self.lpips.distance(feats, self.photo_features)
            similarity = ssim(image, self.photo)

        return Score(
            terms={name: float(terms[name]) for name in TERM_NAMES if name in terms},
            total=float(terms["total"]),
            lpips=float(distance[0]),
            ssim=float(similarity[0]),
            seconds=seconds,
            iterations=iterations,
        )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _optimize(
    loss: PerceptualLoss, photo: Tensor, budgets: Sequence[int], progress: bool
) -> dict[int, tuple[Tensor, float, int]]:
    """L-BFGS from the photo; {budget: (image, seconds, iterations run)}."""
    wanted = set(budgets)
    snaps: dict[int, tuple[Tensor, float, int]] = {}
    device = photo.device

    def snapshot(i: int, image: Tensor) -> None:
        if i in wanted:
            _sync(device)
            snaps[i] = (image.clone(), time.perf_counter() - start, i)

    start = time.perf_counter()
    result = optimize_image(
        loss, photo, content=photo, iterations=max(budgets), progress=progress, callback=snapshot
    )
    # L-BFGS may stop early (converged): later budgets report the final image.
    for n in budgets:
        if n not in snaps:
            snaps[n] = (result.image.clamp(0, 1), result.seconds, len(result.history))
    return snaps


def _fit(image: Tensor, box: int) -> Tensor:
    """(3, H, W) scaled to fit a box×box square, centred on white: grid tiles of any aspect."""
    _, h, w = image.shape
    scale = box / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    small = F.interpolate(image[None].float().cpu(), size=size, mode="bilinear", antialias=True)
    canvas = torch.ones(3, box, box)
    top, left = (box - size[0]) // 2, (box - size[1]) // 2
    canvas[:, top : top + size[0], left : left + size[1]] = small[0].clamp(0, 1)
    return canvas


def check_report_paths(
    out_dir: str | os.PathLike[str], content: str | os.PathLike[str], *, overwrite: bool
) -> Path:
    """The report folder, once it is known that writing there loses nothing and that the photos
    exist: before any model is loaded.

    Raises:
        ConfigError: `out_dir` is a file, or `content` does not exist.
        OutputExistsError: A report file exists in `out_dir` and `overwrite` is False.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output folder {out} is a file")
    if not Path(content).exists():
        raise ConfigError(f"content {content}: no such file or folder")
    if not overwrite:
        existing = [out / f for f in OUTPUT_FILES if (out / f).exists()]
        if existing:
            raise OutputExistsError(
                f"{existing[0]} exists; pass --overwrite or choose another output folder"
            )
    return out


def write_report(
    out: Path, report: Any, grid_rows: Sequence[Sequence[Tensor]], skipped: Sequence[Any]
) -> None:
    """Write a report's ``report.json``, ``report.md`` and ``grid.jpg`` (if it has grid rows)
    into `out`, and log how many photos were skipped."""
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "report.json", report.to_json())
    write_text(out / "report.md", report.markdown())
    if grid_rows:
        save_image(make_grid(grid_rows), out / "grid.jpg", overwrite=True)
    if skipped:
        log.warning("%d photo(s) were skipped (unreadable or too small)", len(skipped))


def write_text(path: Path, text: str) -> None:
    """`text` written to `path` atomically (UTF-8), replacing it."""
    data = text.encode()
    atomic_write(path, lambda fh: fh.write(data), overwrite=True)


def _timed_forward(stylizer: Stylizer, photo: Tensor) -> tuple[Tensor, float]:
    _sync(photo.device)
    start = time.perf_counter()
    stylized = stylizer.stylize_batch(photo)
    _sync(photo.device)
    return stylized, time.perf_counter() - start


def evaluate(
    model_path: str | os.PathLike[str],
    content: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    style: str | os.PathLike[str] | None = None,
    style_size: int | None = None,
    size: int | None = DEFAULT_SIZE,
    optimize: Sequence[int] = (),
    device: str | None = None,
    vgg_weights: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    model_style: StyleKey | None = None,
) -> EvaluationReport:
    """Score a model on the photos under `content`; write the report into `out_dir`.

    Args:
        model_path: model.pt, Lightning .ckpt, TorchScript or ONNX file.
        content: A folder of photos (recursive) or one photo.
        out_dir: Output folder (created).
        style: Style image; default the one recorded in model.pt.
        style_size: Long side of the style image for its Gram targets (default: recorded).
        size: Long side the photos are resized to (None: as they are).
        optimize: L-BFGS iteration counts to report for Gatys optimization (empty: skip it).
        device: "cuda", "mps", "cpu" (default: CUDA, else MPS, else CPU).
        overwrite: Replace report files already in `out_dir`.
        progress: tqdm bars.
        model_style: For a multi-style model, which of its styles (name or index; default the
            first) is scored, against that style's recorded painting and size.

    Raises:
        OutputExistsError: A report file exists in `out_dir` and `overwrite` is False.
        ConfigError: `out_dir` is a file, `content` does not exist or holds no photos, or bad
            iteration counts.
    """
    out = check_report_paths(out_dir, content, overwrite=overwrite)
    budgets = sorted({int(n) for n in optimize})
    if any(n < 1 for n in budgets):
        raise ConfigError(f"optimization iteration counts must be positive, got {budgets}")
    photos = find_images(content)
    if not photos:
        raise ConfigError(f"no images found under {content}")

    stylizer = load(model_path, device=device, style=model_style)
    if stylizer.styles:  # the chosen style's own painting and size, as it was trained
        records = read_card(model_path).styles
        index = style_index(stylizer.styles, 0 if model_style is None else model_style)
        if index < len(records) and style is None:
            style = records[index].image
            style_size = style_size or records[index].size
    dev = stylizer.device
    target = training_loss(model_path, style=style, style_size=style_size, vgg_weights=vgg_weights)
    loss = target.loss.to(dev)
    # LPIPS's backbone is always VGG-16: the loss's weight file if the loss's VGG is one too.
    same_arch = getattr(loss.vgg, "arch", None) == "vgg16"
    lpips = LPIPS(weights=target.vgg_weights if same_arch else None).to(dev)
    base = Path(content) if Path(content).is_dir() else Path(content).parent

    rows: list[PhotoResult] = []
    skipped: list[Skipped] = []
    grid_rows: list[list[Tensor]] = []
    for path in tqdm(photos, desc="evaluate", unit="photo", disable=not progress):
        rel = path.relative_to(base).as_posix()
        try:
            photo = load_image_tensor(path, size=size)[None].to(dev)
        except FileReadError as err:
            log.warning("skipping %s: %s", path, err)
            skipped.append(Skipped(rel, str(err)))
            continue
        if min(photo.shape[-2:]) < LPIPS_MIN_SIDE:
            reason = (
                f"{photo.shape[-2]}×{photo.shape[-1]} px at --size {size}: LPIPS needs at "
                f"least {LPIPS_MIN_SIDE} px on each side"
            )
            log.warning("skipping %s: %s", path, reason)
            skipped.append(Skipped(rel, reason))
            continue
        if not rows:  # first-call costs (allocation, kernel selection) are not the model's
            stylizer.stylize_batch(photo)
        stylized, seconds = _timed_forward(stylizer, photo)
        stem = Path(rel).with_suffix("").as_posix().replace("/", "__")
        save_image(stylized[0].cpu(), out / "images" / f"{stem}_model.png", overwrite=True)
        tiles = [photo[0], stylized[0]]
        score = PhotoScorer(loss, lpips, photo)
        optimization: dict[int, Score] = {}
        if budgets:
            for n, (image, secs, ran) in _optimize(loss, photo, budgets, progress).items():
                optimization[n] = score(image, seconds=secs, iterations=ran)
                save_image(image[0].cpu(), out / "images" / f"{stem}_opt{n}.png", overwrite=True)
            tiles.append(image[0])  # the longest run
        rows.append(
            PhotoResult(
                photo=rel,
                size=(photo.shape[-2], photo.shape[-1]),
                input=score(photo),
                model=score(stylized, seconds=seconds),
                optimization=optimization,
            )
        )
        grid_rows.append([_fit(t, size or DEFAULT_SIZE) for t in tiles])

    report = EvaluationReport(
        model=str(model_path),
        style_image=target.style_image,
        style_size=target.style_size,
        loss_source=target.source,
        loss_weights=loss.term_weights,
        content=str(content),
        size=size,
        device=str(dev),
        optimizer="lbfgs" if budgets else None,
        rows=rows,
        skipped=skipped,
        summary=Summary.of(rows, budgets),
    )
    write_report(out, report, grid_rows, skipped)
    return report


def evaluate_styles(
    model_path: str | os.PathLike[str],
    content: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    styles: Sequence[str],
    **kwargs: Any,
) -> Iterator[tuple[str | None, Path, EvaluationReport]]:
    """`evaluate` once per style of a multi-style model, each into ``out_dir/<style>/``; with no
    `styles`, once into `out_dir` (for the ``model_style`` in `kwargs`, if any). Yields (the
    style's name or None, its folder, its report)."""
    if not styles:
        yield None, Path(out_dir), evaluate(model_path, content, out_dir, **kwargs)
        return
    for style in styles:
        out = Path(out_dir) / style
        yield style, out, evaluate(model_path, content, out, model_style=style, **kwargs)
