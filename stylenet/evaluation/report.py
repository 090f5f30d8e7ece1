"""What `stylenet.evaluation.evaluate` measured, as data (`EvaluationReport`: a row per photo,
a score per method, the means) and as the files it writes (``report.json``, ``report.md``); the
same for a super-resolution model (`SuperResolutionReport`, measured by
`stylenet.evaluation.superres`). Scoring lives in those modules; this one only holds and renders
the numbers. Both reports are a `LoggableReport`: what the training loggers read."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from stylenet.losses import TERM_NAMES

METRICS = ("lpips", "ssim")  # a `Score`'s content metrics against the photo


@dataclass(frozen=True)
class Score:
    """The weighted loss terms of one image against its photo, how much of the photo it kept, and
    what producing it cost.

    Attributes:
        terms: {term name: weighted value} for the terms of the loss's dict (`TERM_NAMES`).
        total: The sum of the terms.
        lpips: LPIPS (VGG, v0.1) to the photo: 0 for the photo itself, higher is further.
        ssim: SSIM with the photo: 1 for the photo itself, lower is further.
        seconds: Wall time to produce the image (None for the photo itself).
        iterations: L-BFGS iterations run (optimization only; fewer than asked if it converged).
    """

    terms: dict[str, float]
    total: float
    lpips: float
    ssim: float
    seconds: float | None = None
    iterations: int | None = None

    def numbers(self, terms: Sequence[str]) -> list[float]:
        """A table row's numbers (`EvaluationReport.score_columns`): each of `terms` (0 if not
        held), the total, then `METRICS`."""
        values = [self.terms.get(name, 0.0) for name in terms]
        return [*values, self.total, *(float(getattr(self, k)) for k in METRICS)]


@dataclass(frozen=True)
class PhotoResult:
    """One photo's row of the report: the photo, the model and each optimization budget."""

    photo: str  # relative to the content folder
    size: tuple[int, int]  # (H, W) scored
    input: Score
    model: Score
    optimization: dict[int, Score] = field(default_factory=dict)

    def methods(self) -> list[tuple[str, Score]]:
        """(label, score) for the photo, the model, then each optimization budget."""
        rows = [("photo (start)", self.input), ("model", self.model)]
        return rows + [(f"L-BFGS {n}", s) for n, s in self.optimization.items()]


@dataclass(frozen=True)
class BudgetSummary:
    """Mean over photos of one optimization budget, relative to the model.

    Attributes:
        model_loss_ratio: Model total / optimization total (> 1: the model's loss is higher).
        time_ratio: Optimization time / model time.
        lpips, ssim: Mean content metrics of the optimized images against their photos.
    """

    iterations: int
    total: float
    seconds: float
    model_loss_ratio: float
    time_ratio: float
    lpips: float
    ssim: float


@dataclass(frozen=True)
class Summary:
    """Means over the photos scored (``model_lpips`` / ``model_ssim``: the model's outputs
    against their photos)."""

    photos: int
    input_total: float
    model_total: float
    model_seconds: float
    model_lpips: float
    model_ssim: float
    optimization: list[BudgetSummary] = field(default_factory=list)

    @classmethod
    def of(cls, rows: Sequence[PhotoResult], budgets: Sequence[int]) -> Summary:
        model_total = _mean([r.model.total for r in rows])
        model_seconds = _mean([r.model.seconds or 0.0 for r in rows])
        optimization = []
        for n in budgets:
            total = _mean([r.optimization[n].total for r in rows])
            seconds = _mean([r.optimization[n].seconds or 0.0 for r in rows])
            optimization.append(
                BudgetSummary(
                    iterations=n,
                    total=total,
                    seconds=seconds,
                    model_loss_ratio=model_total / total if total else math.inf,
                    time_ratio=seconds / model_seconds if model_seconds else 0.0,
                    lpips=_mean([r.optimization[n].lpips for r in rows]),
                    ssim=_mean([r.optimization[n].ssim for r in rows]),
                )
            )
        return cls(
            photos=len(rows),
            input_total=_mean([r.input.total for r in rows]),
            model_total=model_total,
            model_seconds=model_seconds,
            model_lpips=_mean([r.model.lpips for r in rows]),
            model_ssim=_mean([r.model.ssim for r in rows]),
            optimization=optimization,
        )

    def metrics(self, prefix: str = "eval") -> dict[str, float]:
        """Flat numbers for loggers: ``eval/model_total``, ``eval/model_lpips``,
        ``eval/lbfgs_300/time_ratio``, ..."""
        flat = {
            f"{prefix}/photos": float(self.photos),
            f"{prefix}/input_total": self.input_total,
            f"{prefix}/model_total": self.model_total,
            f"{prefix}/model_seconds": self.model_seconds,
            f"{prefix}/model_lpips": self.model_lpips,
            f"{prefix}/model_ssim": self.model_ssim,
        }
        for b in self.optimization:
            for key in ("total", "seconds", "model_loss_ratio", "time_ratio", *METRICS):
                flat[f"{prefix}/lbfgs_{b.iterations}/{key}"] = float(getattr(b, key))
        return flat


