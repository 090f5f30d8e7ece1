"""The slow reference: optimize the image itself (Gatys et al.) against the training loss.

Three modes share `PerceptualLoss` and `VGGFeatures` with training (no second loss):

- ``style``: content + style (+ TV), from the content photo or from noise (Gatys, Ecker &
  Bethge 2016, "Image Style Transfer Using Convolutional Neural Networks");
- ``texture``: style only, from noise, any output size (Gatys et al. 2015, "Texture Synthesis
  Using Convolutional Neural Networks");
- ``invert``: content only, from noise, at one layer (Mahendran & Vedaldi 2015, "Understanding
  Deep Image Representations by Inverting Them").

The loss network and its weights come from the training presets, ``configs/loss/johnson.yaml``
(VGG-16, Johnson's layers) or, for ``net="vgg19"``, ``configs/loss/gatys.yaml`` (VGG-19, content
at relu4_2, style at relu1_1 … relu5_1). TV regularization stays on in every mode: it is the
natural-image prior of Mahendran & Vedaldi and what makes inversion from noise work.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from itertools import pairwise
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import Tensor
from tqdm import tqdm

from stylenet.errors import ConfigError, StylenetError
from stylenet.inference.api import free_memory
from stylenet.inference.backends import resolve_device
from stylenet.losses import PerceptualLoss
from stylenet.losses.vgg import LAYERS
from stylenet.weights.store import arch_label

MODES = ("style", "texture", "invert")
# Inversion from noise settles the photo's overall brightness last (README, "The slow
# reference": 300 iterations leave it unsettled, 1000 reach ~30 dB).
DEFAULT_ITERATIONS = {"style": 300, "texture": 300, "invert": 1000}
# The loss preset (configs/loss/<name>.yaml) of each loss network.
NET_PRESETS = {"vgg16": "johnson", "vgg19": "gatys"}
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}
# (step, gradient change) pairs L-BFGS keeps, each the size of the image.
LBFGS_HISTORY = 50
# VGG conv widths per block, the same in VGG-16 and VGG-19 (Simonyan & Zisserman 2015, Table 1).
_BLOCK_CHANNELS = (64, 128, 256, 512, 512)


def loss_preset(name: str) -> dict[str, Any]:
    """The settings of ``configs/loss/<name>.yaml``: what ``stylenet-train loss=<name>`` uses.

    Raises:
        ConfigError: No such preset.
    """
    path = files("stylenet.configs").joinpath(f"loss/{name}.yaml")
    if not path.is_file():
        raise ConfigError(
            f"unknown loss preset {name!r}; expected one of {sorted(NET_PRESETS.values())}"
        )
    node = OmegaConf.to_container(OmegaConf.create(path.read_text()), resolve=True)
    assert isinstance(node, dict)
    return {str(k): v for k, v in node.items()}


def instantiate_loss(cfg: dict[str, Any]) -> PerceptualLoss:
    """Build the `PerceptualLoss` of a loss config (a preset, or what model.pt recorded) as
    ``stylenet-train`` does, with Hydra; a user error inside (an unknown layer, missing weights)
    comes out as itself, not wrapped in Hydra's InstantiationException."""
    try:
        loss: PerceptualLoss = instantiate(cfg)
    except InstantiationException as err:
        if isinstance(err.__cause__, StylenetError):
            raise err.__cause__ from None
        raise
    return loss


def learning_rate(optimizer: str, lr: float | None = None) -> float:
    """`lr`, checked, or the optimizer's default (`DEFAULT_LR`) for None.

    Raises:
        ConfigError: An unknown optimizer, or `lr` not a finite number > 0 (0 would leave the
            image where it started; a negative rate climbs the loss).
    """
    if optimizer not in DEFAULT_LR:
        raise ConfigError(f"optimizer must be one of {list(DEFAULT_LR)}, got {optimizer!r}")
    if lr is None:
        return DEFAULT_LR[optimizer]
    if not (math.isfinite(lr) and lr > 0):
        raise ConfigError(f"lr must be a finite number > 0, got {lr}")
    return float(lr)


