"""The transcoder: decode a video, map its frames, encode the result, streaming.

    report = transcode_video("in.mp4", "out.mp4", map_frames=lambda x: 1 - x)

Frames are decoded one at a time and handed to `map_frames` in batches of at most
``batch_size``, so memory does not grow with the length of the video. The output keeps the
input's size, frame rate and frame timestamps (`timing`), the encoder is chosen by the output's
extension (`codecs`) and the audio is copied or re-encoded (`audio`). Frames are converted to
RGB with the colour matrix the input is tagged with.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
from torch import Tensor
from tqdm import tqdm

from stylenet.errors import FileReadError
from stylenet.io.files import atomic_write_many
from stylenet.io.images import float_to_uint8, uint8_to_float
from stylenet.io.video.audio import AudioTrack
from stylenet.io.video.codecs import (
    configure_encoder,
    has_encoder,
    output_codecs,
    output_format,
    pick_codec,
    pick_pixel_format,
)
from stylenet.io.video.timing import (
    Timeline,
    encoder_time_base,
    expected_frames,
    frame_rate,
    start_offset,
)

log = logging.getLogger(__name__)


class VideoReadError(FileReadError):
    """A video file could not be opened or decoded (``.path``, ``.reason``)."""

    kind = "video"


@dataclass(frozen=True)
class VideoReport:
    """What `transcode_video` did.

    Attributes:
        input: The source video.
        output: The video written.
        frames: Frames mapped and written.
        fps: Frame rate of input and output (the stream's average rate), frames per second.
        frame_rate: The same rate as an exact fraction (e.g. 30000/1001).
        width: Frame width in pixels (input and output).
        height: Frame height in pixels (input and output).
        seconds: Wall-clock time of the whole job (decode, map, encode).
        duration: Length of the video in seconds (from the frame timestamps).
        codec: Video encoder used (e.g. "libx264").
        pixel_format: Encoded pixel format (e.g. "yuv420p").
        audio: What happened to the audio, in words ("none", "copied (aac)", ...).
    """

    input: Path
    output: Path
    frames: int
    fps: float
    frame_rate: Fraction
    width: int
    height: int
    seconds: float
    duration: float
    codec: str
    pixel_format: str
    audio: str

    @property
    def processing_fps(self) -> float:
        """Frames mapped per wall-clock second."""
        return self.frames / self.seconds if self.seconds > 0 else float("inf")


def _open(src: Path) -> av.container.InputContainer:
    if not src.is_file():
        raise FileNotFoundError(f"video not found: {src}")
    try:
        return av.open(str(src), mode="r")
    except av.FFmpegError as err:
        raise VideoReadError(src, f"not a readable video ({err})") from err


def read_frames(src: str | os.PathLike, *, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """The frames of a video file in order, each (H, W, 3) uint8 RGB at the first frame's size.

    Raises:
        FileNotFoundError: `src` does not exist.
        VideoReadError: Not a readable video, no video stream, or decoding failed (the message
            says after how many frames).
    """
    src = Path(src)
    with _open(src) as container:
        if not container.streams.video:
            raise VideoReadError(src, "no video stream")
        count, size = 0, None
        try:
            for frame in container.decode(video=0):
                if size is None:
                    size = (frame.width, frame.height)
                yield _to_rgb(frame, *size)
                count += 1
                if max_frames is not None and count >= max_frames:
                    return
        except av.FFmpegError as err:
            raise VideoReadError(src, f"decoding failed after {count} frames ({err})") from err


def _to_rgb(frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB at the given size, read with the frame's own colour tags."""
    # Decoders may change size mid-stream; frames are scaled to the first size so the output
    # stays one size (a no-op otherwise). The colour matrix defaults to the frame's tag; the
    # range must be passed, or full-range (JPEG) YUV would be read as limited range.
    return frame.to_ndarray(
        format="rgb24", width=width, height=height, src_color_range=frame.color_range or None
    )


def transcode_video(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    map_frames: Callable[[Tensor], Tensor],
    batch_size: int = 4,
    overwrite: bool = False,
    progress: bool = True,
    codec: str | None = None,
    quality: int | None = None,
    pixel_format: str | None = None,
    audio: bool = True,
) -> VideoReport:
    """Write a new video whose frames are `map_frames` of the input's.

    The output is written to a temporary file next to `dst` and moved into place at the end, so a
    crash or Ctrl-C never leaves a partial video under `dst`.

    Args:
        src: Input video (any container/codec FFmpeg decodes).
        dst: Output video; the extension picks the container (.mp4 .m4v .mov .mkv .webm .avi).
            Missing parent folders are created.
        map_frames: Maps (B, 3, H, W) float in [0, 1] on the CPU to the same shape
            (B ≤ batch_size), frames in order; moving to a device and back is the callable's
            business. Values outside [0, 1] are clamped.
        batch_size: Frames per `map_frames` call; also the most frames held in memory at once.
        overwrite: Replace an existing `dst` instead of refusing.
        progress: Show a tqdm progress bar over frames.
        codec: FFmpeg encoder name (e.g. "libx264", "libvpx-vp9", "mpeg4"); default: the best
            available for the container (see `output_codecs`).
        quality: Constant-quality level of the encoder, lower is better: CRF for libx264 (0-51,
            default 18), libvpx-vp9 (0-63, default 31) and libvpx (4-63, default 10); qscale for
            mpeg4 (1-31, default 3). Ignored by other encoders.
        pixel_format: Encoded pixel format; default yuv420p, or yuv444p for odd-sized H.264.
        audio: Carry the first audio stream over (copy or re-encode); False drops it.

    Returns:
        A `VideoReport` with frame count, rate, size and timing.

    Raises:
        FileNotFoundError: `src` does not exist.
        FileExistsError: `dst` exists and `overwrite` is False.
        ValueError: `dst` is `src`, its extension is not a writable container, `codec` is not an
            available encoder, `batch_size` < 1, or `map_frames` returns the wrong shape.
        VideoReadError: `src` is not a readable video (corrupt, no video stream, no frames).
    """
    (report,) = transcode_videos(
        src,
        [dst],
        map_frames=lambda x: [map_frames(x)],
        batch_size=batch_size,
        overwrite=overwrite,
        progress=progress,
        codec=codec,
        quality=quality,
        pixel_format=pixel_format,
        audio=audio,
    )
    return report


def transcode_videos(
    src: str | os.PathLike,
    dsts: Sequence[str | os.PathLike],
    *,
    map_frames: Callable[[Tensor], Sequence[Tensor]],
    batch_size: int = 4,
    overwrite: bool = False,
    progress: bool = True,
    codec: str | None = None,
    quality: int | None = None,
    pixel_format: str | None = None,
    audio: bool = True,
) -> list[VideoReport]:
    """`transcode_video` into several outputs at once from one decode of `src`: `map_frames`
    returns one batch per output, in the order of `dsts` (e.g. a multi-style model's every style
    in one pass). The outputs share one container format (one extension); all are moved into
    place together at the end. Raises as `transcode_video`; also ValueError for no outputs or
    outputs of different extensions, FileExistsError for an output named twice.
    """
    src, targets = Path(src), [Path(d) for d in dsts]
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if not src.is_file():
        raise FileNotFoundError(f"video not found: {src}")
    if not targets:
        raise ValueError("no output videos given")
    for dst in targets:
        if dst.resolve() == src.resolve() or (dst.exists() and os.path.samefile(dst, src)):
            raise ValueError(f"output {dst} is the input video: refusing to write over it")
    if len({d.suffix.lower() for d in targets}) > 1:
        raise ValueError(
            f"outputs of one decode share one format: {', '.join(map(str, targets))} differ"
        )
    fmt = output_format(targets[0])
    if codec is not None and not has_encoder(codec):
        raise ValueError(
            f"video encoder {codec!r} is not available in this FFmpeg build; "
            f"for {targets[0].suffix} try one of: "
            f"{', '.join(output_codecs(targets[0].suffix)) or 'none'}"
        )
    # Checked here as well as by atomic_write_many so that a refusal comes before opening the
    # input.
    for dst in targets:
        if dst.exists() and not overwrite:
            raise FileExistsError(f"{dst} already exists (pass overwrite=True to replace it)")

    start = time.perf_counter()
    with _open(src) as container:
        job = _Transcode(
            container,
            src,
            map_frames=map_frames,
            batch_size=batch_size,
            fmt=fmt,
            codec=codec,
            quality=quality,
            pixel_format=pixel_format,
            audio=audio,
            progress=progress,
        )
        atomic_write_many(targets, job.write, overwrite=overwrite)
    seconds = time.perf_counter() - start
    return [
        VideoReport(
            input=src,
            output=dst,
            frames=job.frames,
            fps=float(job.clock.rate),
            frame_rate=job.clock.rate,
            width=job.width,
            height=job.height,
            seconds=seconds,
            duration=job.clock.duration(),
            codec=job.codec,
            pixel_format=job.pix_fmt,
            audio=job.audio.note,
        )
        for dst in targets
    ]


class _Transcode:
    """One `transcode_videos` run: the input container in, one or more output files out."""

    def __init__(
        self,
        container: av.container.InputContainer,
        src: Path,
        *,
        map_frames: Callable[[Tensor], Sequence[Tensor]],
        batch_size: int,
        fmt: str,
        codec: str | None,
        quality: int | None,
        pixel_format: str | None,
        audio: bool,
        progress: bool,
    ) -> None:
        self.container, self.src = container, src
        self.map_frames, self.batch_size = map_frames, batch_size
        self.fmt, self.quality, self.progress = fmt, quality, progress
        if not container.streams.video:
            raise VideoReadError(src, "no video stream")
        self.video = container.streams.video[0]
        self.video.thread_type = "AUTO"  # multi-threaded decoding; frames still come in order
        cc = self.video.codec_context
        self.width, self.height = cc.width, cc.height
        if self.width <= 0 or self.height <= 0:
            raise VideoReadError(src, "video stream has no frame size")
        self.audio = AudioTrack(container, src, fmt, keep=audio)
        self.codec = codec or pick_codec(fmt)
        self.pix_fmt = pixel_format or pick_pixel_format(self.codec, self.width, self.height, src)
        rate = frame_rate(self.video, src)
        in_time_base = Fraction(self.video.time_base or 1 / rate)
        self.clock = Timeline(
            rate=rate,
            in_time_base=in_time_base,
            # Like ffmpeg, shift timestamps so the output starts at 0; the shift is the
            # earliest start of the streams kept, so audio and video keep their offset.
            offset=start_offset(container, [self.video, self.audio.source]),
            out_time_base=encoder_time_base(rate, in_time_base, fmt, self.codec),
        )
        self.frames = 0

    def write(self, handles: Sequence[BinaryIO]) -> None:
        """Decode, map and encode the whole video into the open files `handles`."""
        with contextlib.ExitStack() as stack:
            outs = [stack.enter_context(av.open(fh, mode="w", format=self.fmt)) for fh in handles]
            sinks = [(out, self._add_video_stream(out)) for out in outs]
            for out in outs:
                self.audio.add_stream(out)
            bar = tqdm(
                total=expected_frames(self.video, self.container, self.clock.rate),
                unit="frame",
                desc=self.src.name,
                disable=not self.progress,
                dynamic_ncols=True,
            )
            with bar:
                batch: list[np.ndarray] = []
                pts: list[int] = []
                for item in self._demux(decode_audio=self.audio.reencode):
                    if isinstance(item, av.VideoFrame):
                        pts.append(self.clock.next_pts(item))
                        batch.append(_to_rgb(item, self.width, self.height))
                        if len(batch) == self.batch_size:
                            self._encode_batch(sinks, batch, pts, bar)
                            batch, pts = [], []
                    else:
                        self.audio.mux(item, self.clock)
                if batch:
                    self._encode_batch(sinks, batch, pts, bar)
            if self.frames == 0:
                raise VideoReadError(self.src, "no decodable video frames")
            for out, vstream in sinks:
                for packet in vstream.encode(None):  # drain the encoder's look-ahead
                    out.mux(packet)
            self.audio.flush()

    def _add_video_stream(self, out: av.container.OutputContainer) -> av.VideoStream:
        stream = out.add_stream(self.codec, rate=self.clock.rate)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height = self.width, self.height
        stream.pix_fmt = self.pix_fmt
        stream.codec_context.time_base = self.clock.out_time_base
        q = configure_encoder(stream, self.video, self.codec, self.quality)
        log.info(
            "%s: %d×%d at %s fps -> %s %s (quality %s)",
            self.src,
            self.width,
            self.height,
            self.clock.rate,
            self.codec,
            self.pix_fmt,
            q,
        )
        return stream

    def _demux(self, *, decode_audio: bool) -> Iterator[av.VideoFrame | av.AudioFrame | av.Packet]:
        """Video frames and audio packets (or frames) in file order; read errors name the file."""
        source = self.audio.source
        streams = [self.video] + ([source] if source is not None else [])
        try:
            for packet in self.container.demux(streams):
                if packet.stream.index == self.video.index or decode_audio:
                    # The empty packet at the end flushes the decoder's buffered frames.
                    for frame in packet.decode():
                        if isinstance(frame, av.VideoFrame | av.AudioFrame):
                            yield frame
                elif packet.size:  # skip the empty flush packet: nothing to copy
                    yield packet
        except av.FFmpegError as err:
            raise VideoReadError(
                self.src, f"decoding failed after {self.frames} frames ({err})"
            ) from err

    def _encode_batch(
        self,
        sinks: list[tuple[av.container.OutputContainer, av.VideoStream]],
        batch: list[np.ndarray],
        pts: list[int],
        bar: tqdm,
    ) -> None:
        x = uint8_to_float(np.stack(batch))  # (B, 3, H, W)
        ys = self.map_frames(x)
        shapes = [tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__ for y in ys]
        if len(shapes) != len(sinks) or any(shape != x.shape for shape in shapes):
            raise ValueError(
                f"map_frames returned {shapes} for frames of shape {tuple(x.shape)}, "
                f"{len(sinks)} output(s)"
            )
        for y, (out, stream) in zip(ys, sinks, strict=True):
            for image, t in zip(float_to_uint8(y), pts, strict=True):
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = t
                frame.time_base = self.clock.out_time_base
                for packet in stream.encode(frame):
                    out.mux(packet)
        self.frames += len(batch)
        bar.update(len(batch))
