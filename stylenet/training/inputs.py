"""Check the inputs a training config names before anything is built: a bad path fails in a
second, with the setting in the message, not after minutes of imports and model building.

Kept free of Lightning and torchvision, so ``stylenet-train`` can run it before importing them.
"""

from __future__ import annotations

import math
from importlib.resources import files
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


_STYLE_CONFIGS = Path(str(files("stylenet.configs"))) / "style"
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
    if cfg.get("init_from") and cfg.get("init_from_lr") is not None:
        _check_weight("init_from_lr", cfg.init_from_lr)
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


def _named_style(cfg: DictConfig, name: str) -> dict[str, Any] | None:
    """{name, image, size} of the style config ``configs/style/NAME.yaml``; None if none."""
    if not (_STYLE_CONFIGS / f"{name}.yaml").is_file():
        return None
    node = OmegaConf.load(_STYLE_CONFIGS / f"{name}.yaml")
    merged = OmegaConf.merge({"paths": cfg.paths}, {"style": node})
    return {
        "name": str(merged.style.name),
        "image": str(merged.style.image),
        "size": merged.style.get("size", OmegaConf.select(cfg, "style.size")),
    }


def resolve_styles(cfg: DictConfig) -> list[dict[str, Any]]:
    """The run's styles as {name, image, size} records, in style-weight order.

    ``styles`` (a list) names several styles for one network: each entry is a named style
    config (``configs/style/NAME.yaml``), an image path, or a {name, image, size, style_scale}
    mapping; a mapping without ``image`` whose name is a style config adds its keys to that
    config's ({name: mosaic, style_scale: 1.5}). An empty list means the one style of ``style``.

    Raises:
        ConfigError: A style set twice, or a mandatory value missing.
    """
    entries = cfg.get("styles") or []
    default_size = OmegaConf.select(cfg, "style.size")
    if not entries:
        return [
            {
                "name": cfg.style.get("name") or "custom",
                "image": _setting(cfg, "style.image"),
                "size": default_size,
            }
        ]
    records = []
    for entry in entries:
        record: dict[str, Any]
        if isinstance(entry, DictConfig):
            container = OmegaConf.to_container(entry, resolve=True)
            assert isinstance(container, dict)
            given = {str(k): v for k, v in container.items()}
            named = None if "image" in given else _named_style(cfg, str(given.get("name")))
            if named:  # {name: mosaic, style_scale: 1.5}: the config's record, these keys on top
                record = {**named, **given}
            else:
                record = {"size": default_size, **given}
                record.setdefault("name", Path(str(record.get("image"))).stem)
        elif named_record := _named_style(cfg, str(entry)):
            record = named_record
        else:
            record = {"name": Path(str(entry)).stem, "image": str(entry), "size": default_size}
        records.append(record)
    names = [r["name"] for r in records]
    if len(set(names)) != len(names):
        raise ConfigError(f"styles={names}: each style may appear once")
    return records


def check_inputs(cfg: DictConfig) -> None:
    """Fail before anything is built when an input named by the config cannot be used.

    Raises:
        ConfigError: The message names the setting (``style.image=``, ``data.root=``,
            ``ckpt_path=``, a loss weight, ...) and what is wrong with it or its file.
    """
    check_settings(cfg)
    multi = bool(cfg.get("styles"))
    for record in resolve_styles(cfg):
        style = record["image"]
        key = f"styles: {record['name']}: image" if multi else "style.image"
        try:
            load_image(style)
        except FileReadError as err:
            hint = ""
            named = record["name"] if multi else cfg.style.get("name")
            if err.reason == "no such file" and named not in (None, "custom"):
                hint = (
                    f"; style={named} looks for its painting in paths.style_dir: put "
                    f"{Path(style).name} there, set STYLENET_STYLE_DIR=DIR, or give "
                    "style.image=PATH"
                )
            raise ConfigError(f"{key}={style}: {err.reason}{hint}") from err
    for key in ("data.root", "data.val_root"):
        folder = _setting(cfg, key)
        if folder is not None and not Path(folder).is_dir():
            what = "not a folder" if Path(folder).exists() else "no such folder"
            raise ConfigError(f"{key}={folder}: {what}")
    for key in ("ckpt_path", "init_from"):
        if path := cfg.get(key):
            try:
                torch_load(path)
            except FileReadError as err:
                raise ConfigError(f"{key}={path}: {err.reason}") from err
