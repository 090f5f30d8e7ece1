"""The style task's settings, before anything is built (``task=style``, the default).

Two hooks that ``configs/task/style.yaml`` names and `stylenet.training.inputs` calls, kept free
of Lightning so ``stylenet-train`` runs them before importing it:

- `check_style_inputs`: every painting decodes, ``init_from`` is readable;
- `prepare_styles`: ``styles=[...]`` (and ``init_from``) into the config, so the module gets every
  style and the run's ``config.yaml`` says so; returns what puts ``init_from``'s weights into the
  new network.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import MissingMandatoryValue

from stylenet.errors import ConfigError, FileReadError
from stylenet.io.files import torch_load
from stylenet.io.images import load_image

_STYLE_CONFIGS = Path(str(files("stylenet.configs"))) / "style"
# TransformerNet halves the image twice and doubles it back (Johnson et al. 2016, supp. Table 1):
# a training crop must be a multiple of 4 to come out the size it went in.
CROP_MULTIPLE = 4


def _setting(cfg: DictConfig, key: str) -> Any:
    """The value at `key`; ConfigError naming it if it is mandatory (``???``) and not given."""
    try:
        return OmegaConf.select(cfg, key, throw_on_missing=True)
    except MissingMandatoryValue:
        raise ConfigError(f"{key} is not set: give {key}=...") from None


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


def check_style_inputs(cfg: DictConfig) -> None:
    """The crops fit the network, every painting of the run decodes, and ``init_from`` is a
    readable file.

    Raises:
        ConfigError: Naming ``style.image=`` (or the ``styles`` entry) or ``init_from=``, with
            where a named style looked for its painting.
    """
    for key in ("data.image_size", "data.val_image_size"):
        size = OmegaConf.select(cfg, key)
        if isinstance(size, int) and size % CROP_MULTIPLE:
            lower = size - size % CROP_MULTIPLE
            raise ConfigError(
                f"{key}={size}: training crops must be a multiple of {CROP_MULTIPLE} (the "
                f"network downsamples by 4 and upsamples back), e.g. {lower} or "
                f"{lower + CROP_MULTIPLE}"
            )
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
    if path := cfg.get("init_from"):
        try:
            torch_load(path)
        except FileReadError as err:
            raise ConfigError(f"init_from={path}: {err.reason}") from err


def prepare_styles(cfg: DictConfig) -> Callable[[Any], None] | None:
    """Put the run's styles (and ``init_from``) into ``model`` and ``module``; the returned
    function loads ``init_from``'s trained styles and shared weights into the module's new
    network (None without ``init_from``).

    Raises:
        ConfigError: ``init_from`` without ``styles`` that start with its styles and add one.
    """
    # torch: after the quick checks
    from stylenet.inference.model_file import load_network
    from stylenet.models import TransformerNet

    init_from = cfg.get("init_from")
    if not cfg.get("styles"):  # one style: the module takes style.image as the config says
        if init_from:
            raise ConfigError(
                "init_from needs styles=[...]: the model's styles, in order, then the new ones"
            )
        return None
    styles = resolve_styles(cfg)
    names = [s["name"] for s in styles]
    with open_dict(cfg):
        cfg.model.num_styles = len(styles)
        cfg.module.style_image = [s["image"] for s in styles]
        cfg.module.style_size = [s["size"] for s in styles]
        cfg.module.style_names = names
        cfg.module.style_scales = [float(s.get("style_scale", 1.0)) for s in styles]
        if not init_from:
            return None
        base, card = load_network(init_from)
        if not isinstance(base, TransformerNet):
            raise ConfigError(f"init_from={init_from}: a {card.network}, not a style model")
        known = card.style_names(base.num_styles)
        if names[: len(known)] != known or len(names) == len(known):
            raise ConfigError(
                f"init_from={init_from} carries styles {known}: styles=[...] must list them "
                f"first, in that order, then the new ones (got {names})"
            )
        cfg.model.base_channels = base.config.base_channels
        cfg.model.num_residual_blocks = base.config.num_residual_blocks
        cfg.module.train_styles = list(range(len(known), len(names)))
        if cfg.get("init_from_lr") is not None:
            cfg.optimizer.lr = cfg.init_from_lr

    def load_base(module: Any) -> None:
        module.net.load_state_dict(base.with_styles(len(names)).state_dict())

    return load_base