@dataclass
class OptimizeResult:
    image: Tensor  # (1, 3, H, W) in [0, 1]
    history: list[dict[str, float]] = field(default_factory=list)  # loss terms per iteration
    seconds: float = 0.0

    @property
    def seconds_per_iteration(self) -> float:
        return self.seconds / max(1, len(self.history))


def optimize_image(
    loss: PerceptualLoss,
    init: Tensor,
    *,
    content: Tensor | None = None,
    iterations: int = 300,
    optimizer: str = "lbfgs",
    lr: float | None = None,
    progress: bool = True,
    callback: Callable[[int, Tensor], None] | None = None,
) -> OptimizeResult:
    """Minimize `loss` over the pixels of an image.

    Args:
        loss: The perceptual loss, its style set if it has style layers.
        init: (1, 3, H, W) starting image in [0, 1] (not modified).
        content: (1, 3, H, W) content photo for the content/pixel terms (None: unused).
        iterations: Loss evaluations (L-BFGS) or steps (Adam).
        optimizer: "lbfgs" (Gatys et al.) or "adam".
        lr: Learning rate, > 0; None: `DEFAULT_LR` (1 for L-BFGS, 0.02 for Adam).
        progress: tqdm bar with the loss terms.
        callback: Called as callback(iteration, image) at every loss evaluation (snapshots).

    Raises:
        ConfigError: An unknown optimizer, or a learning rate that is not a finite number > 0.
    """
    lr = learning_rate(optimizer, lr)
    # The loss network's device; a loss without VGG terms (TV and pixel only) has none.
    device = init.device if loss.vgg is None else next(loss.vgg.buffers()).device
    # contiguous: L-BFGS flattens gradients with view().
    image = init.detach().to(device).clamp(0, 1).contiguous().requires_grad_(True)
    target = image.detach() if content is None else content.to(device)
    opt: torch.optim.Optimizer
    if optimizer == "lbfgs":
        # One L-BFGS "step" runs up to max_iter evaluations; counting evaluations makes
        # iterations comparable between the two optimizers.
        opt = torch.optim.LBFGS(
            [image],
            lr=lr,
            max_iter=iterations,
            history_size=LBFGS_HISTORY,
            tolerance_grad=0.0,
            tolerance_change=0.0,
        )
    else:
        opt = torch.optim.Adam([image], lr=lr)
    result = OptimizeResult(image=image.detach())
    bar = tqdm(total=iterations, desc="optimize", disable=not progress, unit="it")
    start = time.perf_counter()

    def closure() -> Tensor:
        opt.zero_grad()
        terms = loss(image, target)
        terms["total"].backward()
        result.history.append({k: float(v.detach()) for k, v in terms.items()})
        bar.set_postfix({k: f"{v:.3g}" for k, v in result.history[-1].items()})
        bar.update(1)
        if callback is not None:
            callback(len(result.history), image.detach().clamp(0, 1))
        return terms["total"]

    while len(result.history) < iterations:
        before = len(result.history)
        opt.step(closure)
        with torch.no_grad():
            image.clamp_(0, 1)  # stay a valid image between steps
        if len(result.history) == before:  # L-BFGS converged and stopped evaluating
            break
    bar.close()
    result.seconds = time.perf_counter() - start
    result.image = image.detach()
    return result


