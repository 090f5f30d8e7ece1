"""What `stylenet.evaluation.evaluate` measured, as data (`EvaluationReport`: a row per photo,
a score per method, the means) and as the files it writes (``report.json``, ``report.md``).
Scoring lives in `evaluate`; this module only holds and renders the numbers."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

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


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _fmt(v: float) -> str:
    return f"{v:.4g}"
