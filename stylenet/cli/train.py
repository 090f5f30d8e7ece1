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
from omegaconf import DictConfig, OmegaConf

from stylenet import resolvers
from stylenet.cli.common import EXIT_USAGE, exit_code
from stylenet.errors import FileReadError, StylenetError
from stylenet.training.inputs import check_inputs

PROG = "stylenet-train"
CONFIG_PATH = "pkg://stylenet.configs"


class _State:
    """What the jobs of this process did (a sweep runs several in one process)."""

    started = False  # a job began: Hydra composed its config
    exit_code = 0


def _rank() -> int:
    """This process's rank, from the variables Lightning reads (its rank_zero_only), without
    importing Lightning: the inputs are checked before it is loaded."""
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if key in os.environ:
            return int(os.environ[key])
    return 0


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
def hydra_main(cfg: DictConfig) -> float | None:
    """One job: train, print where the results are; returns the optimized metric for sweepers."""
    _State.started = True
    try:
        check_inputs(cfg)  # a bad path fails here, before seconds of imports
        if _rank() == 0:
            _save_hydra_record(cfg)
        from stylenet.training.run import train  # Lightning, torchvision

        metrics = train(cfg)
    except Exception as err:
        user_error = _user_error(err)
        if user_error is None or _debug():
            raise
        message, code = user_error
        if _rank() == 0:
            print(f"{PROG}: {message}", file=sys.stderr, flush=True)
        _State.exit_code = max(_State.exit_code, code)
        return None
    if _rank() == 0:
        print(f"run dir: {metrics['run_dir']}", flush=True)
        print(f"model:   {metrics['model_path']}", flush=True)
    value = metrics.get(cfg.get("optimized_metric") or "")
    return value if value is None or math.isfinite(value) else float("inf")


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