def loss_config(
    mode: str,
    *,
    net: str = "vgg16",
    content_layer: str | None = None,
    style_layers: Sequence[str] | None = None,
    content_weight: float | None = None,
    style_weight: float | None = None,
    tv_weight: float | None = None,
    vgg_weights: str | None = None,
) -> dict[str, Any]:
    """The loss config of `net`'s preset (`NET_PRESETS`), restricted to what `mode` optimizes.

    Every argument left None takes the preset's value.

    Raises:
        ConfigError: Unknown `mode` or `net`.
    """
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
    if net not in NET_PRESETS:
        raise ConfigError(f"net must be one of {list(NET_PRESETS)}, got {net!r}")
    cfg = loss_preset(NET_PRESETS[net])
    if content_layer is not None:
        cfg["content_layers"] = [content_layer]
    if style_layers is not None:
        cfg["style_layers"] = {name: 1.0 for name in style_layers}
    for key, value in (
        ("content_weight", content_weight),
        ("style_weight", style_weight),
        ("tv_weight", tv_weight),
    ):
        if value is not None:
            cfg[key] = value
    if vgg_weights is not None:
        cfg["vgg"]["weights"] = vgg_weights
    if mode == "texture":
        cfg["content_layers"], cfg["content_weight"] = [], 0.0
    if mode == "invert":
        cfg["style_layers"], cfg["style_weight"] = {}, 0.0
    return cfg


def build_loss(mode: str, **options: Any) -> PerceptualLoss:
    """The `PerceptualLoss` of `loss_config(mode, **options)`.

    Raises:
        ConfigError: Unknown `mode` or `net`, or a layer name the network does not have.
        WeightsFileError: The loss network's weight file is missing or unreadable.
    """
    return instantiate_loss(loss_config(mode, **options))


def _vgg_path(cfg: Mapping[str, Any]) -> tuple[str, list[str]]:
    """(arch, the names of the VGG's modules up to the deepest layer the loss `cfg` reads);
    unknown layer names are left for `VGGFeatures` to refuse."""
    vgg = cfg.get("vgg") or {}
    arch = str(vgg.get("arch") or "vgg16")  # VGG16Features (loss=johnson) takes no arch
    names = LAYERS.get(arch, ())
    wanted = [*(cfg.get("content_layers") or ()), *(cfg.get("style_layers") or ())]
    used = [names.index(n) for n in wanted if n in names]
    return arch, list(names[: max(used) + 1]) if used else []


def min_side(cfg: Mapping[str, Any]) -> int:
    """The smallest image side the loss `cfg` can measure: each 2×2 max-pool before its deepest
    layer halves the side (rounding down) and must leave at least 1 px."""
    _, path = _vgg_path(cfg)
    return 2 ** sum(name.startswith("pool") for name in path)


def memory_needed(
    cfg: Mapping[str, Any], height: int, width: int, *, optimizer: str | None = "lbfgs"
) -> int:
    """Estimated peak bytes of optimizing an image of this size against the loss `cfg`: every
    VGG output up to the deepest layer, kept for the backward pass (the ReLUs are not in place;
    max-pools keep int64 indices too), and the optimizer's copies of the image (L-BFGS: its
    history). ``optimizer=None``: one pass without gradients (the style image's targets).
    """
    _, path = _vgg_path(cfg)
    outputs: list[float] = [3.0]  # floats per input pixel of each output, the image first
    area = 1.0
    for name in path:
        channels = _BLOCK_CHANNELS[int(name[4]) - 1]  # conv3_2, relu3_2, pool3: block 3
        if name.startswith("pool"):
            area /= 4
            outputs.append(3 * channels * area)  # the output and its int64 indices
        else:
            outputs.append(channels * area)
    if optimizer is None:  # without autograd only an input and an output live at once
        floats = max((a + b for a, b in pairwise(outputs)), default=3.0)
        return int(height * width * 4 * floats)
    copies = 2 * LBFGS_HISTORY + 6 if optimizer == "lbfgs" else 6  # + image, grad, moments
    return int(height * width * (4 * sum(outputs) + 12 * copies))


def check_sizes(
    cfg: Mapping[str, Any],
    image: tuple[int, int],
    style: tuple[int, int] | None = None,
    *,
    optimizer: str = "lbfgs",
    device: str | torch.device | None = None,
) -> None:
    """Refuse, before any work, an image to optimize (or a style image to take targets from)
    that the loss `cfg` cannot measure (a side under `min_side`) or whose optimization cannot fit
    in the free memory of `device` (`memory_needed`).

    Args:
        cfg: A loss config (`loss_config`).
        image: (H, W) of the image to optimize.
        style: (H, W) of the style image, if any.
        optimizer: ``"lbfgs"`` or ``"adam"``.
        device: Where it would run (None: the default device).

    Raises:
        ConfigError: The message gives the size, the limit and the option to change.
    """
    dev = resolve_device(device)
    _check_size(cfg, image, "the image", "--size", optimizer, dev)
    if style is not None:  # its targets: one pass without gradients
        _check_size(cfg, style, "the style image", "--style-size", None, dev)


