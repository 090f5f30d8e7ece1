"""`stylenet-train`: train one feed-forward stylizer for one style image (a Hydra app).

    stylenet-train style.image=painting.jpg data.root=/data/coco/train2014
    stylenet-train experiment=johnson2016 style=mosaic data.root=...
    stylenet-train -m hparams_search=style_tv style.image=... data.root=...

A bad setting or input file (`stylenet.errors.StylenetError`) ends the job with one line naming
it, and the command with exit status 2 (in a sweep, after the other jobs); a config Hydra cannot
compose also exits with 2, after Hydra's own message. ``--debug`` or ``HYDRA_FULL_ERROR=1`` shows
tracebacks instead.
"""

from __future__ import annotations

import math
import os
import re
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from stylenet import resolvers
from stylenet.cli.common import EXIT_USAGE, exit_code, process_rank
from stylenet.errors import FileReadError, StylenetError
from stylenet.evaluation.jobs import (
    JOB_RECORD,
    JobRecord,
    clean_metrics,
    one_line,
    write_job_record,
)
from stylenet.training.inputs import check_inputs

PROG = "stylenet-train"
CONFIG_PATH = "pkg://stylenet.configs"


class _State:
    """What the jobs of this process did (a sweep runs several in one process)."""

    started = False  # a job began: Hydra composed its config
    exit_code = 0


def _debug() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def _user_error(err: Exception) -> tuple[str, int] | None:
    """(one-line message, exit code) if `err` is a user error: a `StylenetError`, or a bad value
    met while Hydra built an object from the config (an error in its constructor)."""
    if isinstance(err, StylenetError):
        return str(err), exit_code(err)
    cause = err.__cause__
    if isinstance(err, InstantiationException) and isinstance(cause, FileReadError):
        return str(cause), exit_code(cause)  # it names its file: the config node adds nothing
    if isinstance(err, InstantiationException) and isinstance(
        cause, StylenetError | ValueError | TypeError
    ):
        node = re.search(r"full_key: (\S+)", str(err))
        return (f"{node.group(1)}: {cause}" if node else str(cause)), EXIT_USAGE
    return None


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
def hydra_main(cfg: DictConfig) -> float | list[float] | None:
    """One job: train, print where the results are; returns the optimized metric(s) for
    sweepers. Keeps the job's record (`stylenet.evaluation.jobs`) in its run folder."""
    _State.started = True
    record = JobRecord("running", overrides=_task_overrides())
    folder = _job_folder() if process_rank() == 0 else None
    # Whether this job's end goes into the folder's record: once its inputs are accepted the
    # folder is its own; before that only a sweep's job writes one, and only into a folder
    # without one (a refused rerun must not overwrite the record of the run it refused).
    owns_record = False
    try:
        owns_record = _in_sweep() and folder is not None and not (folder / JOB_RECORD).exists()
        check_inputs(cfg)  # a bad path fails here, before seconds of imports
        if folder is not None:
            _save_hydra_record(cfg)
            write_job_record(folder, record)
            owns_record = True
        from stylenet.training.run import train  # Lightning, torchvision

        metrics = train(cfg)
    except BaseException as err:
        if owns_record and folder is not None:
            write_job_record(folder, record.ended(_end_status(err), reason=_reason(err)))
        if not isinstance(err, Exception):
            raise
        user_error = _user_error(err)
        if user_error is None or _debug():
            raise
        message, code = user_error
        if process_rank() == 0:
            print(f"{PROG}: {message}", file=sys.stderr, flush=True)
        _State.exit_code = max(_State.exit_code, code)
        return None
    if folder is not None:
        done = record.ended(
            "finished", steps=int(metrics["global_step"]), metrics=clean_metrics(metrics)
        )
        write_job_record(folder, done)
    if process_rank() == 0:
        print(f"run dir: {metrics['run_dir']}", flush=True)
        print(f"model:   {metrics['model_path']}", flush=True)
    return _objective(cfg.get("optimized_metric"), metrics)


def _objective(names: Any, metrics: dict[str, Any]) -> float | list[float] | None:
    """The value of the metric `names` (one name), or the list of their values (a
    multi-objective search: several); a non-finite value counts as infinitely bad, a missing
    one as None (the sweeper marks the trial failed)."""

    def value(name: str) -> float | None:
        v = metrics.get(name)
        return v if v is None or math.isfinite(v) else float("inf")

    if not names:
        return None
    if isinstance(names, str):
        return value(names)
    values = [value(str(n)) for n in names]
    return None if any(v is None for v in values) else [v for v in values if v is not None]


def _end_status(err: BaseException) -> str:
    """The job status an exception ends a job with."""
    faults = sys.modules.get("stylenet.training.faults")  # loaded by the time training fails
    if faults is not None and isinstance(err, faults.TrainingDiverged):
        return "diverged"
    if isinstance(err, KeyboardInterrupt) or (
        faults is not None and isinstance(err, faults.TrainingInterrupted)
    ):
        return "stopped"
    return "failed"


def _reason(err: BaseException | None) -> str:
    """One line saying why a job ended: the user error's message, else the exception."""
    if err is None:
        return "unknown error"
    user_error = _user_error(err) if isinstance(err, Exception) else None
    return one_line(user_error[0] if user_error else f"{type(err).__name__}: {err}".rstrip(": "))


def _task_overrides() -> list[str]:
    """The job's overrides (Hydra's ``task`` overrides; [] outside a Hydra app)."""
    if not HydraConfig.initialized():
        return []
    return [str(o) for o in HydraConfig.get().overrides.task]


def _in_sweep() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _job_folder() -> Path | None:
    """The job's run folder (Hydra's output dir), created; None outside a Hydra app."""
    if not HydraConfig.initialized():
        return None
    folder = Path(HydraConfig.get().runtime.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _save_hydra_record(cfg: DictConfig) -> None:
    """Write ``.hydra/config.yaml``, ``hydra.yaml`` and ``overrides.yaml`` into the run folder,
    as Hydra does with its ``output_subdir``, but only once `check_inputs` has accepted the run:
    a rerun that is refused (a finished run without ``resume=auto``) leaves the record of the run
    it would have overwritten untouched. Hydra writes them itself when the user sets
    ``hydra.output_subdir``."""
    hydra_cfg: Any = HydraConfig.instance().cfg  # {"hydra": HydraConf}
    if hydra_cfg is None or hydra_cfg.hydra.output_subdir is not None:
        return
    folder = Path(hydra_cfg.hydra.runtime.output_dir) / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    for name, node in (
        ("config.yaml", cfg),
        ("hydra.yaml", hydra_cfg),
        ("overrides.yaml", hydra_cfg.hydra.overrides.task),
    ):
        (folder / name).write_text(OmegaConf.to_yaml(node), encoding="utf-8")


def main() -> None:
    """Console script ``stylenet-train``."""
    resolvers.register()
    if "--debug" in sys.argv[1:]:
        sys.argv.remove("--debug")
        os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        hydra_main()
    except SystemExit as exit:
        # Hydra reports a config it cannot compose (unknown group option or key, bad override
        # syntax) itself and exits with 1 before any job starts: that is a bad argument.
        if exit.code == 1 and not _State.started:
            raise SystemExit(EXIT_USAGE) from None
        raise
    if _State.exit_code:
        sys.exit(_State.exit_code)


if __name__ == "__main__":
    main()