@dataclass(frozen=True)
class Skipped:
    photo: str
    error: str


@dataclass(frozen=True)
class EvaluationReport:
    """Everything `evaluate` measured; written as report.json and report.md."""

    model: str
    style_image: str
    style_size: int | None
    loss_source: str
    loss_weights: dict[str, float]
    content: str
    size: int | None
    device: str
    optimizer: str | None
    rows: list[PhotoResult]
    skipped: list[Skipped]
    summary: Summary

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    def term_names(self) -> list[str]:
        """The loss terms its scores hold, in `TERM_NAMES` order: one column each."""
        held = {name for row in self.rows for _, score in row.methods() for name in score.terms}
        return [name for name in TERM_NAMES if name in held]

    def score_columns(self) -> list[str]:
        """The names of `Score.numbers`: the report's loss terms, total, then `METRICS`."""
        return [*self.term_names(), "total", *METRICS]

    def grid_caption(self) -> str:
        """What the columns of ``grid.jpg`` show."""
        return "photo | model | L-BFGS" if self.optimizer else "photo | model"

    def markdown(self) -> str:
        """The report as Markdown: one row per photo and method, then the summary."""
        terms = self.term_names()
        header = [name.upper() if name in METRICS else name for name in self.score_columns()]
        lines = [
            f"# stylenet-evaluate: {self.model}",
            "",
            f"Style: {self.style_image}; photos: {self.content} at long side {self.size}; loss: "
            f"{self.loss_source} (weights {self.loss_weights}); device: {self.device}.",
            "",
            "| " + " | ".join(["photo", "method", *header, "seconds"]) + " |",
            "|---|---|" + "---|" * (len(header) + 1),
        ]
        for row in self.rows:
            for name, score in row.methods():
                cells = " | ".join(_fmt(v) for v in score.numbers(terms))
                secs = _fmt(score.seconds) if score.seconds is not None else ""
                lines.append(f"| {row.photo} | {name} | {cells} | {secs} |")
        s = self.summary
        lines += [
            "",
            f"Mean total loss over {s.photos} photo(s): photo {_fmt(s.input_total)}, "
            f"model {_fmt(s.model_total)} in {_fmt(s.model_seconds)} s.",
            "",
            f"Content kept by the model, mean against the photos: LPIPS {_fmt(s.model_lpips)} "
            f"(photo itself 0, higher is further), SSIM {_fmt(s.model_ssim)} (photo itself 1).",
        ]
        if s.optimization:
            lines += [
                "",
                "| L-BFGS iterations | mean total | model / optimization loss | time vs model "
                "| mean LPIPS | mean SSIM |",
                "|---|---|---|---|---|---|",
            ]
            lines += [
                f"| {b.iterations} | {_fmt(b.total)} | {b.model_loss_ratio:.2f}× | "
                f"{b.time_ratio:.0f}× | {_fmt(b.lpips)} | {_fmt(b.ssim)} |"
                for b in s.optimization
            ]
        if self.skipped:
            lines += ["", "Skipped: " + "; ".join(f"{x.photo} ({x.error})" for x in self.skipped)]
        return "\n".join(lines) + "\n"


# --- super-resolution ---------------------------------------------------------------------------

SR_METRICS = ("psnr", "ssim", "lpips")  # a `SuperResolutionScore`'s numbers, in table order
SR_BASELINE = "bicubic"  # the baseline's method name in a `SuperResolutionReport`

LPIPS_SHARES_THE_LOSS_NETWORK = (
    "LPIPS-VGG runs on the same ImageNet VGG-16 as the perceptual training loss, whose relu2_2 "
    "features are one of the five layers LPIPS compares: a model trained with the perceptual "
    "loss was optimized on part of what LPIPS measures, so LPIPS favours it. In the same way "
    "PSNR favours a model trained with the pixel loss (mean squared error, which PSNR measures)."
)


