"""`stylenet-sweep-report SWEEP_DIR`: a sweep's jobs side by side, and the pick of one.

    stylenet-sweep-report multirun/train/mosaic/2026-11-30_10-00-00
    stylenet-sweep-report SWEEP --photos photos/ --x lpips
    stylenet-sweep-report SWEEP --pick 4                        # job 4's weights
    stylenet-sweep-report SWEEP --pick best --max-content 6     # lowest style with content ≤ 6

Writes sweep.md, sweep.csv, contact_sheet.jpg and pareto.png into the sweep's folder (and logs
them to W&B when the jobs logged there); ``--pick`` also writes the chosen job's swept values as
``CONFIGS/experiment/<style>_tuned.yaml`` and prints the command that trains with them.
`ReportAtSweepEnd` (configs/hydra/default.yaml) runs the same report after each job of
``stylenet-train -m``. This module imports the report's machinery only when it runs: Hydra loads
the callback before every training run.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from stylenet.cli.common import (
    EPILOG,
    EXIT_OK,
    ArgumentParser,
    at_least,
    positive_float,
    process_rank,
    run,
)

if TYPE_CHECKING:
    from stylenet.evaluation.sweep import Report, Sweep

log = logging.getLogger(__name__)
PROG = "stylenet-sweep-report"
DEFAULT_PHOTOS = 3
DEFAULT_SIZE = 256


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog=PROG,
        description="Report a sweep (stylenet-train -m): a table of every job's swept values, "
        "status and held-out scores (style, content and TV loss at weight 1, LPIPS and SSIM "
        "against the photos), a contact sheet of the same photos stylized by every job on the "
        "sweep's axes, and a plot of style against content loss with the Pareto front. "
        "Reports what is there: a running or partly failed sweep too.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n")[1] + "\n" + EPILOG,
    )
    p.add_argument("sweep", type=Path, help="the sweep's folder (hydra.sweep.dir)")
    p.add_argument(
        "--photos",
        type=Path,
        help="held-out photos (folder or one photo); default: the jobs' evaluate.content, else "
        "data.val_root, else their training photos",
    )
    p.add_argument(
        "--num-photos",
        type=at_least(1),
        default=DEFAULT_PHOTOS,
        help=f"how many of them (the first, sorted; default {DEFAULT_PHOTOS})",
    )
    p.add_argument(
        "--size", type=at_least(32), default=DEFAULT_SIZE, help="their long side, px (256)"
    )
    p.add_argument(
        "--x",
        choices=["content", "lpips"],
        default="content",
        help="the Pareto plot's x axis (and front)",
    )
    p.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    p.add_argument(
        "--wandb",
        choices=["auto", "on", "off"],
        default="auto",
        help="log the report to W&B: auto = when the jobs logged there (WANDB_MODE=disabled: off)",
    )
    pick = p.add_argument_group("pick a job and reuse its weights")
    pick.add_argument(
        "--pick", metavar="N|best", help="job N, or best: the lowest style loss within the bounds"
    )
    pick.add_argument("--max-content", type=positive_float, help="with --pick best: content ≤ X")
    pick.add_argument("--max-lpips", type=positive_float, help="with --pick best: LPIPS ≤ X")
    pick.add_argument(
        "--configs",
        type=Path,
        default=Path("configs"),
        help="where the experiment config goes: CONFIGS/experiment/<style>_tuned.yaml "
        "(default ./configs)",
    )
    pick.add_argument("--overwrite", action="store_true", help="replace that config")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return p


def choose_photos(sweep: Sweep, photos: Path | None, count: int) -> tuple[list[Path], str]:
    """The held-out photos of the report, and where they came from (for the report's text)."""
    from stylenet.evaluation.sweep import default_photos, pick_photos

    if photos is not None:
        return pick_photos(photos, count), f"--photos {photos}"
    found, source = default_photos(sweep)
    if found is not None:
        return pick_photos(found, count), f"{source}={found}"
    root = sweep.fixed.get("data.root")
    if root:
        return pick_photos(root, count), f"training photos from data.root={root}: no held-out set"
    return [], source


def report_sweep(
    folder: Path,
    *,
    photos: Path | None = None,
    count: int = DEFAULT_PHOTOS,
    size: int = DEFAULT_SIZE,
    x: str = "content",
    device: str | None = None,
    wandb: str = "auto",
    progress: bool = True,
) -> Report:
    """Read, score and report the sweep in `folder` (`stylenet.evaluation.sweep`), and log the
    report to W&B per `wandb`."""
    from stylenet.evaluation.sweep import job_configs, read_sweep, write_report

    sweep = read_sweep(folder)
    chosen, note = choose_photos(sweep, photos, count)
    report = write_report(
        sweep, chosen, size=size, x=x, note=note, device=device, progress=progress
    )
    if wandb != "off" and os.environ.get("WANDB_MODE") != "disabled":
        loggers = next(job_configs(sweep), {}).get("logger") or {}
        if wandb == "on" or "wandb" in loggers:  # auto: when the jobs logged there
            _log_wandb(report, x, loggers.get("wandb") or {})
    return report


def _log_wandb(report: Report, x: str, settings: dict[str, Any]) -> None:
    """The report's table, contact sheet and Pareto plot as one W&B run (job type
    ``sweep-report``) in the jobs' project and group (`settings`: their ``logger.wandb``);
    offline unless logged in (as training)."""
    import wandb

    from stylenet.training.loggers import wandb_logged_in

    mode = os.environ.get("WANDB_MODE") or ("online" if wandb_logged_in() else "offline")
    run = wandb.init(
        project=settings.get("project") or "stylenet",
        group=settings.get("group"),
        job_type="sweep-report",
        name=f"{report.sweep.folder.name}-report",
        dir=str(report.sweep.folder),
        mode=mode,  # type: ignore[arg-type]
        config={"sweep": str(report.sweep.folder), "swept": report.sweep.swept, "x": x},
    )
    header, rows = report.table(x)
    columns: list[str | int] = list(header)
    logged: dict[str, Any] = {"sweep/table": wandb.Table(columns=columns, data=rows)}
    for name in ("contact_sheet.jpg", "pareto.png"):
        if name in report.files:
            logged[f"sweep/{name.split('.')[0]}"] = wandb.Image(str(report.files[name]))
    run.log(logged)
    run.finish()


def _main(args: argparse.Namespace) -> int:
    from stylenet.errors import ConfigError
    from stylenet.evaluation.sweep import choose_job, write_experiment

    if args.pick is None and (args.max_content is not None or args.max_lpips is not None):
        raise ConfigError("--max-content and --max-lpips go with --pick best")
    if args.pick not in (None, "best") and (args.max_content or args.max_lpips):
        raise ConfigError(f"--pick {args.pick} names a job: --max-content/--max-lpips are for best")
    report = report_sweep(
        args.sweep,
        photos=args.photos,
        count=args.num_photos,
        size=args.size,
        x=args.x,
        device=args.device,
        wandb=args.wandb,
        progress=not args.quiet,
    )
    sweep = report.sweep
    statuses = [j.status for j in sweep.jobs]
    summary = ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses)))
    print(f"{len(sweep.jobs)} job(s): {summary}; swept: {', '.join(sweep.swept) or 'nothing'}")
    for job, reason in report.unscored:
        print(f"not scored: job {job.name}: {reason}", file=sys.stderr)
    for path in report.files.values():
        print(f"wrote {path}")
    if args.pick is None:
        return EXIT_OK
    job, rule = choose_job(sweep, args.pick, max_content=args.max_content, max_lpips=args.max_lpips)
    path = write_experiment(sweep, job, rule, args.configs, overwrite=args.overwrite)
    print(f"picked {job.label(sweep.swept)} ({rule}); wrote {path}")
    searchpath = f"hydra.searchpath=[file://{args.configs.resolve()}]"
    command = ["stylenet-train", searchpath, f"experiment={path.stem}", "data.root=PHOTOS"]
    print("train it for real with:\n  " + shlex.join(command))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(PROG, lambda: _main(args), debug=args.debug)


