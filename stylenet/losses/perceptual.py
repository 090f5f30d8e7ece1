"""The perceptual loss of Johnson et al. 2016: feature reconstruction (content) + style
reconstruction (Gram matrices) + total variation (+ optional pixel loss), all measured by a frozen
VGG-16."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from stylenet.errors import ConfigError
from stylenet.losses import functional as LF
from stylenet.losses.vgg import VGG16Features


class PerceptualLoss(nn.Module):
    """Weighted sum of content, style, TV and pixel losses.

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
        vgg: The loss network, or a factory called with the list of needed layers
            (e.g. ``functools.partial(VGG16Features, weights=path)``); None builds a
            `VGG16Features` with the default weight lookup.
    """

    style_scales: Tensor  # (N,) buffer: per-style factors on style_weight

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
        weights = {
            "content_weight": self.content_weight,
            "style_weight": self.style_weight,
            "tv_weight": self.tv_weight,
            "pixel_weight": self.pixel_weight,
            **{f"style_layers.{k}": v for k, v in self.style_layers.items()},
        }
        for name, value in weights.items():
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name}={value}: loss weights must be finite and >= 0")
        needed = list(dict.fromkeys([*self.content_layers, *self.style_layers]))
        if vgg is None:
            vgg = VGG16Features(needed)
        elif not isinstance(vgg, nn.Module):
            vgg = vgg(layers=needed)
        self.vgg = vgg
        self._has_style = False
        self.num_styles = 0

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

        Args:
            style_images: Each (3, H, W) or (1, 3, H, W) in [0, 1].
            style_scales: A factor on `style_weight` per style, for a painting that needs a
                stronger or weaker style term than the others (default: 1 each).
        """
        if not style_images:
            raise ValueError("set_styles needs at least one style image")
        device = next(self.vgg.buffers()).device
        grams: dict[str, list[Tensor]] = {name: [] for name in self.style_layers}
        for style_image in style_images:
            if style_image.ndim == 3:
                style_image = style_image.unsqueeze(0)
            if style_image.ndim != 4 or style_image.shape[:2] != (1, 3):
                raise ValueError(
                    f"style image must be (1, 3, H, W), got {tuple(style_image.shape)}"
                )
            feats = self.vgg(style_image.to(device=device, dtype=torch.float32))
            for name in self.style_layers:
                grams[name].append(LF.gram_matrix(feats[name]))
        for name in self.style_layers:
            # (N, C, C); non-persistent: a checkpoint never carries them.
            self.register_buffer(f"gram_{name}", torch.cat(grams[name]), persistent=False)
        self._has_style = True
        self.num_styles = len(style_images)
        scales = [1.0] * self.num_styles if style_scales is None else list(style_scales)
        if len(scales) != self.num_styles or not all(math.isfinite(x) and x >= 0 for x in scales):
            raise ConfigError(
                f"style scales must be {self.num_styles} finite numbers >= 0, got {scales}"
            )
        self.register_buffer(
            "style_scales",
            torch.tensor(scales, dtype=torch.float32, device=device),
            persistent=False,
        )

    def target_gram(self, layer: str, style_index: Tensor | None = None) -> Tensor:
        """The target Grams of `layer`: (N, C, C), or (B, C, C) for the styles in
        `style_index` (B,)."""
        grams = self.get_buffer(f"gram_{layer}")
        return grams if style_index is None else grams[style_index]

    def forward(
        self, output: Tensor, content: Tensor, style_index: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Loss terms for stylized `output` against the `content` photos, both (B, 3, H, W) in
        [0, 1]; with several styles set, `style_index` (B,) names each image's style.

        Returns:
            {"content", "style", "tv", ["pixel"], "total"}: each term already multiplied by its
            weight, so ``total`` is their sum. Terms whose weight is 0 are omitted (except
            content, style and total).
        """
        if self.style_weight and not self._has_style:
            raise RuntimeError("PerceptualLoss.set_style(image) must be called before the loss")
        if style_index is None and self.num_styles > 1:
            raise ValueError(f"{self.num_styles} styles are set: pass style_index (B,)")
        out_feats = self.vgg(output)
        terms: dict[str, Tensor] = {}

        if self.content_layers:
            with torch.no_grad():
                # Only as deep as the content layers: relu2_2 is 4 of VGG-16's 13 convs, and
                # at 256² about a third of the MACs up to relu4_3.
                target_feats = self.vgg(content, layers=self.content_layers)
            terms["content"] = self.content_weight * _sum(
                [LF.content_loss(out_feats[n], target_feats[n]) for n in self.content_layers]
            )
        else:
            terms["content"] = output.new_zeros((), dtype=torch.float32)

        if self.style_layers and self._has_style:
            # Per-style weights: each image's style term scaled by its own style's factor (one
            # style: its factor for every image).
            scales = (
                self.style_scales[:1] if style_index is None else self.style_scales[style_index]
            )
            terms["style"] = self.style_weight * _sum(
                [
                    w
                    * LF.style_loss(
                        LF.gram_matrix(out_feats[n]), self.target_gram(n, style_index), scales
                    )
                    for n, w in self.style_layers.items()
                ]
            )
        else:
            terms["style"] = output.new_zeros((), dtype=torch.float32)

        if self.tv_weight:
            terms["tv"] = self.tv_weight * LF.total_variation(output)
        if self.pixel_weight:
            terms["pixel"] = self.pixel_weight * LF.pixel_loss(output, content)
        terms["total"] = _sum(list(terms.values()))
        return terms


def _sum(terms: list[Tensor]) -> Tensor:
    """The sum of scalar tensors (Python's `sum` starts from the int 0)."""
    return torch.stack(terms).sum()
