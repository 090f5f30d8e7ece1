"""Optical flow between video frames with a classical method that needs no weights: OpenCV's DIS
(Kroeger et al. 2016, "Fast Optical Flow using Dense Inverse Search"), with the occlusion test of
Ruder et al. 2016 ("Artistic style transfer for videos", Sec. 3.2): a pixel whose backward flow
and the forward flow at its end point do not cancel, or that sits on a motion boundary, is left
out.

    pair = FramePair.estimate(previous_rgb, next_rgb)   # (H, W, 3) uint8 frames
    warped = pair.warp(previous_output)                 # previous output, moved onto `next`
    pair.reliable                                       # (H, W) bool: where it can be trusted

OpenCV (``opencv-python-headless``) is imported on first use.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

# Ruder et al. 2016, Eq. 6-7: the consistency and motion-boundary thresholds.
CONSISTENCY = (0.01, 0.5)
BOUNDARY = (0.01, 0.002)
# Flow is estimated on frames scaled to at most this many pixels on the long side (DIS's cost
# grows with pixels; its coarse-to-fine search already works on a pyramid), then scaled back.
FLOW_MAX_SIDE = 640


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as err:  # pragma: no cover - a dependency of stylenet
        raise ImportError("optical flow needs OpenCV: pip install opencv-python-headless") from err
    return cv2


def dis_flow(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Dense flow from `first` to `second`, (H, W, 2) float32 in pixels, such that
    ``first[y, x] ≈ second[y + flow[y, x, 1], x + flow[y, x, 0]]``.

    Args:
        first: (H, W) uint8 grey frame, or (H, W, 3) uint8 RGB.
        second: The same size and kind.
    """
    cv2 = _cv2()
    first, second = _grey(first), _grey(second)
    h, w = first.shape
    scale = min(1.0, FLOW_MAX_SIDE / max(h, w))
    if scale < 1:
        size = (max(8, round(w * scale)), max(8, round(h * scale)))
        first = cv2.resize(first, size, interpolation=cv2.INTER_AREA)
        second = cv2.resize(second, size, interpolation=cv2.INTER_AREA)
    flow = _dis().calc(first, second, None)
    if scale < 1:
        sh, sw = flow.shape[:2]
        flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
        flow[..., 0] *= w / sw
        flow[..., 1] *= h / sh
    return flow.astype(np.float32, copy=False)


@functools.cache
def _dis() -> Any:
    """One DIS estimator per process (its preset: medium), made on first use."""
    cv2 = _cv2()
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)


def _grey(frame: np.ndarray) -> np.ndarray:
    if frame.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frame.dtype}")
    if frame.ndim == 2:
        return np.ascontiguousarray(frame)
    return np.ascontiguousarray(_cv2().cvtColor(frame, _cv2().COLOR_RGB2GRAY))


def _sample(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    cv2 = _cv2()
    return cv2.remap(
        image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


@dataclass(frozen=True)
class FramePair:
    """The motion from one frame to the next, as the next frame sees it.

    Attributes:
        map_x: (H, W) float32: for each pixel of the next frame, the x in the previous frame
            it came from (the backward flow plus the pixel's own x).
        map_y: Likewise for y.
        reliable: (H, W) bool: the backward and forward flows agree there, it is not on a
            motion boundary and it came from inside the previous frame.
    """

    map_x: np.ndarray
    map_y: np.ndarray
    reliable: np.ndarray

    @classmethod
    def estimate(cls, previous: np.ndarray, following: np.ndarray) -> FramePair:
        """DIS flow both ways between two frames ((H, W, 3) or (H, W) uint8) and Ruder et al.'s
        consistency test on the backward flow."""
        backward = dis_flow(following, previous)  # next frame's pixel -> where it was before
        forward = dis_flow(previous, following)
        h, w = backward.shape[:2]
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        map_x, map_y = xs + backward[..., 0], ys + backward[..., 1]
        forward_there = _sample(forward, map_x, map_y)  # forward flow at the end point
        a, b = CONSISTENCY
        round_trip = np.square(forward_there + backward).sum(-1)
        size = np.square(forward_there).sum(-1) + np.square(backward).sum(-1)
        consistent = round_trip <= a * size + b
        gy_x, gx_x = np.gradient(backward[..., 0])
        gy_y, gx_y = np.gradient(backward[..., 1])
        c, d = BOUNDARY
        gradient = gx_x**2 + gy_x**2 + gx_y**2 + gy_y**2
        smooth = gradient <= c * np.square(backward).sum(-1) + d
        inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
        return cls(map_x, map_y, consistent & smooth & inside)

    def warp(self, previous: np.ndarray) -> np.ndarray:
        """`previous` (H, W, C) (float32 or uint8; an output of the previous frame) moved onto
        the next frame: bilinear, edges repeated where the flow leaves the frame."""
        return _sample(previous, self.map_x, self.map_y)