def _check_size(
    cfg: Mapping[str, Any],
    size: tuple[int, int],
    what: str,
    flag: str,
    optimizer: str | None,
    device: torch.device,
) -> None:
    (height, width), (arch, path) = size, _vgg_path(cfg)
    smallest = min_side(cfg)
    if path and min(height, width) < smallest:
        raise ConfigError(
            f"{what} ({width}×{height} px) is too small for {arch_label(arch)} up to "
            f"{path[-1]}: each side needs at least {smallest} px (raise {flag})"
        )
    need, free = memory_needed(cfg, height, width, optimizer=optimizer), free_memory(device)
    if need > free:
        fits = int(max(height, width) * math.sqrt(free / need))
        raise ConfigError(
            f"{what} ({width}×{height} px) needs about {_bytes(need)} of memory, more than the "
            f"{_bytes(free)} free on {device} (lower {flag} to {fits} px or less)"
        )


def _bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 1e6:.2f} MB"


def optimize(
    mode: str,
    *,
    content: Tensor | None = None,
    style: Tensor | None = None,
    size: int = 256,
    init: str | None = None,
    iterations: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    callback: Callable[[int, Tensor], None] | None = None,
    optimizer: str = "lbfgs",
    lr: float | None = None,
    **loss_options: Any,
) -> OptimizeResult:
    """Run one mode end to end: build the loss, set its style, pick the start, optimize.

    Args:
        mode: ``"style"``, ``"texture"`` or ``"invert"``.
        content: (1, 3, H, W) content photo in [0, 1] (style, invert).
        style: (1, 3, H, W) style image in [0, 1] (style, texture).
        size: Side of the square output when there is no content photo (texture).
        init: ``"content"`` or ``"noise"``; None: the photo for style, noise otherwise.
        iterations: Default `DEFAULT_ITERATIONS[mode]`.
        seed: Seeds the noise start.
        device: Default CUDA, else MPS, else the CPU.
        progress, callback, optimizer, lr: As in `optimize_image`.
        **loss_options: Passed to `loss_config` (net, layers, weights, vgg_weights).

    Raises:
        ConfigError: A mode without the images it needs, a bad loss option, an image too small
            for the loss network's layers or too large for the free memory (`check_sizes`),
            or a bad learning rate.
    """
    if mode in ("style", "invert") and content is None:
        raise ConfigError(f"mode {mode} needs a content photo (--content)")
    if mode in ("style", "texture") and style is None:
        raise ConfigError(f"mode {mode} needs a style image (--style)")
    lr = learning_rate(optimizer, lr)
    cfg = loss_config(mode, **loss_options)
    shape = content.shape if content is not None else (1, 3, size, size)
    # Before the loss network is loaded and any memory taken: too small a size fails deep in
    # VGG, too large a one in an allocation of many GB.
    check_sizes(
        cfg,
        (shape[-2], shape[-1]),
        None if style is None or mode == "invert" else (style.shape[-2], style.shape[-1]),
        optimizer=optimizer,
        device=device,
    )
    loss = instantiate_loss(cfg).to(resolve_device(device))
    if style is not None and mode != "invert":
        loss.set_style(style)
    torch.manual_seed(seed)
    from_photo = init == "content" or (init is None and mode == "style")
    start = content.clone() if from_photo and content is not None else torch.rand(shape)
    return optimize_image(
        loss,
        start,
        content=content,
        iterations=iterations or DEFAULT_ITERATIONS[mode],
        optimizer=optimizer,
        lr=lr,
        progress=progress,
        callback=callback,
    )
