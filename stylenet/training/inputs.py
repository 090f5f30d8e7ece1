"""Check the inputs a training config names before anything is built: a bad path fails in a
second, with the setting in the message, not after minutes of imports and model building.

What every task shares is checked here (settings, photo folders, checkpoints); a task adds its
own through the hooks its config names (``task.check_inputs``, ``task.prepare``: dotted paths of
Lightning-free functions, see `task_hook`). Kept free of Lightning and torchvision, so
``stylenet-train`` can run it before importing them.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from stylenet.errors import ConfigError, FileReadError
from stylenet.io.files import torch_load
from stylenet.losses.terms import TERM_NAMES


def _setting(cfg: DictConfig, key: str) -> Any:
    """The value at `key`; ConfigError naming it if it is mandatory (``???``) and not given."""
    try:
        return OmegaConf.select(cfg, key, throw_on_missing=True)
    except MissingMandatoryValue:
        raise ConfigError(f"{key} is not set: give {key}=...") from None


LOSS_WEIGHTS = tuple(f"{name}_weight" for name in TERM_NAMES)  # loss.content_weight, ...


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


# The deepest layer the losses use (VGG relu4_3) is 1/8 of the crop: at 16 it still has 2×2
# positions. A task's network may ask for more (a multiple of 4 for TransformerNet, of the scale
# for super-resolution): its `task.check_inputs` says so.
MIN_CROP = 16


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
    # The stability terms' settings (losses/terms.py), checked here: before Lightning loads.
    if loss.get("noise_sigma") is not None:
        _number("loss.noise_sigma", loss["noise_sigma"], "a noise level", positive=True)
    for key in ("motion_shift", "motion_zoom", "motion_angle", "motion_noise"):
        if loss.get(key) is not None:
            _number(f"loss.{key}", loss[key], "motion ranges")
    if loss.get("motion_zoom") is not None and float(loss["motion_zoom"]) >= 1:
        zoom = loss["motion_zoom"]
        raise ConfigError(f"loss.motion_zoom={zoom}: must be below 1 (a relative zoom)")
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
            _integer(key, size, minimum=MIN_CROP)
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


def task_hook(cfg: DictConfig, name: str) -> Callable[..., Any] | None:
    """The function ``task.<name>`` names (a dotted path, e.g.
    ``stylenet.training.style_setup.check_style_inputs``); None if the task names none.

    Raises:
        ConfigError: A path that names no function.
    """
    path = OmegaConf.select(cfg, f"task.{name}")
    if not path:
        return None
    module, _, attr = str(path).rpartition(".")
    try:
        hook = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError(f"task.{name}={path}: no such function ({err})") from None
    if not callable(hook):
        raise ConfigError(f"task.{name}={path}: not a function")
    return hook


def check_inputs(cfg: DictConfig) -> None:
    """Fail before anything is built when an input named by the config cannot be used.

    Raises:
        ConfigError: The message names the setting (``data.root=``, ``ckpt_path=``, a loss
            weight, and the task's own: ``style.image=``, ...) and what is wrong with it or its
            file.
    """
    check_settings(cfg)
    if check_task := task_hook(cfg, "check_inputs"):
        check_task(cfg)
    for key in ("data.root", "data.val_root"):
        folder = _setting(cfg, key)
        if folder is not None and not Path(folder).is_dir():
            what = "not a folder" if Path(folder).exists() else "no such folder"
            raise ConfigError(f"{key}={folder}: {what}")
    if path := cfg.get("ckpt_path"):
        # Its network is compared once the task has completed ``model`` (`prepare_task`).
        check_checkpoint(cfg, path, network=False)


def prepare_task(cfg: DictConfig) -> Callable[[Any], None] | None:
    """Let the task put its derived settings into the config (``task.prepare``: a style run's
    ``styles`` into ``model`` and ``module``); returns what initializes the built module from
    elsewhere (``init_from``), if anything."""
    prepare = task_hook(cfg, "prepare")
    return prepare(cfg) if prepare else None


def check_checkpoint(
    cfg: DictConfig, path: str | Path, *, key: str = "ckpt_path", network: bool = True
) -> None:
    """Refuse a checkpoint this run cannot continue from: unreadable (or holding pickled code),
    not a Lightning checkpoint of stylenet-train (a model.pt, say), or, with `network`, one of
    another network than ``model`` describes (call that after `prepare_task`, which completes
    ``model``).

    Args:
        cfg: The run's config.
        path: The checkpoint (``ckpt_path=``, or the one ``resume=auto`` found).
        key: How the message names where the path came from.
        network: Also compare the checkpoint's network with ``model``.

    Raises:
        ConfigError: Naming `key`, the file and what is wrong (the differing settings).
    """
    from stylenet.inference.model_file import ModelFileError, checkpoint_card

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
    if not isinstance(ckpt.get("stylenet"), dict):
        raise ConfigError(f"{key}={path}: a Lightning checkpoint, but not one of stylenet-train")
    if not network:
        return
    try:
        card, _ = checkpoint_card(Path(path), ckpt)
    except ModelFileError as err:
        raise ConfigError(f"{key}={path}: {err.reason}") from err
    model = {str(k): v for k, v in (cfg.get("model") or {}).items() if not str(k).startswith("_")}
    target = str(OmegaConf.select(cfg, "model._target_") or "")
    differ = [f"model: {card.network} in the checkpoint, {target.rpartition('.')[2]} here"]
    if target.rpartition(".")[2] == card.network:
        differ = [
            f"model.{name}: {card.config.get(name)} in the checkpoint, {value} here"
            for name, value in model.items()
            if name in card.config and card.config[name] != value
        ]
    if differ:
        raise ConfigError(
            f"{key}={path}: a checkpoint of another network ({'; '.join(differ)}); give the "
            "model=... (and styles) it was trained with"
        )
