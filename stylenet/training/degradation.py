"""Training pairs for super-resolution (``task=superres``): (low-res, high-res) crops made with
the paper's degradation (`stylenet.models.degradation.degrade`, Johnson et al. 2016, Sec. 4.2) in
the data loaders, and the task's input check.
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor
from torch.utils.data import Dataset

from stylenet.errors import ConfigError
from stylenet.models import SuperResolutionNet
from stylenet.models.degradation import degrade

__all__ = ["SuperResolutionPairs", "check_superres_inputs"]


class SuperResolutionPairs(Dataset[tuple[Tensor, Tensor]]):
    """(low-res input, high-res target) pairs made from a dataset of high-resolution crops.

    Each item is ``(degrade(hr, scale), hr)``: (3, S / scale, S / scale) and (3, S, S) for the
    (3, S, S) crops of e.g. `PhotoFolder` (Johnson et al. 2016, Sec. 4.2: 288×288 crops).

    Args:
        crops: Dataset of (3, S, S) float crops in [0, 1]; its ``image_size`` attribute, where
            it has one, is checked up front, and every crop's size as it is read.
        scale: Upsampling factor of the network (4 or 8 in the paper).

    Raises:
        ConfigError: S is not a multiple of `scale`, or S / scale is under the network's minimum
            input side (the message names ``data.image_size`` and ``scale``).
    """

    def __init__(self, crops: Dataset[Tensor], *, scale: int) -> None:
        if scale < 1:
            raise ConfigError(f"scale must be >= 1, got {scale}")
        self.crops = crops
        self.scale = scale
        image_size = getattr(crops, "image_size", None)
        if isinstance(image_size, int):
            self._check_size(image_size, image_size)

    def _check_size(self, h: int, w: int) -> None:
        s = self.scale
        if h % s or w % s:
            size = h if h == w else f"{h}×{w}"
            raise ConfigError(
                f"data.image_size={size} is not a multiple of scale={s}: the high-resolution "
                f"crops must divide into {s}×{s} blocks (e.g. data.image_size="
                f"{max(s * math.ceil(min(h, w) / s), s * SuperResolutionNet.min_side)})"
            )
        if min(h, w) // s < SuperResolutionNet.min_side:
            raise ConfigError(
                f"data.image_size={min(h, w)} with scale={s} gives {min(h, w) // s}-px "
                f"low-resolution inputs; the network needs at least {SuperResolutionNet.min_side}"
                f" (data.image_size >= {s * SuperResolutionNet.min_side})"
            )

    def __len__(self) -> int:
        return len(self.crops)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        hr = self.crops[index]
        self._check_size(hr.shape[-2], hr.shape[-1])
        return degrade(hr, self.scale), hr


class _NoCrops(Dataset[Tensor]):
    """No data: what `check_superres_inputs` checks sizes against."""

    def __getitem__(self, index: int) -> Tensor:
        raise IndexError(index)


def check_superres_inputs(cfg: Any) -> None:
    """``task=superres``'s input check (``task.check_inputs``): the scale is one the network
    takes and the crops divide into low-resolution inputs it can run on, before anything is
    built.

    Raises:
        ConfigError: Naming ``scale`` or ``data.image_size`` / ``data.val_image_size``.
    """
    scale = cfg.get("scale")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 2 or scale & (scale - 1):
        raise ConfigError(f"scale={scale}: must be a power of 2 >= 2 (the paper trains 4 and 8)")
    data = cfg.get("data") or {}
    for key in ("image_size", "val_image_size"):
        size = data.get(key)
        if isinstance(size, int):
            try:
                SuperResolutionPairs(_NoCrops(), scale=scale)._check_size(size, size)
            except ConfigError as err:
                raise ConfigError(str(err).replace("data.image_size", f"data.{key}")) from None
