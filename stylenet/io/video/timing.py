"""Time-base arithmetic: the output keeps the input's frame rate and frame timestamps.

`Timeline` holds one video's clock: its rate, the input's time base, the start offset shared by
the streams kept (so audio and video keep their relative offset, and the output starts at 0 as
ffmpeg's does) and the encoder's time base; `next_pts` maps each decoded frame onto it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av

log = logging.getLogger(__name__)

# MPEG-4 Part 2 stores the time base denominator in 16 bits.
MPEG4_MAX_TIMEBASE_DEN = 65535
# Used when a stream states no frame rate at all (rare: raw or broken streams); FFmpeg's default.
FALLBACK_RATE = Fraction(25)
# Largest encoder time base denominator we use; x264 and the muxers store it in 32 bits.
MAX_TIMEBASE_DEN = 2**31 - 1


def frame_rate(video: av.VideoStream, src: Path) -> Fraction:
    """The stream's average rate (else its guessed or base rate, else `FALLBACK_RATE`)."""
    rate = Fraction(video.average_rate or video.guessed_rate or video.base_rate or 0)
    if rate <= 0:
        log.warning("%s states no frame rate; assuming %s fps", src, FALLBACK_RATE)
        rate = FALLBACK_RATE
    return rate


def start_offset(
    container: av.container.InputContainer, streams: Sequence[av.stream.Stream | None]
) -> Fraction:
    """The earliest start (seconds) of the streams kept; the container's start without any."""
    starts = [
        s.start_time * Fraction(s.time_base)
        for s in streams
        if s is not None and s.start_time is not None and s.time_base
    ]
    return min(starts) if starts else Fraction(container.start_time or 0, av.time_base)


def encoder_time_base(rate: Fraction, in_time_base: Fraction, fmt: str, codec: str) -> Fraction:
    """The finest tick that holds every input timestamp and every multiple of 1/rate exactly.

    So frame timing is kept as is (variable frame rate included), and constant-rate input
    stored with coarse ticks (Matroska/WebM count milliseconds) can be put back on its exact
    frame grid (`Timeline.next_pts`). AVI stores one tick per frame and MPEG-4 Part 2 allows a
    16-bit denominator, so those fall back to 1/rate (constant frame rate).
    """
    grid = 1 / rate
    tick = Fraction(1, math.lcm(in_time_base.denominator, grid.denominator))
    if fmt == "avi" or (codec == "mpeg4" and tick.denominator > MPEG4_MAX_TIMEBASE_DEN):
        return grid
    if tick.denominator > MAX_TIMEBASE_DEN:
        return in_time_base
    return tick


def expected_frames(
    video: av.VideoStream, container: av.container.InputContainer, rate: Fraction
) -> int | None:
    """Frame count for a progress bar: from the header, else estimated from the duration
    (Matroska/WebM headers carry no count); None if neither is known."""
    if video.frames:
        return video.frames
    if container.duration:
        return round(Fraction(container.duration, av.time_base) * rate) or None
    return None


@dataclass
class Timeline:
    """One video's clock, input to output.

    Attributes:
        rate: Frames per second (exact).
        in_time_base: The input stream's tick.
        offset: Seconds subtracted from every input timestamp (the output starts at 0).
        out_time_base: The encoder's tick (`encoder_time_base`).
        last: The last output timestamp handed out.
    """

    rate: Fraction
    in_time_base: Fraction
    offset: Fraction
    out_time_base: Fraction
    last: int | None = field(default=None)

    def next_pts(self, frame: av.VideoFrame) -> int:
        """Output timestamp (in `out_time_base`) of `frame`, strictly increasing."""
        tb, last = self.out_time_base, self.last
        if frame.pts is None:
            # No timestamp (some AVI/raw inputs): one frame after the previous one.
            pts = 0 if last is None else last + max(1, round(1 / (self.rate * tb)))
        else:
            t = frame.pts * Fraction(frame.time_base or self.in_time_base) - self.offset
            # A timestamp within one input tick of the constant-rate grid is the grid time
            # rounded to the container's ticks; put it back on the grid (n / rate) so the rate
            # stays exact.
            n = round(t * self.rate)
            if abs(t - n / self.rate) <= self.in_time_base:
                t = n / self.rate
            pts = round(t / tb)
            if last is not None and pts <= last:
                pts = last + 1  # encoders reject repeated or backwards timestamps
        self.last = pts
        return pts

    def duration(self) -> float:
        """Seconds the frames cover on screen: the last timestamp plus one frame."""
        return 0.0 if self.last is None else float(self.last * self.out_time_base + 1 / self.rate)

    def shift(self, time_base: Fraction | None) -> int:
        """`offset` in ticks of `time_base` (0 without one): what audio timestamps lose."""
        return round(self.offset / Fraction(time_base)) if time_base else 0
