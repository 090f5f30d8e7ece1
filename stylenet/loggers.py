"""Logger factories used from the Hydra configs (configs/logger/)."""

from __future__ import annotations

import logging
import os
from typing import Any

from pytorch_lightning.loggers import WandbLogger

log = logging.getLogger(__name__)


def wandb_logged_in() -> bool:
    """True if W&B credentials are available (WANDB_API_KEY or a `wandb login` netrc entry)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        import wandb

        return bool(wandb.api.api_key)
    except Exception:  # no wandb settings dir, unreadable netrc, ...
        return False


def _run_name(group: str | None) -> str | None:
    """`<group>-<overrides>` inside a Hydra job (e.g. ``mosaic-loss.style_weight=20``)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = HydraConfig.get().job.override_dirname if HydraConfig.initialized() else ""
    except Exception:  # outside Hydra, or a config without the job node
        overrides = ""
    parts = [p for p in (group, overrides) if p]
    return "-".join(parts) or None


def wandb_logger(
    *, offline: bool | None = None, name: str | None = None, **kwargs: Any
) -> WandbLogger:
    """A `WandbLogger` that runs offline unless the user is logged in.

    Args:
        name: Run name; None gives ``<group>-<sweep overrides>``.
        offline: True/False forces the mode; None (default) picks online only when W&B credentials
            exist. The environment variable ``WANDB_MODE`` (e.g. ``offline``, ``disabled``) always
            wins, as in wandb itself.
        **kwargs: Passed to `WandbLogger` (project, name, save_dir, group, tags, ...).
    """
    if offline is None:
        mode = os.environ.get("WANDB_MODE")
        offline = mode in ("offline", "dryrun") if mode else not wandb_logged_in()
        if offline and not mode:
            log.info("W&B: no credentials found, logging offline (sync later with `wandb sync`)")
    if kwargs.get("save_dir"):
        os.makedirs(kwargs["save_dir"], exist_ok=True)
    return WandbLogger(offline=offline, name=name or _run_name(kwargs.get("group")), **kwargs)
