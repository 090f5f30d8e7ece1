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


def _number(key: str, value: Any, what: str, *, positive: bool = False) -> float:
    """`value` as a float; ConfigError naming `key` unless it is finite and >= 0 (> 0 if
    `positive`). `what` names the kind of setting in the message ("loss weights")."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}={value!s}: not a number") from None
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        bound = "> 0" if positive else ">= 0"
        raise ConfigError(f"{key}={value}: {what} must be finite and {bound}")
    return number


def _integer(key: str, value: Any, *, minimum: int | None = None) -> int:
    """`value` as an int; ConfigError naming `key` if it is not a whole number >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}={value!s}: not an integer")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key}={value}: must be at least {minimum}")
    return value


# The transform network halves the image twice and doubles it back (Johnson et al. 2016, supp.
# Table 1), so a training crop must be a multiple of 4 to come out the size it went in; at 16 the
# deepest style layer (relu4_3, 1/8 of the crop) still has 2×2 positions.
MIN_CROP = 16
CROP_MULTIPLE = 4


def _check_crop(key: str, value: Any) -> None:
    size = _integer(key, value, minimum=MIN_CROP)
    if size % CROP_MULTIPLE:
        lower = size - size % CROP_MULTIPLE
        raise ConfigError(
            f"{key}={size}: training crops must be a multiple of {CROP_MULTIPLE} (the network "
            f"downsamples by 4 and upsamples back), e.g. {lower} or {lower + CROP_MULTIPLE}"
        )


def check_settings(cfg: DictConfig) -> None:
    """Refuse settings that would waste a run: negative or NaN loss weights, a learning rate
    that is not a positive number, an unknown ``resume``, a run folder that would be reused.

    Raises:
        ConfigError: Naming the setting.
    """
    loss = cfg.get("loss") or {}
    for name in LOSS_WEIGHTS:
        if loss.get(name) is not None:
            _number(f"loss.{name}", loss[name], "loss weights")
    layers = loss.get("style_layers")
    if isinstance(layers, DictConfig):
        for layer, weight in layers.items():
            _number(f"loss.style_layers.{layer!s}", weight, "loss weights")
    if cfg.get("init_from") and cfg.get("init_from_lr") is not None:
        _number("init_from_lr", cfg.init_from_lr, "a learning rate", positive=True)
    lr = OmegaConf.select(cfg, "optimizer.lr")
    if lr is not None:
        _number("optimizer.lr", lr, "a learning rate", positive=True)
    if cfg.get("seed") is not None:
        _integer("seed", cfg.seed)
    for key in ("data.image_size", "data.val_image_size"):
        if (size := OmegaConf.select(cfg, key)) is not None:
            _check_crop(key, size)
    if (workers := OmegaConf.select(cfg, "data.num_workers")) is not None:
        _integer("data.num_workers", workers, minimum=0)
    steps = OmegaConf.select(cfg, "trainer.max_steps")
    if steps is not None and (_integer("trainer.max_steps", steps) == 0 or steps < -1):
        raise ConfigError(
            f"trainer.max_steps={steps}: nothing would be trained; give a number of steps > 0 "
            "(or -1 to stop by trainer.max_epochs)"
        )
    divergence = OmegaConf.select(cfg, "train.divergence") or {}
    given = divergence.get("factor")
    if given is not None and not _number("train.divergence.factor", given, "the factor") > 1:
        raise ConfigError(
            f"train.divergence.factor={given}: must be > 1 (how many times its "
            "running median the loss may reach), or null to stop only on NaN/Inf"
        )
    for key in ("patience", "window"):
        if divergence.get(key) is not None:
            _integer(f"train.divergence.{key}", divergence[key], minimum=1)
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
    if path := cfg.get("init_from"):
        try:
            torch_load(path)
        except FileReadError as err:
            raise ConfigError(f"init_from={path}: {err.reason}") from err
    if path := cfg.get("ckpt_path"):
        check_checkpoint(cfg, path)


def check_checkpoint(cfg: DictConfig, path: str | Path, *, key: str = "ckpt_path") -> None:
    """Refuse a checkpoint this run cannot continue from: unreadable (or holding pickled code),
    not a Lightning checkpoint of stylenet-train (a model.pt, say), or one of another network
    than ``model`` (and ``styles``) describe.

    Args:
        cfg: The run's config.
        path: The checkpoint (``ckpt_path=``, or the one ``resume=auto`` found).
        key: How the message names where the path came from.

    Raises:
        ConfigError: Naming `key`, the file and what is wrong (the differing settings).
    """
    try:
        ckpt = torch_load(path, mmap=True)
    except FileReadError as err:
        raise ConfigError(f"{key}={path}: {err.reason}") from err
    if not isinstance(ckpt, dict) or not {"state_dict", "global_step", "loops"} <= ckpt.keys():
        what = "a torch file"
        if isinstance(ckpt, dict) and str(ckpt.get("format", "")).startswith("stylenet."):
            what = "a stylenet model file"
        raise ConfigError(
            f"{key}={path}: {what}, not a training checkpoint; {key} continues training from "
            "a Lightning checkpoint of stylenet-train (<run>/checkpoints/last.ckpt or step*.ckpt)"
        )
    info = ckpt.get("stylenet")
    saved = info.get("config") if isinstance(info, dict) else None
    if not isinstance(saved, dict):
        raise ConfigError(f"{key}={path}: a Lightning checkpoint, but not one of stylenet-train")
    styles = cfg.get("styles")
    expected = {
        "base_channels": OmegaConf.select(cfg, "model.base_channels"),
        "num_residual_blocks": OmegaConf.select(cfg, "model.num_residual_blocks"),
        "num_styles": len(styles) if styles else OmegaConf.select(cfg, "model.num_styles") or 1,
    }
    differ = [
        f"{'styles (count)' if name == 'num_styles' else 'model.' + name}: {saved.get(name, 1)} "
        f"in the checkpoint, {value} here"
        for name, value in expected.items()
        if value is not None and saved.get(name, 1) != value
    ]
    if differ:
        raise ConfigError(
            f"{key}={path}: a checkpoint of another network ({'; '.join(differ)}); give the "
            "model=... (and styles) it was trained with"
        )