class ReportAtSweepEnd(Callback):
    """Hydra callback: the sweep's report (`report_sweep`) after each of its jobs ends and at
    the end of the sweep, so a running or partly failed sweep has an up-to-date one. Never
    fails the sweep: a report that cannot be made is a warning.

    Args:
        enabled: False turns it off (``hydra.callbacks.sweep_report.enabled=false``).
        photos, num_photos, size, x, wandb: As the command's options.
    """

    def __init__(
        self,
        enabled: bool = True,
        photos: str | None = None,
        num_photos: int = DEFAULT_PHOTOS,
        size: int = DEFAULT_SIZE,
        x: str = "content",
        wandb: str = "auto",
    ) -> None:
        self.enabled, self.photos, self.num_photos = enabled, photos, num_photos
        self.size, self.x, self.wandb = size, x, wandb

    def _report(self, folder: str | None, final: bool) -> None:
        if process_rank() != 0 or not self.enabled or not folder:  # one report: rank 0's
            return
        try:
            report_sweep(
                Path(folder),
                photos=Path(self.photos) if self.photos else None,
                count=self.num_photos,
                size=self.size,
                x=self.x,
                wandb=self.wandb if final else "off",
                progress=False,
            )
        except Exception as err:
            log.warning("the sweep report of %s could not be made: %s", folder, err)
        else:
            log.info("sweep report: %s", Path(folder) / "sweep.md")

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra = HydraConfig.get()
        if hydra.mode == RunMode.MULTIRUN:
            self._report(hydra.sweep.dir, final=False)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._report(str(config.hydra.sweep.dir), final=True)


if __name__ == "__main__":
    sys.exit(main())
