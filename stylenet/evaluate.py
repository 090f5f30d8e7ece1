"""`stylenet-evaluate`: how close does a trained model come to the optimum of its own loss?

For each photo the model's output is scored with the loss it was trained with (content, style and
TV terms, weighted as in training), next to the photo itself (the starting point) and, if asked,
Gatys-style optimization of the image against the same loss after N L-BFGS iterations (from the
photo, as `stylenet-optimize style` does). Wall time is recorded for both, so the report says
what the single forward pass gives up in loss and gains in time.

    stylenet-evaluate model.pt --content photos/ -o eval/
    stylenet-evaluate model.pt --content photos/ --style art.jpg -o eval/ --optimize 100,300,500

Writes into the output folder: ``report.json`` (everything), ``report.md`` (a Markdown table),
``grid.jpg`` (photo | model | optimization, one row per photo) and ``images/`` (each output).
The loss comes from the model file's metadata (``model.pt`` written by ``stylenet-train``
records its loss config and style image); other formats use the default training loss and need
``--style``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from stylenet.fileio import atomic_write
from stylenet.images import ImageReadError, find_images, load_image_tensor, make_grid, save_image
from stylenet.losses import PerceptualLoss

log = logging.getLogger(__name__)

DEFAULT_SIZE = 256
DEFAULT_OPTIMIZE = (100, 300, 500)  # L-BFGS iterations reported by --optimize without a value
TERMS = ("content", "style", "tv", "total")
OUTPUT_FILES = ("report.json", "report.md", "grid.jpg")


@dataclass
class TrainingLoss:
    """The loss a model was trained with, its style targets set."""

    loss: PerceptualLoss
    style_image: str
    style_size: int | None
    source: str  # where the loss settings came from


def _default_loss_config() -> dict[str, Any]:
    from importlib.resources import files

    from omegaconf import OmegaConf

    text = files("stylenet.configs").joinpath("loss/johnson.yaml").read_text()
    return OmegaConf.to_container(OmegaConf.create(text), resolve=True)


def training_loss(
    model_path: str | Path,
    *,
    style: str | Path | None = None,
    style_size: int | None = None,
    vgg_weights: str | None = None,
) -> TrainingLoss:
    """Rebuild the training loss of `model_path`.

    A ``model.pt`` from ``stylenet-train`` records its loss config, style image and style size;
    explicit `style` / `style_size` override them. Other model formats get the default training
    loss (configs/loss/johnson.yaml).

    Raises:
        ValueError: No style image given and none recorded in the model file.
        FileNotFoundError: The style image does not exist.
    """
    from hydra.utils import instantiate

    from stylenet.model_file import ModelFileError, read_model_file

    metadata: dict[str, Any] = {}
    with contextlib.suppress(ModelFileError):  # .ckpt / TorchScript / ONNX: no recorded loss
        metadata = read_model_file(model_path).get("metadata", {})
    cfg = metadata.get("loss")
    source = (
        f"{model_path} metadata" if cfg else "default training loss (configs/loss/johnson.yaml)"
    )
    cfg = dict(cfg or _default_loss_config())
    if vgg_weights is not None:
        cfg["vgg"] = {**cfg.get("vgg", {}), "weights": vgg_weights}
    style = style or metadata.get("style_image")
    if style is None:
        raise ValueError(f"{model_path} records no style image; pass --style PAINTING")
    if not Path(style).is_file():
        raise FileNotFoundError(f"style image not found: {style}")
    if style_size is None:
        style_size = metadata.get("style_size")
    loss: PerceptualLoss = instantiate(cfg)
    loss.set_style(load_image_tensor(style, size=style_size))
    return TrainingLoss(loss=loss, style_image=str(style), style_size=style_size, source=source)


def _terms(loss: PerceptualLoss, image: Tensor, photo: Tensor) -> dict[str, float]:
    with torch.no_grad():
        terms = loss(image, photo)
    return {k: float(terms[k]) if k in terms else 0.0 for k in TERMS}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _optimize(
    loss: PerceptualLoss, photo: Tensor, checkpoints: Sequence[int], progress: bool
) -> dict[int, tuple[Tensor, float, int]]:
    """L-BFGS from the photo; {checkpoint: (image, seconds, iterations run)}."""
    from stylenet.optimize import optimize_image

    wanted = set(checkpoints)
    snaps: dict[int, tuple[Tensor, float, int]] = {}
    device = photo.device

    def snapshot(i: int, image: Tensor) -> None:
        if i in wanted:
            _sync(device)
            snaps[i] = (image.clone(), time.perf_counter() - start, i)

    start = time.perf_counter()
    result = optimize_image(
        loss,
        photo,
        content=photo,
        iterations=max(checkpoints),
        progress=progress,
        callback=snapshot,
    )
    # L-BFGS may stop early (converged): later checkpoints report the final image.
    for n in checkpoints:
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


def evaluate(
    model_path: str | Path,
    content: str | Path,
    out_dir: str | Path,
    *,
    style: str | Path | None = None,
    style_size: int | None = None,
    size: int | None = DEFAULT_SIZE,
    optimize: Sequence[int] = (),
    device: str | None = None,
    vgg_weights: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
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

    Returns:
        The report (also written as report.json).

    Raises:
        FileExistsError: A report file exists in `out_dir` and `overwrite` is False.
    """
    import stylenet

    out_dir = Path(out_dir)
    if not overwrite:
        existing = [out_dir / f for f in OUTPUT_FILES if (out_dir / f).exists()]
        if existing:
            raise FileExistsError(
                f"{existing[0]} exists; pass --overwrite or choose another output folder"
            )
    checkpoints = sorted({int(n) for n in optimize})
    if any(n < 1 for n in checkpoints):
        raise ValueError(f"optimization iteration counts must be positive, got {checkpoints}")
    photos = find_images(content)
    if not photos:
        raise ValueError(f"no images found under {content}")

    stylizer = stylenet.load(model_path, device=device)
    dev = stylizer.device
    target = training_loss(model_path, style=style, style_size=style_size, vgg_weights=vgg_weights)
    loss = target.loss.to(dev)
    base = Path(content) if Path(content).is_dir() else Path(content).parent

    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    grid_rows: list[list[Tensor]] = []
    warmed_up = False
    for path in tqdm(photos, desc="evaluate", unit="photo", disable=not progress):
        rel = path.relative_to(base).as_posix()
        try:
            photo = load_image_tensor(path, size=size)[None].to(dev)
        except (ImageReadError, ValueError) as err:
            log.warning("skipping %s: %s", path, err)
            skipped.append({"photo": rel, "error": str(err)})
            continue
        if not warmed_up:  # first-call costs (allocation, kernel selection) are not the model's
            stylizer.stylize_tensor(photo)
            warmed_up = True
        _sync(dev)
        start = time.perf_counter()
        stylized = stylizer.stylize_tensor(photo)
        _sync(dev)
        model_seconds = time.perf_counter() - start
        stem = Path(rel).with_suffix("").as_posix().replace("/", "__")
        save_image(stylized[0].cpu(), out_dir / "images" / f"{stem}_model.png", overwrite=True)
        row: dict[str, Any] = {
            "photo": rel,
            "size": list(photo.shape[-2:]),
            "input": _terms(loss, photo, photo),
            "model": {**_terms(loss, stylized, photo), "seconds": model_seconds},
        }
        tiles = [photo[0], stylized[0]]
        if checkpoints:
            row["optimization"] = {}
            for n, (image, seconds, ran) in _optimize(
                loss, photo, checkpoints, progress=progress
            ).items():
                row["optimization"][str(n)] = {
                    **_terms(loss, image, photo),
                    "seconds": seconds,
                    "iterations": ran,
                }
                save_image(
                    image[0].cpu(), out_dir / "images" / f"{stem}_opt{n}.png", overwrite=True
                )
            tiles.append(image[0])  # the longest run
        rows.append(row)
        grid_rows.append([_fit(t, size or 256) for t in tiles])

    report = {
        "model": str(model_path),
        "style_image": target.style_image,
        "style_size": target.style_size,
        "loss_source": target.source,
        "loss_weights": {
            "content": loss.content_weight,
            "style": loss.style_weight,
            "tv": loss.tv_weight,
        },
        "content": str(content),
        "size": size,
        "device": str(dev),
        "optimizer": "lbfgs" if checkpoints else None,
        "rows": rows,
        "skipped": skipped,
        "summary": summarize(rows, checkpoints),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2) + "\n"
    atomic_write(out_dir / "report.json", lambda fh: fh.write(text.encode()), overwrite=True)
    md = markdown_table(report)
    atomic_write(out_dir / "report.md", lambda fh: fh.write(md.encode()), overwrite=True)
    if grid_rows:
        save_image(make_grid(grid_rows), out_dir / "grid.jpg", overwrite=True)
    if skipped:
        log.warning("%d photo(s) could not be read and were skipped", len(skipped))
    return report


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def summarize(rows: list[dict[str, Any]], checkpoints: Sequence[int]) -> dict[str, Any]:
    """Means over photos; for each optimization budget, loss and time relative to the model."""
    summary: dict[str, Any] = {
        "photos": len(rows),
        "input_total": _mean([r["input"]["total"] for r in rows]),
        "model_total": _mean([r["model"]["total"] for r in rows]),
        "model_seconds": _mean([r["model"]["seconds"] for r in rows]),
    }
    for n in checkpoints:
        opt = [r["optimization"][str(n)] for r in rows]
        total = _mean([o["total"] for o in opt])
        seconds = _mean([o["seconds"] for o in opt])
        summary[f"optimization_{n}"] = {
            "total": total,
            "seconds": seconds,
            # > 1: the model's loss is that many times the optimization's
            "model_loss_ratio": summary["model_total"] / total if total else math.inf,
            # > 1: optimization takes that many times longer than a forward pass
            "time_ratio": seconds / summary["model_seconds"] if summary["model_seconds"] else 0,
        }
    return summary


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def markdown_table(report: dict[str, Any]) -> str:
    """The report as Markdown: one row per photo and method, then the summary."""
    lines = [
        f"# stylenet-evaluate: {report['model']}",
        "",
        f"Style: {report['style_image']}; photos: {report['content']} at long side "
        f"{report['size']}; loss: {report['loss_source']} (weights {report['loss_weights']}); "
        f"device: {report['device']}.",
        "",
        "| photo | method | content | style | tv | total | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        methods = [("photo (start)", row["input"]), ("model", row["model"])]
        for n, terms in row.get("optimization", {}).items():
            methods.append((f"L-BFGS {n}", terms))
        for name, t in methods:
            secs = _fmt(t["seconds"]) if "seconds" in t else ""
            cells = [_fmt(t[k]) for k in TERMS]
            lines.append(f"| {row['photo']} | {name} | " + " | ".join(cells) + f" | {secs} |")
    s = report["summary"]
    lines += [
        "",
        f"Mean total loss over {s['photos']} photo(s): photo {_fmt(s['input_total'])}, "
        f"model {_fmt(s['model_total'])} in {_fmt(s['model_seconds'])} s.",
    ]
    opt = [(k.removeprefix("optimization_"), v) for k, v in s.items() if k.startswith("opt")]
    if opt:
        lines += [
            "",
            "| L-BFGS iterations | mean total | model / optimization loss | time vs model |",
            "|---|---|---|---|",
        ]
        for n, v in opt:
            lines.append(
                f"| {n} | {_fmt(v['total'])} | {v['model_loss_ratio']:.2f}× | "
                f"{v['time_ratio']:.0f}× |"
            )
    if report["skipped"]:
        lines += ["", f"Skipped (unreadable): {', '.join(x['photo'] for x in report['skipped'])}"]
    return "\n".join(lines) + "\n"


def _flat_summary(summary: dict[str, Any]) -> dict[str, float]:
    flat: dict[str, float] = {}
    for key, value in summary.items():
        if isinstance(value, dict):
            flat.update({f"eval/{key}/{k}": float(v) for k, v in value.items()})
        else:
            flat[f"eval/{key}"] = float(value)
    return flat


def log_report(
    report: dict[str, Any], out_dir: str | Path, loggers: Sequence[Any], *, step: int = 0
) -> None:
    """Hand a report to Lightning loggers: W&B gets a table (one row per photo and method), the
    grid image and the summary in the run summary; other loggers get the summary numbers."""
    flat = _flat_summary(report["summary"])
    grid = Path(out_dir) / "grid.jpg"
    for logger in loggers:
        experiment = getattr(logger, "experiment", None)
        if type(logger).__name__ == "WandbLogger":
            import wandb

            columns = ["photo", "method", *TERMS, "seconds"]
            data = []
            for row in report["rows"]:
                methods = [("photo", row["input"]), ("model", row["model"])]
                methods += [(f"lbfgs_{n}", t) for n, t in row.get("optimization", {}).items()]
                for name, t in methods:
                    data.append([row["photo"], name, *(t[k] for k in TERMS), t.get("seconds")])
            payload: dict[str, Any] = {"eval/report": wandb.Table(columns=columns, data=data)}
            if grid.is_file():
                payload["eval/grid"] = wandb.Image(str(grid), caption="photo | model | L-BFGS")
            experiment.log(payload)
            experiment.summary.update(flat)
        else:
            logger.log_metrics(flat, step=step)


def _iterations(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive iteration counts, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="stylenet-evaluate",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit status: 0 report written, 1 some photos unreadable, 2 bad model/arguments",
    )
    p.add_argument("model", type=Path, help="model.pt, .ckpt, TorchScript or ONNX file")
    p.add_argument("--content", type=Path, required=True, help="photo folder (or one photo)")
    p.add_argument("--style", type=Path, help="style image (default: recorded in model.pt)")
    p.add_argument(
        "--style-size", type=int, help="long side of the style image (default: recorded)"
    )
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--size", type=int, default=DEFAULT_SIZE, help="long side of the photos (px)")
    p.add_argument(
        "--optimize",
        type=_iterations,
        nargs="?",
        const=list(DEFAULT_OPTIMIZE),
        default=[],
        metavar="N,N,...",
        help="also run Gatys L-BFGS optimization and report it after these iteration counts "
        "(default when given without a value: 100,300,500)",
    )
    p.add_argument("--device", help="cuda, mps, cpu (default: CUDA, else MPS, else CPU)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report")
    args = p.parse_args(argv)
    try:
        report = evaluate(
            args.model,
            args.content,
            args.output,
            style=args.style,
            style_size=args.style_size,
            size=args.size,
            optimize=args.optimize,
            device=args.device,
            overwrite=args.overwrite,
        )
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"stylenet-evaluate: {err}", file=sys.stderr)
        return 2
    print(markdown_table(report))
    print(f"wrote {args.output / 'report.json'}, report.md, grid.jpg")
    return 1 if report["skipped"] else 0


if __name__ == "__main__":
    sys.exit(main())
