"""The terms of the perceptual loss (Johnson et al. 2016, Sec. 3), one `nn.Module` each.

A term never runs the VGG itself. It says which VGG layers it reads (`LossTerm.layers` of the
output, `LossTerm.target_layers` of the target); `PerceptualLoss` runs the VGG once on the output
for all terms (and once, under no_grad, on the target) and hands every term the same `TermInputs`.
Each term returns its value already multiplied by its weight.

Two terms measure the network rather than its output (`NeedsTransform`): how much the output
changes under small input noise (``noise``) and how far it is from moving with the picture under
a small camera motion (``motion``). Each runs the network once more on a changed copy of the
batch (no VGG pass); `PerceptualLoss` hands them the network's input and the network as
``TermInputs.source`` and ``TermInputs.transform``, and leaves them out where it has neither (an
evaluation of saved outputs).

`TERM_NAMES` is the one list of term names: the keys of the loss dict, the logged
``train/<name>``, the config's ``loss.<name>_weight`` and the evaluation report's columns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from stylenet.errors import ConfigError
from stylenet.losses import functional as LF
from stylenet.losses.motion import random_motion, warp


class TermInputs(NamedTuple):
    """What `PerceptualLoss` hands each term for one batch."""

    output: Tensor  # (B, 3, H, W) in [0, 1]: the network's output (gradients flow to it)
    target: Tensor  # (B, 3, H, W) in [0, 1]: the content photo, or the high-res image
    features: Mapping[str, Tensor]  # {layer: (B, C, H', W')} of `output`, every term's layers
    target_features: Mapping[str, Tensor]  # of `target`, no grad: the terms' target_layers only
    style_index: Tensor | None  # (B,) each image's style when several are set, else None
    # The network's input (B, 3, h, w) and the network itself (input -> output, same style),
    # for the terms that run it again (`NeedsTransform`); None where the caller has no network.
    source: Tensor | None = None
    transform: Callable[[Tensor], Tensor] | None = None


class LossTerm(nn.Module):
    """One named, weighted term of `PerceptualLoss`.

    Args:
        weight: The term's factor (λ in Johnson Eq. 5).
    """

    name: ClassVar[str]  # the loss dict's key; the config's weight is ``<name>_weight``
    needs_transform: ClassVar[bool] = False  # runs the network (TermInputs.transform) again
    layers: tuple[str, ...] = ()  # VGG layers of the output's pass it reads (none: no VGG)
    target_layers: tuple[str, ...] = ()  # VGG layers of the target's pass (under no_grad)

    def __init__(self, weight: float) -> None:
        super().__init__()
        self.weight = float(weight)

    def forward(self, inputs: TermInputs) -> Tensor:
        """The weighted term: a float32 scalar."""
        raise NotImplementedError


class ContentLoss(LossTerm):
    """Feature reconstruction loss (Johnson Eq. 2), summed over `layers`.

    Args:
        layers: VGG layers compared (Johnson Sec. 4.1: relu2_2).
        weight: λ_c.
    """

    name = "content"

    def __init__(self, layers: Sequence[str], weight: float) -> None:
        super().__init__(weight)
        if not layers:
            raise ValueError("ContentLoss needs at least one layer")
        self.layers = self.target_layers = tuple(layers)

    def forward(self, inputs: TermInputs) -> Tensor:
        out, target = inputs.features, inputs.target_features
        return self.weight * _sum([LF.content_loss(out[n], target[n]) for n in self.layers])


class StyleLoss(LossTerm):
    """Style reconstruction loss (Johnson Eq. 3-4): the layer-weighted sum of Gram distances to
    the style images' Grams, which `set_targets` computes once and stores as non-persistent
    buffers ``gram_<layer>`` (N, C, C): recomputed from the paintings, never checkpointed.

    Args:
        layers: {layer: weight} (Johnson Sec. 4.1: relu1_2, relu2_2, relu3_3, relu4_3, equal).
        weight: λ_s.
    """

    name = "style"
    style_scales: Tensor  # (N,) buffer: a factor on `weight` per style

    def __init__(self, layers: Mapping[str, float], weight: float) -> None:
        super().__init__(weight)
        if not layers:
            raise ValueError("StyleLoss needs at least one layer")
        self.layer_weights = {str(k): float(v) for k, v in layers.items()}
        self.layers = tuple(self.layer_weights)
        self.num_styles = 0

    @torch.no_grad()
    def set_targets(self, features: Iterable[Mapping[str, Tensor]], style_scales: Tensor) -> None:
        """Store the Grams of N style images, style k at index k.

        Args:
            features: Per style image, its VGG features {layer: (1, C, H', W')} (an iterable,
                so the caller can compute one image's features at a time).
            style_scales: (N,) a factor on `weight` per style.
        """
        grams: dict[str, list[Tensor]] = {name: [] for name in self.layers}
        for feats in features:
            for name in self.layers:
                grams[name].append(LF.gram_matrix(feats[name]))
        for name in self.layers:
            self.register_buffer(f"gram_{name}", torch.cat(grams[name]), persistent=False)
        self.register_buffer("style_scales", style_scales, persistent=False)
        self.num_styles = len(style_scales)

    def target_gram(self, layer: str, style_index: Tensor | None = None) -> Tensor:
        """The target Grams of `layer`: (N, C, C), or (B, C, C) for the styles in
        `style_index` (B,)."""
        grams = self.get_buffer(f"gram_{layer}")
        return grams if style_index is None else grams[style_index]

    def forward(self, inputs: TermInputs) -> Tensor:
        if not self.num_styles:
            raise RuntimeError("PerceptualLoss.set_style(image) must be called before the loss")
        index = inputs.style_index
        # Per-style weights: each image's term scaled by its own style's factor (one style: its
        # factor for every image). (B,) or (1,)
        scales = self.style_scales[:1] if index is None else self.style_scales[index]
        return self.weight * _sum(
            [
                w
                * LF.style_loss(
                    LF.gram_matrix(inputs.features[n]), self.target_gram(n, index), scales
                )
                for n, w in self.layer_weights.items()
            ]
        )


class TotalVariation(LossTerm):
    """Total variation regularizer of the output (Johnson Sec. 3.3); needs no VGG.

    Args:
        weight: λ_TV.
    """

    name = "tv"

    def forward(self, inputs: TermInputs) -> Tensor:
        return self.weight * LF.total_variation(inputs.output)


class PixelLoss(LossTerm):
    """Pixel loss against the target (Johnson Sec. 3.3); needs no VGG.

    Args:
        weight: λ_p.
    """

    name = "pixel"

    def forward(self, inputs: TermInputs) -> Tensor:
        return self.weight * LF.pixel_loss(inputs.output, inputs.target)


class NeedsTransform(LossTerm):
    """A term of the network's behaviour: it runs `TermInputs.transform` on a changed copy of
    `TermInputs.source` and compares with `TermInputs.output`. Gradients flow through both
    passes. Squared differences in [0, 1] pixel units, computed in float32."""

    needs_transform = True

    def network(self, inputs: TermInputs) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
        if inputs.source is None or inputs.transform is None:
            raise ValueError(f"the {self.name!r} term needs the network's input and the network")
        return inputs.source, inputs.transform


class NoiseStability(NeedsTransform):
    """Output change under small input noise: mean ‖f(x + n) − f(x)‖², n ~ N(0, σ²) per pixel
    and channel, the input clamped to [0, 1].

    Gupta et al. 2017 ("Characterizing and Improving Stability in Neural Style Transfer") trace
    frame-to-frame flicker to this instability and train it away with the same kind of term;
    sensor noise in a still shot is its pure form.

    Args:
        weight: λ_noise.
        sigma: Noise standard deviation in [0, 1] units (0.02 ≈ 5/255).
    """

    name = "noise"

    def __init__(self, weight: float, sigma: float) -> None:
        super().__init__(weight)
        if not (math.isfinite(sigma) and sigma > 0):
            raise ConfigError(f"loss.noise_sigma={sigma}: must be a finite number > 0")
        self.sigma = float(sigma)

    def forward(self, inputs: TermInputs) -> Tensor:
        x, f = self.network(inputs)
        noisy = (x + self.sigma * torch.randn_like(x)).clamp(0, 1)
        diff = f(noisy).float() - inputs.output.float()
        return self.weight * diff.square().mean()


class MotionStability(NeedsTransform):
    """Equivariance to small camera motion without optical flow: a random shift, zoom and
    rotation W per image, known exactly, and mean ‖f(W(x)) − W(f(x))‖² over the pixels W keeps
    inside the picture.

    The warp of a whole frame is the training-time stand-in for a video's motion, as in
    ReReVST's compound regularization (Wang et al. 2020, "Consistent Video Style Transfer via
    Relaxation and Regularization"): a network that commutes with small motions makes the
    frames of a moving camera agree, with no flow at training time.

    With ``noise`` > 0 the moved input also gets Gaussian noise, f(W(x) + n) against W(f(x)):
    ReReVST's compound form, which trains stability to noise and to motion with the one extra
    pass of the network (the noise term alone costs another).

    Args:
        weight: λ_motion.
        max_shift: Largest translation per axis, fraction of the side (0.03 ≈ 4 px at 128²).
        max_zoom: Largest relative zoom in or out.
        max_angle: Largest rotation in degrees.
        noise: Standard deviation of the noise added to the moved input, in [0, 1] units.
    """

    name = "motion"

    def __init__(
        self,
        weight: float,
        max_shift: float,
        max_zoom: float,
        max_angle: float,
        noise: float = 0.0,
    ) -> None:
        super().__init__(weight)
        for key, value in (
            ("motion_shift", max_shift),
            ("motion_zoom", max_zoom),
            ("motion_angle", max_angle),
            ("motion_noise", noise),
        ):
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"loss.{key}={value}: must be a finite number >= 0")
        if max_zoom >= 1:
            raise ConfigError(f"loss.motion_zoom={max_zoom}: must be below 1 (a relative zoom)")
        self.max_shift, self.max_zoom, self.max_angle = max_shift, max_zoom, max_angle
        self.noise = noise

    def forward(self, inputs: TermInputs) -> Tensor:
        x, f = self.network(inputs)
        h, w = x.shape[-2:]
        theta = random_motion(
            x.shape[0],
            max_shift=self.max_shift,
            max_zoom=self.max_zoom,
            max_angle=self.max_angle,
            aspect=w / h,
            device=x.device,
        )
        moved_input, _ = warp(x, theta)
        if self.noise:
            moved_input = (moved_input + self.noise * torch.randn_like(moved_input)).clamp(0, 1)
        moved_output, visible = warp(inputs.output.float(), theta)
        diff = (f(moved_input).float() - moved_output).square() * visible
        pixels = visible.sum() * diff.shape[1]
        return self.weight * diff.sum() / pixels.clamp_min(1)


# The one list of term names, in the order the loss dict, logs and reports show them.
TERM_NAMES: tuple[str, ...] = tuple(
    t.name
    for t in (ContentLoss, StyleLoss, TotalVariation, PixelLoss, NoiseStability, MotionStability)
)


def _sum(terms: list[Tensor]) -> Tensor:
    """The sum of scalar tensors (Python's `sum` starts from the int 0)."""
    return torch.stack(terms).sum()
