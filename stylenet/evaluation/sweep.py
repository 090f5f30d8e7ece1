"""A sweep's report: every job of a ``stylenet-train -m`` folder (a grid, or an Optuna search)
side by side, so that a sweep ends in a decision.

`read_sweep` finds the jobs (``<sweep>/<n>/``: their `JobRecord` or Hydra's overrides) and the
swept settings (those whose values differ between jobs); `score_sweep` stylizes the same
held-out photos with every job's model.pt and scores them with each job's loss at weight 1
(`UNIT_WEIGHTS`: a job trained with twice the style weight is not thereby twice as far from the
painting), plus LPIPS and SSIM against the photos; `write_report` writes ``sweep.md``,
``sweep.csv``, ``contact_sheet.jpg`` (the photos stylized by every job, on the sweep's axes) and
``pareto.png`` (style against content or LPIPS, the Pareto front marked); `pick` turns one job's
swept values into an experiment config. It reads what is there: a running or partly failed
sweep gets a report of what it has so far.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from stylenet.errors import ConfigError, FileReadError, OutputExistsError
from stylenet.evaluation.evaluate import (
    UNIT_WEIGHTS,
    PhotoScorer,
    TrainingLoss,
    training_loss,
    write_text,
)
from stylenet.evaluation.jobs import JOB_RECORD, JobRecord, one_line, read_job_record
from stylenet.evaluation.metrics import LPIPS, LPIPS_MIN_SIDE
from stylenet.inference.api import load
from stylenet.inference.model_file import read_card
from stylenet.io.files import atomic_write
from stylenet.io.images import find_images, load_image_tensor, save_image, tensor_to_pil

log = logging.getLogger(__name__)

SCORES = ("style", "content", "tv", "lpips", "ssim")  # a job's held-out numbers, in this order
SCORE_FILE = "sweep_scores.json"  # in each job's folder: its scores, kept while they are valid
SAMPLE_DIR = "sweep_samples"  # in each job's folder: its stylized held-out photos
REPORT_FILES = ("sweep.md", "sweep.csv", "contact_sheet.jpg", "pareto.png")
X_AXES = ("content", "lpips")  # what the Pareto plot's x axis may show
# Hydra's sweep syntax in an override's value: the key is swept even before its jobs differ.
_SWEEP_SYNTAX = re.compile(r"^(range|choice|interval|tag|glob)\(|,")


@dataclass
class SweepJob:
    """One job of a sweep.

    Attributes:
        name: Its folder's name (Hydra's job number).
        folder: Its run folder.
        overrides: {key: value} it was started with (Hydra's override strings).
        status: finished, diverged, failed, stopped, running, or unknown (no record).
        reason: Why it did not finish (one line).
        steps, seconds: Training steps and wall time, when it recorded them.
        scores: {`SCORES` name: mean over the held-out photos}, once scored.
        samples: Its stylized held-out photos, once scored.
    """

    name: str
    folder: Path
    overrides: dict[str, str]
    status: str
    reason: str | None = None
    steps: int | None = None
    seconds: float | None = None
    scores: dict[str, float] = field(default_factory=dict)
    samples: list[Image.Image] = field(default_factory=list)

    @property
    def model(self) -> Path:
        return self.folder / "model.pt"

    def label(self, keys: Sequence[str]) -> str:
        """``#3 style_weight=0.5 tv_weight=10`` for the swept `keys` (their last part)."""
        point = point_label(keys, [self.overrides.get(k, "?") for k in keys])
        return f"#{self.name} {point}" if point else f"#{self.name}"


@dataclass
class Sweep:
    folder: Path
    jobs: list[SweepJob]
    swept: list[str]  # the swept keys, in the order of the overrides
    fixed: dict[str, str]  # the settings every job shares
    grid: bool = True  # a grid over listed values (not a search over ranges)
    listed: dict[str, list[str]] = field(default_factory=dict)  # a grid's values, as declared

    @property
    def axes(self) -> tuple[list[str], list[str]]:
        """(row values, column values) of a one- or two-key grid, sorted (numbers as numbers);
        ([], []) for any other sweep (a search, more keys)."""
        if len(self.swept) not in (1, 2) or not self.grid:
            return [], []
        jobs = [j for j in self.jobs if j.overrides]
        values = [
            _sorted_values({j.overrides[k] for j in jobs} | set(self.listed.get(k, [])))
            for k in self.swept
        ]
        return (values[0], values[1]) if len(values) == 2 else ([""], values[0])


def short_key(key: str, keys: Sequence[str]) -> str:
    """`key`'s last dotted part where that names it among `keys`, else the whole key."""
    last = key.rsplit(".", 1)[-1]
    return last if sum(k.rsplit(".", 1)[-1] == last for k in keys) == 1 else key


def short_value(value: str) -> str:
    """A number with more than 4 significant digits (a search's draw) to 3; the rest as is."""
    number = _number(value)
    return f"{number:.3g}" if number is not None and len(value) > 6 else value


def point_label(keys: Sequence[str], values: Sequence[str]) -> str:
    """``style_weight=0.5 tv_weight=10``: a grid point, its keys shortened among `keys`."""
    return " ".join(
        f"{short_key(k, keys)}={short_value(v)}" for k, v in zip(keys, values, strict=True)
    )


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _sorted_values(values: set[str]) -> list[str]:
    """Numbers in numeric order, then the rest alphabetically."""
    return sorted(values, key=lambda v: (_number(v) is None, _number(v) or 0.0, v))


def _parse_overrides(lines: Sequence[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        key, sep, value = str(line).partition("=")
        if sep and not key.startswith("~"):
            out[key.lstrip("+")] = value
    return out


def _read_overrides(folder: Path) -> tuple[list[str] | None, JobRecord | None, str | None]:
    """(overrides, record, problem) of a job folder: from its job.json, else Hydra's
    ``.hydra/overrides.yaml``; `problem` says why neither could be read."""
    problem: str | None = None
    try:
        record = read_job_record(folder)
    except ValueError as err:
        problem = str(err)
    else:
        if record is not None:
            return record.overrides, record, None
    hydra_overrides = folder / ".hydra" / "overrides.yaml"
    if hydra_overrides.is_file():
        try:
            lines = yaml.safe_load(hydra_overrides.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            return None, None, f"{hydra_overrides}: {err}"
        if isinstance(lines, list):
            return [str(x) for x in lines], None, problem
    return None, None, problem


def _declared_sweep_keys(folder: Path) -> dict[str, str]:
    """{key: its sweep} for the keys Hydra's ``multirun.yaml`` says are swept (sweeper params,
    sweep syntax)."""
    path = folder / "multirun.yaml"
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    hydra = cfg.get("hydra") if isinstance(cfg, dict) else None
    if not isinstance(hydra, dict):
        return {}
    params = (hydra.get("sweeper") or {}).get("params") or {}
    keys = {str(k): str(v) for k, v in params.items()}
    task = ((hydra.get("overrides") or {}).get("task")) or []
    for key, value in _parse_overrides(task).items():
        if _SWEEP_SYNTAX.search(value):
            keys.setdefault(key, value)
    return keys


def read_sweep(folder: str | os.PathLike[str]) -> Sweep:
    """The jobs of the sweep in `folder` (``stylenet-train -m``'s ``hydra.sweep.dir``).

    Raises:
        ConfigError: `folder` is not a sweep (no job folders, no ``multirun.yaml``), a sweep
            with no jobs yet, or its jobs were started with different settings.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder: give the folder of a sweep (stylenet-train -m)")
    jobs: list[SweepJob] = []
    for sub in sorted(
        (p for p in root.iterdir() if p.is_dir()),
        key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name),
    ):
        overrides, record, problem = _read_overrides(sub)
        if overrides is None:
            if problem:  # a job folder whose record is damaged: named, not fatal
                jobs.append(SweepJob(sub.name, sub, {}, "unknown", reason=problem))
            continue
        job = SweepJob(sub.name, sub, _parse_overrides(overrides), "unknown")
        if record is not None:
            job.status, job.reason = record.status, record.reason
            job.steps, job.seconds = record.steps, record.seconds
        elif job.model.is_file():
            job.status = "finished"  # a run from before job records
        jobs.append(job)
    if not jobs:
        if (root / "multirun.yaml").is_file():
            raise ConfigError(f"{root}: a sweep with no jobs yet (no job folder has started)")
        raise ConfigError(
            f"{root} is not a sweep: no job folders (<n>/{JOB_RECORD}) and no multirun.yaml; "
            "give the folder stylenet-train -m wrote (hydra.sweep.dir)"
        )
    readable = [j for j in jobs if j.overrides]
    if readable:
        first = readable[0]
        for job in readable[1:]:
            if set(job.overrides) != set(first.overrides):
                lacks = sorted(set(first.overrides) - set(job.overrides))
                extra = sorted(set(job.overrides) - set(first.overrides))
                diff = "; ".join(
                    part
                    for part in (
                        f"{job.name} lacks {', '.join(lacks)}" if lacks else "",
                        f"{job.name} has {', '.join(extra)}" if extra else "",
                    )
                    if part
                )
                raise ConfigError(
                    f"{root}: jobs {first.name} and {job.name} were started with different "
                    f"settings ({diff}): not one sweep"
                )
    keys = list(first.overrides) if readable else []
    declared = _declared_sweep_keys(root)
    swept = [k for k in keys if len({j.overrides[k] for j in readable}) > 1 or k in declared]
    fixed = {k: first.overrides[k] for k in keys if k not in swept} if readable else {}
    # A grid: its values were listed (multirun.yaml), or every combination ran.
    combinations = math.prod(len({j.overrides[k] for j in readable}) for k in swept)
    grid = all(k in declared and "interval(" not in declared[k] for k in swept)
    # Plain comma lists: every value of the grid, the jobs not yet started too.
    listed = {
        k: [v.strip() for v in declared[k].split(",")]
        for k in swept
        if k in declared and "(" not in declared[k]
    }
    return Sweep(
        root, jobs, swept, fixed, grid=grid or combinations == len(readable), listed=listed
    )


# --- scoring ----------------------------------------------------------------------------------


def job_configs(sweep: Sweep) -> Iterator[dict[str, Any]]:
    """The resolved configs (``config.yaml``) of the sweep's jobs that wrote a readable one."""
    for job in sweep.jobs:
        path = job.folder / "config.yaml"
        try:
            cfg = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if isinstance(cfg, dict):
            yield cfg


def default_photos(sweep: Sweep) -> tuple[Path | None, str]:
    """The held-out photos a sweep's jobs name (``evaluate.content``, else ``data.val_root``),
    and where that came from; (None, why) when they name none."""
    for cfg in job_configs(sweep):
        for source in ("evaluate.content", "data.val_root"):
            node: Any = cfg
            for part in source.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node:
                return Path(str(node)), source
    return None, "no job names evaluate.content or data.val_root"


def _cache_key(job: SweepJob, photos: Sequence[Path], size: int) -> dict[str, Any]:
    stat = job.model.stat()
    return {
        "model": [stat.st_size, stat.st_mtime_ns],
        "photos": [[str(p.resolve()), p.stat().st_mtime_ns] for p in photos],
        "size": size,
    }


def _cached(job: SweepJob, key: dict[str, Any], count: int) -> bool:
    """Load `job`'s scores and samples from its folder if they were made with `key`."""
    try:
        data = json.loads((job.folder / SCORE_FILE).read_text(encoding="utf-8"))
        if data.get("key") != json.loads(json.dumps(key)):
            return False
        samples = []
        for i in range(count):
            with Image.open(job.folder / SAMPLE_DIR / f"{i:02d}.png") as img:
                samples.append(img.convert("RGB"))
    except (OSError, ValueError, AttributeError):
        return False
    job.scores = {k: float(data["scores"][k]) for k in SCORES}
    job.samples = samples
    return True


class _Scoring:
    """What every job is scored with: the photos (loaded once) and LPIPS (built once)."""

    def __init__(self, photos: Sequence[Path], size: int, device: str | None) -> None:
        self.paths = list(photos)
        self.size = size
        self.device = torch.device(device) if device else None
        self.images = [load_image_tensor(p, size=size)[None] for p in self.paths]
        self._lpips: dict[str | None, LPIPS] = {}
        self._losses: dict[str, TrainingLoss] = {}

    def lpips(self, weights: str | None, device: torch.device) -> LPIPS:
        if weights not in self._lpips:
            self._lpips[weights] = LPIPS(weights=weights)
        return self._lpips[weights].to(device)

    def score(self, job: SweepJob) -> None:
        stylizer = load(job.model, device=self.device)
        dev = stylizer.device
        card = read_card(job.model)  # jobs that differ in their weights only share a loss
        key = json.dumps(
            [card.loss, [(s.image, s.size) for s in card.styles]], sort_keys=True, default=str
        )
        if key not in self._losses:
            self._losses[key] = training_loss(job.model, weights=UNIT_WEIGHTS)
        target = self._losses[key]
        loss = target.loss.to(dev)
        same_arch = getattr(loss.vgg, "arch", None) == "vgg16"
        lpips = self.lpips(target.vgg_weights if same_arch else None, dev)
        sums = dict.fromkeys(SCORES, 0.0)
        samples = []
        for photo in self.images:
            photo = photo.to(dev)
            with torch.no_grad():
                out = stylizer.stylize_batch(photo).clamp(0, 1)
            score = PhotoScorer(loss, lpips, photo)(out)
            for name in ("style", "content", "tv"):
                sums[name] += score.terms.get(name, float("nan"))
            sums["lpips"] += score.lpips
            sums["ssim"] += score.ssim
            samples.append(tensor_to_pil(out[0].cpu()))
        job.scores = {k: v / len(self.images) for k, v in sums.items()}
        job.samples = samples


def score_sweep(
    sweep: Sweep,
    photos: Sequence[Path],
    *,
    size: int = 256,
    device: str | None = None,
    progress: bool = True,
) -> list[tuple[SweepJob, str]]:
    """Score every job that has a model.pt on `photos` (long side `size`); a job's scores and
    stylized photos are kept in its folder (`SCORE_FILE`, `SAMPLE_DIR`) and reused while its
    model.pt and the photos are unchanged. Returns the jobs that could not be scored, with why
    (they keep no scores; the report names them).

    Raises:
        ConfigError: A photo too small for LPIPS at `size`.
        FileReadError: A photo cannot be read.
    """
    scoring: _Scoring | None = None
    failures: list[tuple[SweepJob, str]] = []
    todo = [j for j in sweep.jobs if j.model.is_file()]
    for job in tqdm(todo, desc="score jobs", unit="job", disable=not progress):
        key = _cache_key(job, photos, size)
        if _cached(job, key, len(photos)):
            continue
        if scoring is None:
            scoring = _Scoring(photos, size, device)
            small = [
                p
                for p, img in zip(scoring.paths, scoring.images, strict=True)
                if min(img.shape[-2:]) < LPIPS_MIN_SIDE
            ]
            if small:
                raise ConfigError(
                    f"{small[0]} at --size {size} is under {LPIPS_MIN_SIDE} px on a side (LPIPS "
                    "needs more): choose a larger --size"
                )
        try:
            scoring.score(job)
        except Exception as err:  # a damaged or foreign model.pt: named, the rest go on
            reason = one_line(f"{type(err).__name__}: {err}")
            log.warning("cannot score job %s (%s): %s", job.name, job.model, reason)
            failures.append((job, reason))
            job.scores, job.samples = {}, []
            continue
        for i, image in enumerate(job.samples):
            save_image(image, job.folder / SAMPLE_DIR / f"{i:02d}.png", overwrite=True)
        record = {"key": key, "scores": job.scores, "photos": [str(p) for p in photos]}
        write_text(job.folder / SCORE_FILE, json.dumps(record, indent=1))
    return failures


def pick_photos(photos: str | os.PathLike[str], count: int) -> list[Path]:
    """The first `count` photos under `photos` (a folder, or one photo).

    Raises:
        ConfigError: It does not exist or holds no photos.
    """
    try:
        found = find_images(photos)
    except (FileNotFoundError, ValueError, FileReadError) as err:
        raise ConfigError(f"--photos {photos}: {err}") from None
    if not found:
        raise ConfigError(f"--photos {photos}: no photos there")
    return found[:count]


# --- the report ------------------------------------------------------------------------------


def pareto_front(jobs: Sequence[SweepJob], x: str = "content") -> list[SweepJob]:
    """The scored jobs no other scored job beats on both style and `x` (lower is better for
    both), by `x`."""
    scored = [j for j in jobs if j.scores and all(math.isfinite(j.scores[k]) for k in (x, "style"))]
    front = []
    for job in scored:
        a = (job.scores[x], job.scores["style"])
        dominated = any(
            (o.scores[x], o.scores["style"]) != a
            and o.scores[x] <= a[0]
            and o.scores["style"] <= a[1]
            for o in scored
        )
        if not dominated:
            front.append(job)
    return sorted(front, key=lambda j: (j.scores[x], j.scores["style"]))


def _format(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.{digits}g}"


def table_rows(
    sweep: Sweep, x: str = "content", *, short: bool = False
) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the report's table: one row per job (`short`: a search's drawn
    values to 3 significant digits)."""
    front = {j.name for j in pareto_front(sweep.jobs, x)}
    header = ["job", *sweep.swept, "status", *SCORES, "pareto", "steps", "seconds", "reason"]
    rows = []
    for job in sweep.jobs:
        scores = [_format(job.scores.get(k)) for k in SCORES]
        rows.append(
            [
                job.name,
                *(
                    short_value(v) if short else v
                    for v in (job.overrides.get(k, "") for k in sweep.swept)
                ),
                job.status,
                *scores,
                "yes" if job.name in front else "",
                "" if job.steps is None else str(job.steps),
                _format(job.seconds, 4),
                job.reason or "",
            ]
        )
    return header, rows


def _markdown(sweep: Sweep, photos: Sequence[Path], size: int, x: str, note: str) -> str:
    header, rows = table_rows(sweep, x, short=True)
    counts: dict[str, int] = {}
    for job in sweep.jobs:
        counts[job.status] = counts.get(job.status, 0) + 1
    lines = [
        f"# Sweep report: {sweep.folder}",
        "",
        f"{len(sweep.jobs)} job(s): "
        + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        + f". Swept: {', '.join(sweep.swept) or 'nothing'}.",
        "",
        f"Held-out scores: the mean over {len(photos)} photo(s) ({note}) at long side {size}, "
        "each job's loss terms at weight 1 (comparable between jobs; lower is better), LPIPS "
        "to the photo (lower: more of the photo kept) and SSIM with it (higher: more kept). "
        f"`pareto`: no other job has both a lower style loss and a lower {x}.",
        "",
        "| " + " | ".join(h.replace("|", "\\|") for h in header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    if sweep.fixed:
        lines += ["", "Every job: " + " ".join(f"`{k}={v}`" for k, v in sweep.fixed.items())]
    lines += ["", "Photos: " + ", ".join(p.name for p in photos), ""]
    return "\n".join(lines)


def _csv(sweep: Sweep, x: str) -> str:
    header, rows = table_rows(sweep, x)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


@dataclass(frozen=True)
class Cell:
    """One labelled cell of the contact sheet: a job's photos, or the photos themselves."""

    job: str | None  # None: the photos
    box: tuple[int, int, int, int]  # (left, top, right, bottom) of its images
    label: str


_BACKGROUND = (255, 255, 255)
_EMPTY = (225, 225, 225)


def _fit(image: Image.Image, side: int) -> Image.Image:
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def contact_sheet(
    sweep: Sweep, photos: Sequence[Image.Image], *, thumb: int = 160
) -> tuple[Image.Image, list[Cell]]:
    """The photos stylized by every job, one cell per job (its photos side by side, labelled
    with its swept values and scores); a two-key sweep's cells on its axes (rows: the first
    key's values, columns: the second's), a one-key sweep's in one row, any other's in job
    order. The photos themselves head the sheet."""
    font = ImageFont.load_default(size=13)
    gap, pad, line = 6, 12, 17
    n = len(photos)
    cell_w, img_h = n * thumb + (n - 1) * gap, thumb
    label_h = 2 * line + 4
    cell_h = img_h + label_h
    rows_v, cols_v = sweep.axes
    placed: dict[tuple[int, int], SweepJob] = {}
    if rows_v:
        for job in sweep.jobs:
            if not job.overrides:
                continue
            r = rows_v.index(job.overrides[sweep.swept[0]]) if len(sweep.swept) == 2 else 0
            c = cols_v.index(job.overrides[sweep.swept[-1]])
            placed.setdefault((r + 1, c), job)
        n_rows, n_cols = len(rows_v) + 1, max(len(cols_v), 1)
        waiting = [
            (r + 1, c)
            for r in range(len(rows_v))
            for c in range(n_cols)
            if (r + 1, c) not in placed
        ]
    else:
        waiting = []
        n_cols = max(1, min(3, len(sweep.jobs)))
        for i, job in enumerate(sweep.jobs):
            placed[(1 + i // n_cols, i % n_cols)] = job
        n_rows = 1 + math.ceil(len(sweep.jobs) / n_cols)
    width = pad + n_cols * (cell_w + pad)
    height = pad + n_rows * (cell_h + pad)
    sheet = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    cells: list[Cell] = []

    def put(r: int, c: int, images: Sequence[Image.Image] | None, lines: list[str]) -> Cell:
        left, top = pad + c * (cell_w + pad), pad + r * (cell_h + pad)
        box = (left, top, left + cell_w, top + img_h)
        if images is None:
            draw.rectangle(box, fill=_EMPTY)
        else:
            for i, image in enumerate(images):
                small = _fit(image, thumb)
                x0 = left + i * (thumb + gap) + (thumb - small.width) // 2
                sheet.paste(small, (x0, top + (thumb - small.height) // 2))
        for k, text in enumerate(lines[:2]):
            while text and draw.textlength(text, font=font) > cell_w:
                text = text[:-2] + "…"
            draw.text((left, top + img_h + 2 + k * line), text, fill=(0, 0, 0), font=font)
        return Cell(None, box, "\n".join(lines[:2]))

    layout = f"rows x columns: {' x '.join(sweep.swept)}" if rows_v else "the jobs in order"
    first = put(0, 0, list(photos), ["the held-out photos", layout])
    cells.append(first)
    for (r, c), job in sorted(placed.items()):
        if job.samples:
            s = job.scores
            detail = f"style {s['style']:.3g}  content {s['content']:.3g}  LPIPS {s['lpips']:.3g}"
            if job.status != "finished":
                detail = f"{job.status}: {detail}"
        else:
            detail = f"{job.status}: {job.reason}" if job.reason else job.status
        cell = put(r, c, job.samples or None, [job.label(sweep.swept), detail])
        cells.append(Cell(job.name, cell.box, cell.label))
    for r, c in waiting:  # a grid point no job has started yet
        values = [rows_v[r - 1], cols_v[c]] if len(sweep.swept) == 2 else [cols_v[c]]
        put(r, c, None, [point_label(sweep.swept, values), "not started"])
    return sheet, cells


def pareto_plot(sweep: Sweep, path: Path, *, x: str = "content") -> bool:
    """Held-out style loss against `x` for every scored job, the Pareto front marked, written
    to `path` (PNG). False (nothing written) when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("pareto.png needs matplotlib: pip install 'stylenet[sweep]'")
        return False
    scored = [j for j in sweep.jobs if j.scores]
    front = pareto_front(sweep.jobs, x)
    fig, ax = plt.subplots(figsize=(7.0, 5.0), dpi=100)
    others = [j for j in scored if j not in front]
    ax.scatter(
        [j.scores[x] for j in others],
        [j.scores["style"] for j in others],
        c="#888888",
        label="job",
    )
    ax.plot(
        [j.scores[x] for j in front],
        [j.scores["style"] for j in front],
        "o-",
        color="#d62728",
        label="Pareto front",
        drawstyle="steps-post",
    )
    # Each point: "#job (values)", the keys named once in the title; points that nearly
    # coincide get their labels on alternate sides.
    placed: list[tuple[float, float]] = []
    span_x = (max(j.scores[x] for j in scored) - min(j.scores[x] for j in scored)) or 1.0
    span_y = (max(j.scores["style"] for j in scored) - min(j.scores["style"] for j in scored)) or 1
    for job in sorted(scored, key=lambda j: (j.scores[x], j.scores["style"])):
        point = (job.scores[x], job.scores["style"])
        values = ", ".join(short_value(job.overrides.get(k, "?")) for k in sweep.swept)
        text = f"#{job.name} ({values})" if values else f"#{job.name}"
        if job.status != "finished":
            text += f" {job.status}"
        near = sum(
            abs(point[0] - p[0]) < 0.04 * span_x and abs(point[1] - p[1]) < 0.04 * span_y
            for p in placed
        )
        placed.append(point)
        ax.annotate(
            text,
            point,
            textcoords="offset points",
            xytext=(5, 4 - 11 * near),
            fontsize=7,
        )
    keys = ", ".join(short_key(k, sweep.swept) for k in sweep.swept)
    ax.set_xlabel(f"held-out {'LPIPS to the photo' if x == 'lpips' else 'content loss'}")
    ax.set_ylabel("held-out style loss")
    ax.set_title(
        f"{sweep.folder.name}: {len(scored)} scored job(s), lower-left is better\n"
        f"points: #job ({keys})",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    data = buffer.getvalue()
    atomic_write(path, lambda fh: fh.write(data), overwrite=True)
    return True


@dataclass
class Report:
    sweep: Sweep
    photos: list[Path]
    files: dict[str, Path]
    cells: list[Cell]
    unscored: list[tuple[SweepJob, str]]

    def table(self, x: str = "content") -> tuple[list[str], list[list[str]]]:
        return table_rows(self.sweep, x)


def write_report(
    sweep: Sweep,
    photos: Sequence[Path],
    *,
    size: int = 256,
    x: str = "content",
    note: str = "",
    device: str | None = None,
    progress: bool = True,
) -> Report:
    """Score `sweep`'s jobs (`score_sweep`) and write `REPORT_FILES` into its folder (replacing
    an earlier report's)."""
    if x not in X_AXES:
        raise ConfigError(f"x axis must be one of {', '.join(X_AXES)}, got {x!r}")
    unscored = (
        score_sweep(sweep, photos, size=size, device=device, progress=progress) if photos else []
    )
    for job, reason in unscored:
        job.reason = job.reason or f"not scored: {reason}"
    folder = sweep.folder
    files = {}
    md = _markdown(sweep, photos, size, x, note or "held-out")
    for name, text in (("sweep.md", md), ("sweep.csv", _csv(sweep, x))):
        write_text(folder / name, text)
        files[name] = folder / name
    if not photos:  # nothing to stylize: the table is all there is
        log.warning("%s: no held-out photos (%s): no contact sheet or plot", folder, note)
        return Report(sweep, [], files, [], unscored)
    originals = [tensor_to_pil(load_image_tensor(p, size=size)) for p in photos]
    sheet, cells = contact_sheet(sweep, originals)
    # Quality 85: a README-sized file for a 3×3 sheet.
    save_image(sheet, folder / "contact_sheet.jpg", overwrite=True, quality=85)
    files["contact_sheet.jpg"] = folder / "contact_sheet.jpg"
    if pareto_plot(sweep, folder / "pareto.png", x=x):
        files["pareto.png"] = folder / "pareto.png"
    return Report(sweep, list(photos), files, cells, unscored)


# --- pick ------------------------------------------------------------------------------------


def choose_job(
    sweep: Sweep,
    pick: str,
    *,
    max_content: float | None = None,
    max_lpips: float | None = None,
) -> tuple[SweepJob, str]:
    """The job `pick` names: a job number, or ``best``: the lowest held-out style loss among
    the finished, scored jobs within `max_content` / `max_lpips`. Returns it and the rule.

    Raises:
        ConfigError: No such job, it did not finish or has no scores, or none meets the bounds.
    """
    scored = [j for j in sweep.jobs if j.status == "finished" and j.scores]
    if pick != "best":
        job = next((j for j in sweep.jobs if j.name == pick), None)
        if job is None:
            names = ", ".join(j.name for j in sweep.jobs)
            raise ConfigError(f"--pick {pick}: no such job in {sweep.folder} (jobs: {names})")
        if job not in scored:
            why = job.reason or "no held-out scores"
            raise ConfigError(f"--pick {pick}: job {pick} is {job.status} ({why}); pick another")
        return job, f"job {pick}"
    bounds = []
    if max_content is not None:
        bounds.append(("content", max_content))
    if max_lpips is not None:
        bounds.append(("lpips", max_lpips))
    within = [j for j in scored if all(j.scores[k] <= v for k, v in bounds)]
    rule = "lowest held-out style loss" + (
        " with " + " and ".join(f"{k} ≤ {v:g}" for k, v in bounds) if bounds else ""
    )
    if not within:
        best_content = min((j.scores["content"] for j in scored), default=float("nan"))
        raise ConfigError(
            f"--pick best: no finished job has {rule.split(' with ')[-1]} (lowest content "
            f"{best_content:.4g}); loosen the bound"
            if scored
            else "--pick best: no finished job has held-out scores yet"
        )
    return min(within, key=lambda j: j.scores["style"]), rule


def experiment_name(job: SweepJob) -> str:
    """``<style>_tuned``: the job's named style, else its painting's file name."""
    style = job.overrides.get("style")
    if not style:
        image = job.overrides.get("style.image")
        style = Path(image).stem if image else "style"
    return re.sub(r"[^A-Za-z0-9_]+", "_", style).strip("_") + "_tuned"


def _yaml_value(value: str) -> Any:
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def experiment_config(sweep: Sweep, job: SweepJob, rule: str) -> str:
    """An experiment config (``# @package _global_``) holding `job`'s swept values, its style
    and its loss preset, for ``stylenet-train experiment=<name>``."""
    nested: dict[str, Any] = {}
    for key in sweep.swept:
        node = nested
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = _yaml_value(job.overrides[key])
    s = job.scores
    lines = [
        "# @package _global_",
        f"# Picked by stylenet-sweep-report from {sweep.folder.resolve()} ({rule}):",
        f"#   {job.label(sweep.swept)}: held-out style {s['style']:.4g}, content "
        f"{s['content']:.4g}, LPIPS {s['lpips']:.3g}, SSIM {s['ssim']:.3g}"
        + (f" after {job.steps} steps" if job.steps else ""),
        "# It holds the swept values and the style only: give data.root and the budget",
        "# (trainer.max_steps, data.image_size) of the real run.",
    ]
    # The groups that give the weights their meaning: the painting, and the loss preset.
    groups = [(g, job.overrides[g]) for g in ("style", "loss") if job.overrides.get(g)]
    if groups:
        lines += ["defaults:", *(f"  - override /{g}: {v}" for g, v in groups)]
    if not job.overrides.get("style") and job.overrides.get("style.image"):
        nested.setdefault("style", {})["image"] = job.overrides["style.image"]
    body = yaml.safe_dump(nested, sort_keys=False, default_flow_style=False)
    return "\n".join(lines) + "\n" + body


def write_experiment(
    sweep: Sweep, job: SweepJob, rule: str, configs: Path, *, overwrite: bool = False
) -> Path:
    """Write `experiment_config` to ``configs/experiment/<style>_tuned.yaml``.

    Raises:
        OutputExistsError: It exists and `overwrite` is False.
    """
    path = configs / "experiment" / f"{experiment_name(job)}.yaml"
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; pass --overwrite to replace it")
    write_text(path, experiment_config(sweep, job, rule))
    return path
