"""Choosing a style of a multi-style model: by name or index, or a mix of several.

A model's card names its styles, in the order of the network's style weights
(`ModelCard.style_names`; "0", "1", ... where it does not). A choice becomes (N,) style weights,
which `TransformerNet.bind` folds into a one-style network.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from stylenet.errors import ConfigError

StyleKey = str | int


def parse_mix(text: str) -> dict[str, float]:
    """``"mosaic:0.7,candy:0.3"`` → {"mosaic": 0.7, "candy": 0.3}.

    Raises:
        ConfigError: Not NAME:WEIGHT pairs separated by commas, or a weight that is not a
            finite number >= 0.
    """
    mix: dict[str, float] = {}
    for part in text.split(","):
        name, sep, weight = part.strip().rpartition(":")
        try:
            if not sep or not name:
                raise ValueError
            mix[name] = float(weight)
        except ValueError:
            raise ConfigError(
                f"--mix {text!r}: expected NAME:WEIGHT pairs separated by commas, e.g. "
                "mosaic:0.7,candy:0.3"
            ) from None
        if not _valid_weight(mix[name]):
            raise ConfigError(
                f"--mix {text!r}: the weight of {name!r} must be a finite number >= 0, "
                f"got {weight.strip()}"
            )
    return mix


def _valid_weight(value: float) -> bool:
    # inf would scale every other style to 0 and itself to nan (inf / inf): a black image.
    return math.isfinite(value) and value >= 0


def style_index(names: Sequence[str], key: StyleKey) -> int:
    """The index of a style given by name or index (a digit string that is not a name counts
    as an index).

    Raises:
        ConfigError: No such style; the message lists them.
    """
    if isinstance(key, int) or (isinstance(key, str) and key.isdigit() and key not in names):
        i = int(key)
        if 0 <= i < len(names):
            return i
    elif key in names:
        return names.index(str(key))
    raise ConfigError(f"no style {key!r} in this model; its styles are {', '.join(names)}")


def style_weights(
    names: Sequence[str],
    *,
    style: StyleKey | None = None,
    mix: Mapping[StyleKey, float] | None = None,
) -> Tensor:
    """(N,) weights for one style (one-hot) or a mix (non-negative, scaled to sum to 1).

    Raises:
        ConfigError: Both or neither given (for N > 1), an unknown style, or bad mix weights
            (each must be a finite number >= 0, not all 0).
    """
    n = len(names)
    if style is not None and mix is not None:
        raise ConfigError("give a style or a mix, not both")
    weights = torch.zeros(n)
    if mix is not None:
        # In float64 and relative to the largest: finite weights as large as 1e300 would
        # overflow float32 (to inf, and the mix to nan).
        mixed = torch.zeros(n, dtype=torch.float64)
        for key, value in mix.items():
            if not _valid_weight(float(value)):
                raise ConfigError(
                    f"mix weight of {key!r} must be a finite number >= 0, got {value}"
                )
            mixed[style_index(names, key)] += float(value)
        if not mixed.max() > 0:
            raise ConfigError("the mix weights sum to 0")
        mixed /= mixed.max()
        return (mixed / mixed.sum()).float()
    if style is None:
        if n > 1:
            raise ConfigError(
                f"this model carries {n} styles ({', '.join(names)}): choose one by name or "
                "index, or a mix"
            )
        style = 0
    weights[style_index(names, style)] = 1.0
    return weights