@dataclass(frozen=True)
class SuperResolutionScore:
    """One upscaled image against its high-resolution photo.

    Attributes:
        psnr: PSNR in dB of the Y channel with `scale` px cropped from each side (SR papers'
            convention, `stylenet.evaluation.metrics.sr_psnr_ssim`); higher is better.
        ssim: SSIM of the same cropped Y channel; 1 for the photo itself.
        lpips: LPIPS (VGG, v0.1) to the photo, RGB, whole image; 0 for the photo itself.
        seconds: Wall time from the low-resolution input to the image.
    """

    psnr: float
    ssim: float
    lpips: float
    seconds: float | None = None

    def numbers(self, terms: Sequence[str] = ()) -> list[float]:
        """A table row's numbers, `SR_METRICS` (`terms` is ignored: there are no loss terms;
        it keeps `Score.numbers`' signature for the loggers)."""
        return [self.psnr, self.ssim, self.lpips]


@dataclass(frozen=True)
class SuperResolutionMethod:
    """One way of upscaling the low-resolution input.

    Attributes:
        name: Its name in the tables and metric keys: ``bicubic``, ``model``, ``compare1``, ...
        source: The model file ("" for bicubic).
        description: What it is, in words (network, training steps, loss weights).
    """

    name: str
    source: str
    description: str


@dataclass(frozen=True)
class SuperResolutionPhoto:
    """One photo of a `SuperResolutionReport`: a score per method."""

    photo: str  # relative to the content folder
    loaded: tuple[int, int]  # (H, W) at --size, before the crop
    size: tuple[int, int]  # (H, W) of the high-resolution crop scored: multiples of the scale
    scores: dict[str, SuperResolutionScore]  # method name -> score, in the report's order

    def methods(self) -> list[tuple[str, SuperResolutionScore]]:
        """(method name, score) in the report's order."""
        return list(self.scores.items())


@dataclass(frozen=True)
class SuperResolutionMeans:
    """One method's means over the photos; `psnr_gain` is its mean PSNR minus bicubic's (dB)."""

    name: str
    psnr: float
    ssim: float
    lpips: float
    seconds: float
    psnr_gain: float


@dataclass(frozen=True)
class SuperResolutionSummary:
    """Means over the photos scored, one entry per method (bicubic first)."""

    photos: int
    methods: list[SuperResolutionMeans]

    @classmethod
    def of(
        cls, rows: Sequence[SuperResolutionPhoto], names: Sequence[str]
    ) -> SuperResolutionSummary:
        means: dict[str, dict[str, float]] = {}
        for name in names:
            scores = [r.scores[name] for r in rows]
            means[name] = {k: _mean([getattr(s, k) for s in scores]) for k in SR_METRICS}
            means[name]["seconds"] = _mean([s.seconds or 0.0 for s in scores])
        base = means[SR_BASELINE]["psnr"] if SR_BASELINE in means else math.nan
        return cls(
            photos=len(rows),
            methods=[
                SuperResolutionMeans(name=n, psnr_gain=m["psnr"] - base, **m)
                for n, m in means.items()
            ],
        )

    def of_method(self, name: str) -> SuperResolutionMeans:
        """The means of the method called `name`.

        Raises:
            KeyError: No such method.
        """
        for means in self.methods:
            if means.name == name:
                return means
        raise KeyError(name)

    def metrics(self, prefix: str = "eval") -> dict[str, float]:
        """Flat numbers for loggers: ``eval/photos``, ``eval/<method>/{psnr,ssim,lpips,seconds}``
        for each method (``bicubic``, ``model``, ``compare1``, ...) and
        ``eval/<method>/psnr_gain`` (dB over bicubic) for each model."""
        flat = {f"{prefix}/photos": float(self.photos)}
        for m in self.methods:
            for key in (*SR_METRICS, "seconds"):
                flat[f"{prefix}/{m.name}/{key}"] = float(getattr(m, key))
            if m.name != SR_BASELINE:
                flat[f"{prefix}/{m.name}/psnr_gain"] = m.psnr_gain
        return flat


