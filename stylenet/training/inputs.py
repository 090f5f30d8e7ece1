"""Check the inputs a training config names before anything is built: a bad path fails in a
second, with the setting in the message, not after minutes of imports and model building.

Kept free of Lightning and torchvision, so ``stylenet-train`` can run it before importing them.
"""

from __future__ import annotations

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


def check_inputs(cfg: DictConfig) -> None:
    """Fail before anything is built when an input named by the config cannot be used.

    Raises:
        ConfigError: The message names the setting (``style.image=``, ``data.root=``,
            ``ckpt_path=``) and what is wrong with its file.
    """
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
