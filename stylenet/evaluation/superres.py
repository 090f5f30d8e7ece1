"""How much a super-resolution model adds over bicubic upsampling, scored as SR papers score it.

Each held-out photo is resized to a long side of `size` and centre-cropped so that both sides are
multiples of the scale (at most scale − 1 px dropped per axis): that is the high-resolution
photo. Its low-resolution input is made by the degradation the model was trained on
(`stylenet.models.degradation.degrade`; Johnson et al. 2016, Sec. 4.2: Gaussian blur σ = 1,
bicubic down) and upscaled by bicubic interpolation, by
the model, and by each model given to compare (e.g. the pixel-loss baseline). Each output is
scored against the high-resolution photo:

- PSNR and SSIM on the Y channel (BT.601 luma) with `scale` px cropped from each side, as SR
  papers and BasicSR report them (`stylenet.evaluation.metrics.sr_psnr_ssim`);
- LPIPS (VGG, v0.1) on RGB, the whole image.

LPIPS-VGG shares its VGG-16 backbone with the perceptual training loss (relu2_2, the loss's
layer, is one of LPIPS's five), so LPIPS favours the model trained with that loss, just as PSNR
favours the one trained with the pixel loss. The report says so.

The bicubic baseline is PyTorch's (a = −0.75, half-pixel centres), clamped to [0, 1]: the
network's own skip path (`SuperResolutionNet.forward`), so a model's gain over it is exactly what
its trained layers add. Outputs are rounded to 8 bits before they are scored: the numbers are
those of the PNGs in ``images/``, as SR benchmarks score saved images. The low-resolution input
is not rounded (as in training).

`evaluate_superres` writes into its output folder: ``report.json`` (everything), ``report.md``
(the tables), ``grid.jpg`` (per photo: low-res input, nearest | bicubic | model | each model
compared | high-res photo, then the centre of each, zoomed) and ``images/`` (every image, 8-bit
PNG: ``<photo>_lr``, ``_bicubic``, ``_model``, ``_compare1`` ..., ``_hr``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from stylenet.errors import ConfigError, FileReadError
from stylenet.evaluation.evaluate import DEFAULT_SIZE, check_report_paths, write_report
from stylenet.evaluation.metrics import LPIPS, LPIPS_MIN_SIDE, sr_psnr_ssim
from stylenet.evaluation.report import (
    SR_BASELINE,
    Skipped,
    SuperResolutionMethod,
    SuperResolutionPhoto,
    SuperResolutionReport,
    SuperResolutionScore,
    SuperResolutionSummary,
)
from stylenet.inference import color
from stylenet.inference.backends import resolve_device
from stylenet.inference.model_card import ModelCard
from stylenet.inference.model_file import load_network, read_card
from stylenet.io.images import find_images, load_image_tensor, save_image
from stylenet.models import SuperResolutionNet
from stylenet.models.degradation import degrade as paper_degradation

__all__ = ["Degradation", "check_superres_models", "evaluate_superres"]

log = logging.getLogger(__name__)

# (B, 3, H, W) high-res in [0, 1], scale -> (B, 3, H / scale, W / scale) low-res input
Degradation = Callable[[Tensor, int], Tensor]

BICUBIC_DESCRIPTION = (
    "bicubic upsampling of the low-res input (PyTorch, a = −0.75, half-pixel centres, clamped "
    "to [0, 1]: the network's own skip path)"
)
_TASK_NAMES = {"style": "style-transfer", "superres": "super-resolution"}


def check_superres_models(
    model_path: str | os.PathLike[str], compare: Sequence[str | os.PathLike[str]] = ()
) -> int:
    """The scale of a super-resolution model and of the models to compare with it, from their
    cards (cheap: no network is built).

    Raises:
        ConfigError: A model is not a super-resolution model, or a model to compare upsamples by
            another factor.
        ModelFileError: A file is not a model stylenet reads.
    """
    card = read_card(model_path)
    if card.task != "superres":
        raise ConfigError(
            f"{model_path} is a {_TASK_NAMES.get(card.task, card.task)} model, not a "
            "super-resolution one"
        )
    for other in compare:
        theirs = read_card(other)
        if theirs.task != "superres":
            raise ConfigError(
                f"--compare {other} is a {_TASK_NAMES.get(theirs.task, theirs.task)} model; "
                f"--compare takes super-resolution models (×{card.scale}, as {model_path})"
            )
        if theirs.scale != card.scale:
            raise ConfigError(
                f"--compare {other} upsamples ×{theirs.scale}, {model_path} ×{card.scale}: "
                "compare models of one scale"
            )
    return card.scale


def _describe(path: str | os.PathLike[str], card: ModelCard, net: SuperResolutionNet) -> str:
    """A model in words: file, network, training steps, loss weights (the card's)."""
    cfg = net.config
    parts = [
        f"{path}: {card.network} ×{net.scale} ({cfg.channels} channels, "
        f"{cfg.num_residual_blocks} residual block(s))"
    ]
    if card.training.global_step is not None:
        parts.append(f"{card.training.global_step} training steps")
    weights = {
        key.removesuffix("_weight"): value
        for key, value in card.loss.items()
        if key.endswith("_weight") and isinstance(value, int | float) and value
    }
    if weights:
        parts.append("loss " + ", ".join(f"{k} {v:g}" for k, v in weights.items()))
    return "; ".join(parts)


def _lpips_weights(cards: Sequence[ModelCard]) -> str | None:
    """The VGG-16 weight file a model's perceptual loss was configured with, if any: LPIPS's
    backbone is that network (None: the usual lookup)."""
    for card in cards:
        vgg = card.loss.get("vgg")
        if not isinstance(vgg, Mapping) or vgg.get("weights") is None:
            continue  # the pixel loss has no VGG
        if str(vgg.get("_target_", "")).endswith("VGG16Features") or vgg.get("arch") == "vgg16":
            return str(vgg["weights"])
    return None


def _centre_crop(image: Tensor, multiple: int) -> Tensor:
    """(3, H, W) centre-cropped to (3, H - H mod m, W - W mod m)."""
    h, w = image.shape[-2:]
    ch, cw = h - h % multiple, w - w % multiple
    top, left = (h - ch) // 2, (w - cw) // 2
    return image[..., top : top + ch, left : left + cw]


def _bicubic(lr: Tensor, scale: int) -> Tensor:
    # As SuperResolutionNet.forward's skip path, then clamped as its output is.
    up = F.interpolate(lr, scale_factor=float(scale), mode="bicubic", align_corners=False)
    return up.clamp(0.0, 1.0)


def _as_saved(images: Tensor) -> Tensor:
    """Rounded to 8 bits, as `save_image` writes them (`stylenet.io.images.float_to_uint8`)."""
    return (images.clamp(0.0, 1.0) * 255.0).round() / 255.0


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(upscale: Callable[[Tensor], Tensor], lr: Tensor) -> tuple[Tensor, float]:
    _synchronize(lr.device)
    start = time.perf_counter()
    out = upscale(lr)
    _synchronize(lr.device)
    return out, time.perf_counter() - start


def _tile(image: Tensor, box: int) -> Tensor:
    """(3, H, W) on a white box×box tile, centred: enlarged by a whole factor (nearest: the
    pixels as they are) where it fits, else shrunk (antialiased)."""
    image = image.detach().float().cpu()
    _, h, w = image.shape
    if max(h, w) <= box:
        factor = box // max(h, w)
        if factor > 1:
            image = F.interpolate(image[None], scale_factor=factor, mode="nearest")[0]
    else:
        shrink = box / max(h, w)
        size = (max(1, round(h * shrink)), max(1, round(w * shrink)))
        image = F.interpolate(image[None], size=size, mode="bilinear", antialias=True)[0]
    _, h, w = image.shape
    canvas = torch.ones(3, box, box)
    top, left = (box - h) // 2, (box - w) // 2
    canvas[:, top : top + h, left : left + w] = image.clamp(0, 1)
    return canvas


def _name(function: Callable[..., object]) -> str:
    """``module.qualname`` of a function (its repr for other callables)."""
    qualname = getattr(function, "__qualname__", None)
    return f"{function.__module__}.{qualname}" if qualname else repr(function)


HISTOGRAM_MATCHED = (
    "; output histogram-matched to the low-res input (the paper's post-processing, Sec. 4.2)"
)


def _upscaler(net: SuperResolutionNet, match: bool) -> Callable[[Tensor], Tensor]:
    """`net`, followed by the paper's histogram matching of its output to its input if `match`."""
    if not match:
        return net
    return lambda lr: color.match_histograms(net(lr), lr)


def evaluate_superres(
    model_path: str | os.PathLike[str],
    content: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    degrade: Degradation = paper_degradation,
    compare: Sequence[str | os.PathLike[str]] = (),
    size: int | None = DEFAULT_SIZE,
    device: str | None = None,
    vgg_weights: str | None = None,
    match_histograms: bool = True,
    overwrite: bool = False,
    progress: bool = True,
) -> SuperResolutionReport:
    """Score a super-resolution model against bicubic upsampling (and other models) on the
    photos under `content`; write the report into `out_dir` (module docstring).

    PSNR and SSIM are on the Y channel with `scale` px cropped from each side; LPIPS (VGG) is
    against the high-res photo. LPIPS-VGG shares its VGG-16 backbone with the perceptual
    training loss, so it favours the model trained with that loss (as PSNR favours one trained
    with the pixel loss).

    Args:
        model_path: A super-resolution model.pt or Lightning .ckpt.
        content: A folder of photos (recursive) or one photo.
        out_dir: Output folder (created).
        degrade: Makes the low-res input of a high-res batch (default: the paper's, as in
            training).
        compare: Other super-resolution models of the same scale, reported as ``compare1``,
            ``compare2``, ... (e.g. the pixel-loss model).
        size: Long side the photos are resized to before the crop (None: as they are).
        device: "cuda", "mps", "cpu" (default: CUDA, else MPS, else CPU).
        vgg_weights: LPIPS's VGG-16 weight file (default: the one the models' perceptual loss
            was configured with, else the loss network's lookup).
        match_histograms: Match each model output's histogram to its low-res input, the
            paper's post-processing (Johnson et al. 2016, Sec. 4.2), as `stylenet.load` does
            for SR models; bicubic is not matched (it shifts no colours).
        overwrite: Replace report files already in `out_dir`.
        progress: A tqdm bar over the photos.

    Raises:
        OutputExistsError: A report file exists in `out_dir` and `overwrite` is False.
        ConfigError: `out_dir` is a file, `content` does not exist or holds no photos, a model
            is not a super-resolution model, or the models' scales differ.
        ModelFileError: A model file cannot be read (exports are refused: they need the
            model.pt or .ckpt they came from).
    """
    out = check_report_paths(out_dir, content, overwrite=overwrite)
    scale = check_superres_models(model_path, compare)
    photos = find_images(content)
    if not photos:
        raise ConfigError(f"no images found under {content}")

    dev = resolve_device(device)
    methods = [SuperResolutionMethod(SR_BASELINE, "", BICUBIC_DESCRIPTION)]
    upscalers: dict[str, Callable[[Tensor], Tensor]] = {SR_BASELINE: lambda x: _bicubic(x, scale)}
    cards: list[ModelCard] = []
    named = [("model", model_path), *((f"compare{i}", p) for i, p in enumerate(compare, 1))]
    for name, path in named:
        net, card = load_network(path)
        if not isinstance(net, SuperResolutionNet):  # a card that says superres over a style net
            raise ConfigError(f"{path} holds a {type(net).__name__}, not a SuperResolutionNet")
        description = _describe(path, card, net)
        if match_histograms:
            description += HISTOGRAM_MATCHED
        methods.append(SuperResolutionMethod(name, str(path), description))
        upscalers[name] = _upscaler(net.to(dev).eval(), match_histograms)
        cards.append(card)
    lpips = LPIPS(weights=vgg_weights or _lpips_weights(cards)).to(dev)
    # The high-res side LPIPS needs (relu5_3), and the network's input side times the scale.
    need = max(LPIPS_MIN_SIDE, scale * SuperResolutionNet.min_side)
    base = Path(content) if Path(content).is_dir() else Path(content).parent
    box = size or DEFAULT_SIZE

    rows: list[SuperResolutionPhoto] = []
    skipped: list[Skipped] = []
    grid_rows: list[list[Tensor]] = []
    for path in tqdm(photos, desc="evaluate", unit="photo", disable=not progress):
        rel = path.relative_to(base).as_posix()
        try:
            photo = load_image_tensor(path, size=size)
        except FileReadError as err:
            log.warning("skipping %s: %s", path, err)
            skipped.append(Skipped(rel, str(err)))
            continue
        hr = _centre_crop(photo, scale)[None].to(dev)  # (1, 3, H, W), H and W multiples of scale
        if min(hr.shape[-2:]) < need:
            at = f"at --size {size}" if size else "as it is"
            reason = (
                f"{photo.shape[-2]}×{photo.shape[-1]} px {at}: ×{scale} super-resolution is "
                f"scored on at least {need} px on each side"
            )
            log.warning("skipping %s: %s", path, reason)
            skipped.append(Skipped(rel, reason))
            continue
        outputs: dict[str, Tensor] = {}
        seconds: dict[str, float] = {}
        with torch.no_grad():
            lr = degrade(hr, scale)
            for name, upscale in upscalers.items():
                if not rows:  # first-call costs (allocation, kernel selection) are not the model's
                    upscale(lr)
                image, seconds[name] = _timed(upscale, lr)
                outputs[name] = _as_saved(image)
            batch = torch.cat(list(outputs.values()))  # (M, 3, H, W), one image per method
            sr = sr_psnr_ssim(batch, hr.expand_as(batch), scale=scale)
            distance = lpips.distance(lpips.embed(batch), lpips.embed(hr))  # (M,)
        scores = {
            name: SuperResolutionScore(
                psnr=float(sr.psnr[i]),
                ssim=float(sr.ssim[i]),
                lpips=float(distance[i]),
                seconds=seconds[name],
            )
            for i, name in enumerate(outputs)
        }
        rows.append(
            SuperResolutionPhoto(
                photo=rel,
                loaded=(photo.shape[-2], photo.shape[-1]),
                size=(hr.shape[-2], hr.shape[-1]),
                scores=scores,
            )
        )
        stem = Path(rel).with_suffix("").as_posix().replace("/", "__")
        shown = {"lr": lr[0], **{k: v[0] for k, v in outputs.items()}, "hr": hr[0]}
        for name, image in shown.items():
            save_image(image.cpu(), out / "images" / f"{stem}_{name}.png", overwrite=True)
        # The grid shows the low-res input at the output's size, pixels as they are.
        shown["lr"] = F.interpolate(lr, scale_factor=float(scale), mode="nearest")[0]
        h, w = hr.shape[-2:]
        side = max(1, min(h, w) // 4)
        top, left = (h - side) // 2, (w - side) // 2
        grid_rows.append([_tile(t, box) for t in shown.values()])
        grid_rows.append(
            [_tile(t[:, top : top + side, left : left + side], box) for t in shown.values()]
        )

    report = SuperResolutionReport(
        model=str(model_path),
        scale=scale,
        content=str(content),
        size=size,
        device=str(dev),
        degradation=f"{_name(degrade)} (1/{scale} of each side)",
        methods=methods,
        rows=rows,
        skipped=skipped,
        summary=SuperResolutionSummary.of(rows, [m.name for m in methods]),
    )
    write_report(out, report, grid_rows, skipped)
    return report