@dataclass(frozen=True)
class SuperResolutionReport:
    """Everything `stylenet.evaluation.superres.evaluate_superres` measured; written as
    report.json and report.md. Readable by the training loggers (`LoggableReport`)."""

    model: str
    scale: int
    content: str
    size: int | None  # long side the photos were resized to (None: as they were)
    device: str
    degradation: str  # what made the low-resolution inputs
    methods: list[SuperResolutionMethod]  # bicubic, the model, then each model compared
    rows: list[SuperResolutionPhoto]
    skipped: list[Skipped]
    summary: SuperResolutionSummary

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    def term_names(self) -> list[str]:
        """No loss terms: super-resolution is scored on image metrics only."""
        return []

    def score_columns(self) -> list[str]:
        """The names of `SuperResolutionScore.numbers`."""
        return list(SR_METRICS)

    def grid_caption(self) -> str:
        """What the columns of ``grid.jpg`` show."""
        names = " | ".join(m.name for m in self.methods)
        return (
            f"low-res input (nearest ×{self.scale}) | {names} | high-res photo; under each "
            "photo its centre, zoomed"
        )

    def markdown(self) -> str:
        """The report as Markdown: one row per photo and method, then the means."""
        s = self.scale
        size = f"at long side {self.size}" if self.size else "at their own size"
        lines = [
            f"# stylenet-evaluate: {self.model} (super-resolution ×{s})",
            "",
            f"Photos: {self.content} {size}, each centre-cropped to a multiple of {s} px on "
            f"both sides (high-res); low-res input: {self.degradation}; device: {self.device}.",
            "",
            "Methods:",
            "",
            *(f"- {m.name}: {m.description}" for m in self.methods),
            "",
            f"PSNR (dB) and SSIM are on the Y channel (BT.601 luma, as MATLAB's rgb2ycbcr) with "
            f"{s} px cropped from each side, as SR papers report them: higher is better. LPIPS "
            "(VGG, v0.1) is against the high-res photo, RGB, whole image: lower is better. "
            "Outputs are scored as saved in images/ (8 bits per channel).",
            "",
            LPIPS_SHARES_THE_LOSS_NETWORK,
            "",
            "| photo | size | method | PSNR (dB) | SSIM | LPIPS | seconds |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in self.rows:
            h, w = row.size
            for name, score in row.methods():
                secs = _fmt(score.seconds) if score.seconds is not None else ""
                lines.append(
                    f"| {row.photo} | {h}×{w} | {name} | {score.psnr:.2f} | {score.ssim:.4f} | "
                    f"{score.lpips:.4f} | {secs} |"
                )
        lines += [
            "",
            f"Means over {self.summary.photos} photo(s):",
            "",
            "| method | PSNR (dB) | vs bicubic (dB) | SSIM | LPIPS | seconds |",
            "|---|---|---|---|---|---|",
        ]
        for m in self.summary.methods:
            gain = "" if m.name == SR_BASELINE else f"{m.psnr_gain:+.2f}"
            lines.append(
                f"| {m.name} | {m.psnr:.2f} | {gain} | {m.ssim:.4f} | {m.lpips:.4f} | "
                f"{_fmt(m.seconds)} |"
            )
        if self.skipped:
            lines += ["", "Skipped: " + "; ".join(f"{x.photo} ({x.error})" for x in self.skipped)]
        return "\n".join(lines) + "\n"


# --- what the training loggers read (stylenet.training.loggers.log_report) ----------------------


class LoggedScore(Protocol):
    """One method's score in a `LoggableReport` row."""

    @property
    def seconds(self) -> float | None: ...

    def numbers(self, terms: Sequence[str]) -> list[float]: ...


class LoggedRow(Protocol):
    """One photo of a `LoggableReport`."""

    @property
    def photo(self) -> str: ...

    def methods(self) -> Sequence[tuple[str, LoggedScore]]: ...


class LoggedSummary(Protocol):
    def metrics(self, prefix: str = ...) -> dict[str, float]: ...


class LoggableReport(Protocol):
    """What a logger needs of a report (`EvaluationReport`, `SuperResolutionReport`): a table
    row per photo and method (``photo``, ``method``, `score_columns`, ``seconds``), the grid's
    caption and flat summary numbers (``summary.metrics(prefix)``)."""

    @property
    def rows(self) -> Sequence[LoggedRow]: ...

    @property
    def summary(self) -> LoggedSummary: ...

    def term_names(self) -> list[str]: ...

    def score_columns(self) -> list[str]: ...

    def grid_caption(self) -> str: ...

    def markdown(self) -> str: ...


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _fmt(v: float) -> str:
    return f"{v:.4g}"
