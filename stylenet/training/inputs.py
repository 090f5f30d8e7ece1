"""Check the inputs a training config names before anything is built: a bad path fails in a
second, with the setting in the message, not after minutes of imports and model building.

Kept free of Lightning and torchvision, so ``stylenet-train`` can run it before importing them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from stylenet.errors import ConfigError, FileReadError
from stylenet.io.files import torch_load
from stylenet.io.images import load_image


def _setting(cfg: DictConfig, key: str) -> Any:
    """The value at `key`; ConfigError naming it if it is mandatory (``???``) and not given."""
    try:
        return OmegaConf.select(cfg, key, throw_on_missing=True)
    except MissingMandatoryValue:
        raise ConfigError(f"{key} is not set: give {key}=...") from None


LOSS_WEIGHTS = ("content_weight", "style_weight", "tv_weight", "pixel_weight")


def checkpoint_dir(cfg: DictConfig) -> Path:
    """Where the run's checkpoints go (the checkpoint callback's folder)."""
    folder = OmegaConf.select(cfg, "callbacks.model_checkpoint.dirpath")
    return Path(folder) if folder else Path(cfg.paths.output_dir) / "checkpoints"


def _check_weight(key: str, value: Any) -> None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}={value!s}: not a number") from None
    if not math.isfinite(number) or number < 0:
        raise ConfigError(f"{key}={value}: loss weights must be finite and >= 0")


def check_settings(cfg: DictConfig) -> None:
    """Refuse settings that would waste a run: negative or NaN loss weights, a learning rate
    that is not a positive number, an unknown ``resume``, a run folder that would be reused.

    Raises:
        ConfigError: Naming the setting.
    """
    loss = cfg.get("loss") or {}
    for name in LOSS_WEIGHTS:
        if loss.get(name) is not None:
            _check_weight(f"loss.{name}", loss[name])
    layers = loss.get("style_layers")
    if isinstance(layers, DictConfig):
        for layer, weight in layers.items():
            _check_weight(f"loss.style_layers.{layer!s}", weight)
    lr = OmegaConf.select(cfg, "optimizer.lr")
    if lr is not None:
        _check_weight("optimizer.lr", lr)
        if float(lr) == 0:
            raise ConfigError("optimizer.lr=0: nothing would be learned")
    resume = cfg.get("resume")
    if resume not in (None, "auto"):
        raise ConfigError(f"resume={resume}: expected auto (or leave it unset)")
    if resume == "auto" and cfg.get("ckpt_path"):
        raise ConfigError("give resume=auto or ckpt_path=..., not both")
    if resume is None and OmegaConf.select(cfg, "paths.output_dir") is not None:
        folder = checkpoint_dir(cfg)
        if folder.is_dir() and any(folder.glob("*.ckpt")):
            raise ConfigError(
                f"{folder} already holds checkpoints of an earlier run: resume=auto continues "
                "it, another run_name starts a new one"
            )


def check_inputs(cfg: DictConfig) -> None:
    """Fail before anything is built when an input named by the config cannot be used.

    Raises:
        ConfigError: The message names the setting (``style.image=``, ``data.root=``,
            ``ckpt_path=``, a loss weight, ...) and what is wrong with it or its file.
    """
    check_settings(cfg)
    style = _setting(cfg, "style.image")
    try:
        load_image(style)
    except FileReadError as err:
        hint = ""
        if err.reason == "no such file" and cfg.style.get("name") not in (None, "custom"):
            hint = (
                f"; style={cfg.style.name} looks for its painting in paths.style_dir: put "
                f"{Path(style).name} there, set STYLENET_STYLE_DIR=DIR, or give style.image=PATH"
            )
        raise ConfigError(f"style.image={style}: {err.reason}{hint}") from err
    for key in ("data.root", "data.val_root"):
        folder = _setting(cfg, key)
        if folder is not None and not Path(folder).is_dir():
            what = "not a folder" if Path(folder).exists() else "no such folder"
            raise ConfigError(f"{key}={folder}: {what}")
    if ckpt := cfg.get("ckpt_path"):
        try:
            torch_load(ckpt)
        except FileReadError as err:
            raise ConfigError(f"ckpt_path={ckpt}: {err.reason}") from err
