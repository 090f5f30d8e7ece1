"""A stable video mode: each stylized frame blended with the previous (blended) output, moved
onto it by optical flow where the flow can be trusted (`stylenet.inference.flow`); occluded and
newly visible pixels keep the new frame.

    stable = TemporalBlend(stylize, strength=0.5)
    for batch in consecutive_frames:             # (B, 3, H, W) in [0, 1], in order
        outputs = stable(batch)

The blend is recursive, so a pixel that stays visible is an exponential moving average along its
track (weight `strength` on the past); this is the short-term half of Ruder et al. 2016's
temporal constraint, applied after a feed-forward network instead of inside an optimization.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from stylenet.inference.flow import FramePair

# Weight on the warped previous output where the flow is reliable (README, "Video without
# flicker": its measured effect on the warping error and on speed). A choice, not a tuned value.
DEFAULT_STRENGTH = 0.5


class TemporalBlend:
    """Wraps a frame-batch stylizer ((B, 3, H, W) in [0, 1] on the CPU to the same shape) with
    the flow-guided blend. Frames must come in order; one object per video.

    `blend` is the blend alone, for several stylizations of the same frames at once (every
    style of a multi-style model): the flow between two frames is estimated once for all.

    Args:
        stylize: The per-frame stylizer (None: only `blend` is used).
        strength: Weight of the warped previous output where the flow is reliable, in [0, 1).
    """

    def __init__(
        self, stylize: Callable[[Tensor], Tensor] | None, strength: float = DEFAULT_STRENGTH
    ):
        if not 0 <= strength < 1:
            raise ValueError(f"temporal strength must be in [0, 1), got {strength}")
        self.stylize = stylize
        self.strength = strength
        self.previous_input: np.ndarray | None = None  # (H, W, 3) uint8
        self.previous_outputs: list[np.ndarray] = []  # per output, (H, W, 3) float32
        self.reliable_fraction: list[float] = []  # per frame after the first

    def __call__(self, frames: Tensor) -> Tensor:
        if self.stylize is None:
            raise TypeError("this TemporalBlend has no stylizer: call blend(frames, outputs)")
        return self.blend(frames, [self.stylize(frames)])[0]

    def blend(self, frames: Tensor, outputs: Sequence[Tensor]) -> list[Tensor]:
        """Each of `outputs` (stylizations of `frames`, same shape) blended with its own
        previous output; the same number of outputs at every call."""
        if self.previous_outputs and len(outputs) != len(self.previous_outputs):
            raise ValueError(
                f"{len(outputs)} outputs after {len(self.previous_outputs)} at the last call"
            )
        inputs = _to_uint8(frames)
        results: list[list[Tensor]] = [[] for _ in outputs]
        for k in range(frames.shape[0]):
            pair = None
            if self.previous_input is not None:
                pair = FramePair.estimate(self.previous_input, inputs[k])
                weight = (self.strength * pair.reliable.astype(np.float32))[..., None]
                self.reliable_fraction.append(float(pair.reliable.mean()))
            current = []
            for i, output in enumerate(outputs):
                out = output[k].clamp(0, 1).permute(1, 2, 0).float().numpy()
                if pair is not None:
                    out = out + weight * (pair.warp(self.previous_outputs[i]) - out)
                current.append(out)
                results[i].append(torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1))
            self.previous_input, self.previous_outputs = inputs[k], current
        return [
            torch.stack(frames_out).to(output.dtype)
            for frames_out, output in zip(results, outputs, strict=True)
        ]


def _to_uint8(frames: Tensor) -> np.ndarray:
    """(B, 3, H, W) in [0, 1] -> (B, H, W, 3) uint8, rounded."""
    return (frames.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
