"""The perceptual loss of Johnson et al. 2016: feature reconstruction (content) + style
reconstruction (Gram matrices) + total variation (+ optional pixel loss), the VGG terms measured
by a frozen VGG-16. Each term is a module of `stylenet.losses.terms`; `PerceptualLoss` builds
them, runs the VGG once for all of them and sums their weighted values."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from stylenet.errors import ConfigError
from stylenet.losses.terms import (
    TERM_NAMES,
    ContentLoss,
    LossTerm,
    MotionStability,
    NoiseStability,
    PixelLoss,
    StyleLoss,
    TermInputs,
    TotalVariation,
)
from stylenet.losses.vgg import VGG16Features


class PerceptualLoss(nn.Module):
    """Weighted sum of named terms: content, style, TV and pixel (`stylenet.losses.terms`).

    Only the terms with a weight > 0 (and, for content and style, at least one layer) are built
    and computed. The VGG runs once on the output, for the layers of all of them, and once under
    no_grad on the target, only as deep as the content layers; with no VGG term (a pixel/TV-only
    loss) no VGG is built at all and `vgg` is None.

    Call `set_style` once with the style image (or `set_styles` with several, for a multi-style
    network); the Gram matrices of their features are stored as non-persistent buffers
    (recomputed, never checkpointed), (N, C, C) per layer.

    Args:
        content_layers: VGG layers for the feature reconstruction loss (Johnson: relu2_2).
        style_layers: {layer: weight} for the style reconstruction loss
            (Johnson: relu1_2, relu2_2, relu3_3, relu4_3, equal weights).
        content_weight: λ_c.
        style_weight: λ_s, multiplies the weighted sum over style layers.
        tv_weight: λ_TV.
        pixel_weight: Weight of the pixel loss (0 disables it).
        noise_weight: Weight of the noise-stability term (`NoiseStability`; 0 disables it).
        motion_weight: Weight of the motion-stability term (`MotionStability`; 0 disables it).
        noise_sigma: The noise term's standard deviation, in [0, 1] units.
        motion_shift: The motion term's largest shift, as a fraction of the side.
        motion_zoom: The motion term's largest relative zoom.
        motion_angle: The motion term's largest rotation, in degrees.
        motion_noise: Noise added to the motion term's moved input (its compound form).
        vgg: The loss network, or a factory called with the list of needed layers
            (e.g. ``functools.partial(VGG16Features, weights=path)``); None builds a
            `VGG16Features` with the default weight lookup. Neither is used when no term reads
            VGG features.
    """

    def __init__(
        self,
        *,
        content_layers: Sequence[str] = ("relu2_2",),
        style_layers: Mapping[str, float] | Sequence[str] = (
            "relu1_2",
            "relu2_2",
            "relu3_3",
            "relu4_3",
        ),
        content_weight: float = 1.0,
        style_weight: float = 1.0,
        tv_weight: float = 0.0,
        pixel_weight: float = 0.0,
        noise_weight: float = 0.0,
        motion_weight: float = 0.0,
        noise_sigma: float = 0.02,
        motion_shift: float = 0.03,
        motion_zoom: float = 0.03,
        motion_angle: float = 2.0,
        motion_noise: float = 0.0,
        vgg: nn.Module | Callable[..., nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(style_layers, Mapping):
            style_layers = {name: 1.0 for name in style_layers}
        self.content_layers = list(content_layers)
        self.style_layers = {str(k): float(v) for k, v in style_layers.items()}
        self.content_weight = float(content_weight)
        self.style_weight = float(style_weight)
        self.tv_weight = float(tv_weight)
        self.pixel_weight = float(pixel_weight)
        self.noise_weight = float(noise_weight)
        self.motion_weight = float(motion_weight)
        weights = {
            **{f"{name}_weight": value for name, value in self.term_weights.items()},
            **{f"style_layers.{k}": v for k, v in self.style_layers.items()},
        }
        for name, value in weights.items():
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name}={value}: loss weights must be finite and >= 0")

        terms: list[LossTerm] = []
        if self.content_weight and self.content_layers:
            terms.append(ContentLoss(self.content_layers, self.content_weight))
        if self.style_weight and self.style_layers:
            terms.append(StyleLoss(self.style_layers, self.style_weight))
        if self.tv_weight:
            terms.append(TotalVariation(self.tv_weight))
        if self.pixel_weight:
            terms.append(PixelLoss(self.pixel_weight))
        if self.noise_weight:
            terms.append(NoiseStability(self.noise_weight, float(noise_sigma)))
        if self.motion_weight:
            terms.append(
                MotionStability(
                    self.motion_weight,
                    float(motion_shift),
                    float(motion_zoom),
                    float(motion_angle),
                    float(motion_noise),
                )
            )
        self.terms = nn.ModuleDict({term.name: term for term in terms})
        # Content and style given layers are in every loss dict, zero when their weight is 0
        # (a style run's logs and reports always have both columns); a loss without style
        # layers (super-resolution) has no style key.
        self.zero_terms = [
            name
            for name, layers in (
                (ContentLoss.name, self.content_layers),
                (StyleLoss.name, self.style_layers),
            )
            if layers and name not in self.terms
        ]
        # What the one VGG pass on the output, and the one on the target, return: ordered,
        # de-duplicated layer names.
        self.vgg_layers = list(dict.fromkeys(n for term in terms for n in term.layers))
        self.vgg_target_layers = list(
            dict.fromkeys(n for term in terms for n in term.target_layers)
        )

        self.vgg: nn.Module | None = None
        if self.vgg_layers:
            if vgg is None:
                vgg = VGG16Features(self.vgg_layers)
            elif not isinstance(vgg, nn.Module):
                vgg = vgg(layers=self.vgg_layers)
            self.vgg = vgg
        self.num_styles = 0

    @property
    def term_weights(self) -> dict[str, float]:
        """{term name: weight} for every term of `TERM_NAMES`, 0 for those switched off."""
        return {name: float(getattr(self, f"{name}_weight")) for name in TERM_NAMES}

    def _style_term(self) -> StyleLoss:
        if StyleLoss.name not in self.terms:
            raise RuntimeError(
                "this loss has no style term (style_weight is 0 or style_layers is empty)"
            )
        term = self.terms[StyleLoss.name]
        assert isinstance(term, StyleLoss)
        return term

    @property
    def style_scales(self) -> Tensor:
        """(N,) the per-style factors on `style_weight` (buffer of the style term)."""
        return self._style_term().style_scales

    def set_style(self, style_image: Tensor) -> None:
        """Compute and store the target Gram matrices of one style image.

        Args:
            style_image: (3, H, W) or (1, 3, H, W) in [0, 1].
        """
        self.set_styles([style_image])

    @torch.no_grad()
    def set_styles(
        self, style_images: Sequence[Tensor], style_scales: Sequence[float] | None = None
    ) -> None:
        """Compute and store the target Grams of N style images (any sizes), style k at index k.
        Without a style term (style weight 0) only N is kept: there is nothing to compare.

        Args:
            style_images: Each (3, H, W) or (1, 3, H, W) in [0, 1].
            style_scales: A factor on `style_weight` per style, for a painting that needs a
                stronger or weaker style term than the others (default: 1 each).
        """
        if not style_images:
            raise ValueError("set_styles needs at least one style image")
        images = [image.unsqueeze(0) if image.ndim == 3 else image for image in style_images]
        for image in images:
            if image.ndim != 4 or image.shape[:2] != (1, 3):
                raise ValueError(f"style image must be (1, 3, H, W), got {tuple(image.shape)}")
        scales = [1.0] * len(images) if style_scales is None else list(style_scales)
        if len(scales) != len(images) or not all(math.isfinite(x) and x >= 0 for x in scales):
            raise ConfigError(
                f"style scales must be {len(images)} finite numbers >= 0, got {scales}"
            )
        if StyleLoss.name in self.terms:
            style, vgg = self._style_term(), self.vgg
            assert vgg is not None  # a style term reads VGG layers
            device = next(vgg.buffers()).device

            def features() -> Iterator[dict[str, Tensor]]:
                # One painting's features at a time: they can be large.
                for image in images:
                    yield vgg(image.to(device=device, dtype=torch.float32), layers=style.layers)

            style.set_targets(features(), torch.tensor(scales, dtype=torch.float32, device=device))
        self.num_styles = len(images)

    def target_gram(self, layer: str, style_index: Tensor | None = None) -> Tensor:
        """The target Grams of `layer`: (N, C, C), or (B, C, C) for the styles in
        `style_index` (B,)."""
        return self._style_term().target_gram(layer, style_index)

    @property
    def needs_transform(self) -> bool:
        """Whether a term runs the network again (noise, motion): `forward` computes those
        only when given ``source`` and ``transform``."""
        return any(term.needs_transform for term in self.terms.values())

    def forward(
        self,
        output: Tensor,
        target: Tensor,
        style_index: Tensor | None = None,
        *,
        source: Tensor | None = None,
        transform: Callable[[Tensor], Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """Loss terms for `output` against `target` (the content photo; for super-resolution
        the high-res image), both (B, 3, H, W) in [0, 1]; with several styles set,
        `style_index` (B,) names each image's style. `source` (the network's input) and
        `transform` (the network, same style) feed the stability terms; without them those
        terms are left out.

        Returns:
            {"content", "style", "tv", ["pixel", "noise", "motion"], "total"} (`TERM_NAMES`
            order): each term already multiplied by its weight, so ``total`` is their sum.
            Terms whose weight is 0 are omitted, except content and style, which are then 0.
        """
        if style_index is None and self.num_styles > 1:
            raise ValueError(f"{self.num_styles} styles are set: pass style_index (B,)")
        features: dict[str, Tensor] = {}
        target_features: dict[str, Tensor] = {}
        if self.vgg is not None:
            features = self.vgg(output, layers=self.vgg_layers)
            if self.vgg_target_layers:
                with torch.no_grad():
                    # Only as deep as the content layers: relu2_2 is 4 of VGG-16's 13 convs,
                    # and at 256² about a third of the MACs up to relu4_3.
                    target_features = self.vgg(target, layers=self.vgg_target_layers)
        inputs = TermInputs(
            output, target, features, target_features, style_index, source, transform
        )
        terms: dict[str, Tensor] = {}
        for name in TERM_NAMES:
            if name in self.terms and (
                transform is not None or not self.terms[name].needs_transform
            ):
                terms[name] = self.terms[name](inputs)
            elif name in self.zero_terms:
                terms[name] = output.new_zeros((), dtype=torch.float32)
        # The sum of scalar tensors (Python's `sum` starts from the int 0).
        terms["total"] = torch.stack(list(terms.values())).sum()
        return terms
