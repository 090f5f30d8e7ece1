"""Stylize video files frame by frame with PyAV (FFmpeg), streaming.

    report = stylize_video(lambda x: stylize_tensor(net, x), Path("in.mp4"), Path("out.mp4"))

Frames are decoded one at a time and stylized in batches of at most ``batch_size``, so memory does
not grow with the length of the video. The output keeps the input's size, frame rate and frame
timestamps. Choices made for you (all logged):

- **Video codec** (from the output extension, best available in this FFmpeg build first):
  .mp4/.m4v/.mov/.mkv: H.264 (libx264, CRF 18) else MPEG-4 Part 2; .webm: VP9 (CRF 31) else VP8;
  .avi: MPEG-4 Part 2 (qscale 3), the codec AVI players expect.
- **Odd sizes**: 4:2:0 chroma needs even sides in libx264, so an odd-sized H.264 output is encoded
  as 4:4:4 (``yuv444p``, H.264 "High 4:4:4" profile) instead of being padded or cropped. FFmpeg and
  VLC play it; some browsers and hardware decoders do not. VP9, VP8 and MPEG-4 take odd sizes in
  4:2:0 as they are. A warning says when this happens.
- **Audio**: the first audio stream is copied untouched when the output container accepts its
  codec, otherwise re-encoded (AAC for MP4/MOV, Opus for WebM/MKV, MP3 for AVI; mono or stereo).
  If neither is possible it is dropped with a warning. Other streams (subtitles, data, further
  audio tracks) and rotation metadata are not carried over.
- **Colour**: frames are converted to RGB with the colour matrix the input is tagged with and
  written back as BT.601 limited range, tagged as such so players convert them back correctly.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
from torch import Tensor
from tqdm import tqdm

from stylenet.errors import FileReadError
from stylenet.io.files import atomic_write
from stylenet.io.images import float_to_uint8, uint8_to_float

__all__ = [
    "VIDEO_EXTENSIONS",
    "VideoReadError",
    "VideoReport",
    "is_video",
    "output_codecs",
    "read_frames",
    "stylize_video",
]

log = logging.getLogger(__name__)

# Containers FFmpeg reads that people keep videos in; recognised by extension (case-insensitive).
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".3gp",
        ".avi",
        ".flv",
        ".m2ts",
        ".m4v",
        ".mkv",
        ".mov",
        ".mp4",
        ".mpeg",
        ".mpg",
        ".mts",
        ".ogv",
        ".ts",
        ".webm",
        ".wmv",
    }
)

# Extensions this module writes, and the FFmpeg muxer for each. Named explicitly because the
# temporary file is written through a file object, which carries no extension to guess from.
_OUTPUT_FORMATS: dict[str, str] = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".avi": "avi",
}

# Encoders by preference per muxer. H.264 is what every player decodes; MPEG-4 Part 2 is FFmpeg's
# built-in fallback. WebM allows only VP8/VP9/AV1 (AV1 encoders are too slow to be a default).
# AVI has no B-frame/timestamp support, so its classic MPEG-4 Part 2 comes first.
_CODEC_PREFERENCE: dict[str, tuple[str, ...]] = {
    "mp4": ("libx264", "mpeg4"),
    "mov": ("libx264", "mpeg4"),
    "matroska": ("libx264", "libvpx-vp9", "mpeg4"),
    "webm": ("libvpx-vp9", "libvpx"),
    "avi": ("mpeg4", "libx264"),
}

# Encoders whose 4:2:0 mode refuses odd widths/heights (avcodec_open2 fails); tested in this build.
_EVEN_ONLY_420: frozenset[str] = frozenset({"libx264", "libx265"})

# Default constant-quality settings: x264 CRF 18 is the usual "visually lossless" point (FFmpeg
# H.264 guide); VP9 CRF 31 is Google's recommendation for 1080p (VP9 VOD settings) and needs
# b=0 for pure constant quality; VP8 CRF 10 with a 2 Mb/s cap (FFmpeg VP8 guide); MPEG-4 q 3 of
# 1-31 (FFmpeg docs suggest 2-5).
_DEFAULT_QUALITY: dict[str, int] = {"libx264": 18, "libvpx-vp9": 31, "libvpx": 10, "mpeg4": 3}

# Audio encoders for re-encoding when a stream cannot be copied into the output container.
_AUDIO_ENCODERS: dict[str, tuple[str, ...]] = {
    "mp4": ("aac",),
    "mov": ("aac",),
    "matroska": ("libopus", "aac"),
    "webm": ("libopus",),
    "avi": ("libmp3lame", "aac"),
}

# Containers that can start a stream before 0 (edit lists), so copied audio keeps its priming.
_EDIT_LIST_FORMATS: frozenset[str] = frozenset({"mp4", "mov"})

# MPEG-4 Part 2 stores the time base denominator in 16 bits.
_MPEG4_MAX_TIMEBASE_DEN = 65535
# Used when a stream states no frame rate at all (rare: raw or broken streams); FFmpeg's default.
_FALLBACK_RATE = Fraction(25)
# Largest encoder time base denominator we use; x264 and the muxers store it in 32 bits.
_MAX_TIMEBASE_DEN = 2**31 - 1


class VideoReadError(FileReadError):
    """A video file could not be opened or decoded (``.path``, ``.reason``)."""

    kind = "video"


@dataclass(frozen=True)
class VideoReport:
    """What `stylize_video` did.

    Attributes:
        input: The source video.
        output: The stylized video.
        frames: Frames stylized and written.
        fps: Frame rate of input and output (the stream's average rate), frames per second.
        frame_rate: The same rate as an exact fraction (e.g. 30000/1001).
        width: Frame width in pixels (input and output).
        height: Frame height in pixels (input and output).
        seconds: Wall-clock time of the whole job (decode, stylize, encode).
        duration: Length of the video in seconds (from the frame timestamps).
        input_flicker: Mean absolute change between consecutive input frames, in [0, 1] units,
            averaged over frame pairs (0 for a single frame). Includes real motion.
        output_flicker: The same for the stylized frames, measured on the 8-bit frames handed to
            the encoder (before compression), so it reflects the model, not the codec.
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
    input_flicker: float
    output_flicker: float
    codec: str
    pixel_format: str
    audio: str

    @property
    def processing_fps(self) -> float:
        """Frames stylized per wall-clock second."""
        return self.frames / self.seconds if self.seconds > 0 else float("inf")

    @property
    def flicker_ratio(self) -> float:
        """``output_flicker / input_flicker``: above 1, stylization adds temporal noise."""
        return self.output_flicker / self.input_flicker if self.input_flicker > 0 else float("inf")


def is_video(path: str | os.PathLike) -> bool:
    """Whether `path` has a video extension (see `VIDEO_EXTENSIONS`); the file is not opened."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def read_frames(src: str | os.PathLike, *, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """The frames of a video file in order, each (H, W, 3) uint8 RGB at the first frame's size.

    Raises:
        FileNotFoundError: `src` does not exist.
        VideoReadError: Not a readable video, no video stream, or decoding failed (the message
            says after how many frames).
    """
    src = Path(src)
    if not src.is_file():
        raise FileNotFoundError(f"video not found: {src}")
    try:
        container = av.open(str(src), mode="r")
    except av.FFmpegError as err:
        raise VideoReadError(src, f"not a readable video ({err})") from err
    with container:
        if not container.streams.video:
            raise VideoReadError(src, "no video stream")
        count, size = 0, None
        try:
            for frame in container.decode(video=0):
                if size is None:
                    size = (frame.width, frame.height)
                yield frame.to_ndarray(
                    format="rgb24",
                    width=size[0],
                    height=size[1],
                    src_color_range=frame.color_range or None,
                )
                count += 1
                if max_frames is not None and count >= max_frames:
                    return
        except av.FFmpegError as err:
            raise VideoReadError(src, f"decoding failed after {count} frames ({err})") from err


def output_codecs(suffix: str) -> list[str]:
    """Video encoders this FFmpeg build offers for an output extension, best first.

    Args:
        suffix: Output extension, e.g. ".mp4".

    Raises:
        ValueError: The extension is not one this module writes.
    """
    fmt = _output_format(Path(f"x{suffix}"))
    return [name for name in _CODEC_PREFERENCE[fmt] if _has_encoder(name)]


def stylize_video(
    stylize: Callable[[Tensor], Tensor],
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    batch_size: int = 4,
    overwrite: bool = False,
    progress: bool = True,
    codec: str | None = None,
    quality: int | None = None,
    pixel_format: str | None = None,
    audio: bool = True,
) -> VideoReport:
    """Stylize every frame of a video file into a new video file.

    The output is written to a temporary file next to `dst` and moved into place at the end, so a
    crash or Ctrl-C never leaves a partial video under `dst`.

    Args:
        stylize: Maps (B, 3, H, W) float in [0, 1] on the CPU to the same shape (B ≤ batch_size);
            moving to a device and back is the callable's business. Values outside [0, 1] are
            clamped.
        src: Input video (any container/codec FFmpeg decodes).
        dst: Output video; the extension picks the container (.mp4 .m4v .mov .mkv .webm .avi).
            Missing parent folders are created.
        batch_size: Frames per `stylize` call; also the most frames held in memory at once.
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
        A `VideoReport` with frame count, rate, size, timing and flicker.

    Raises:
        FileNotFoundError: `src` does not exist.
        FileExistsError: `dst` exists and `overwrite` is False.
        ValueError: `dst` is `src`, its extension is not a writable container, `codec` is not an
            available encoder, `batch_size` < 1, or `stylize` returns the wrong shape.
        VideoReadError: `src` is not a readable video (corrupt, no video stream, no frames).
    """
    src, dst = Path(src), Path(dst)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if not src.is_file():
        raise FileNotFoundError(f"video not found: {src}")
    if dst.resolve() == src.resolve() or (dst.exists() and os.path.samefile(dst, src)):
        raise ValueError(f"output {dst} is the input video: refusing to write over it")
    fmt = _output_format(dst)
    if codec is not None and not _has_encoder(codec):
        raise ValueError(
            f"video encoder {codec!r} is not available in this FFmpeg build; "
            f"for {dst.suffix} try one of: {', '.join(output_codecs(dst.suffix)) or 'none'}"
        )
    # Checked here as well as by atomic_write so that a refusal comes before opening the input.
    if dst.exists() and not overwrite:
        raise FileExistsError(f"{dst} already exists (pass overwrite=True to replace it)")

    start = time.perf_counter()
    try:
        container = av.open(str(src), mode="r")
    except av.FFmpegError as err:
        raise VideoReadError(src, f"not a readable video ({err})") from err
    with container:
        job = _Job(
            container,
            src,
            stylize=stylize,
            batch_size=batch_size,
            fmt=fmt,
            codec=codec,
            quality=quality,
            pixel_format=pixel_format,
            audio=audio,
            progress=progress,
        )
        atomic_write(dst, job.write, overwrite=overwrite)
    seconds = time.perf_counter() - start

    return VideoReport(
        input=src,
        output=dst,
        frames=job.frames,
        fps=float(job.rate),
        frame_rate=job.rate,
        width=job.width,
        height=job.height,
        seconds=seconds,
        duration=job.duration,
        input_flicker=job.input_flicker.mean,
        output_flicker=job.output_flicker.mean,
        codec=job.codec,
        pixel_format=job.pix_fmt,
        audio=job.audio_note,
    )


class _Flicker:
    """Running mean of |frame_t - frame_{t-1}| in [0, 1] units; keeps only the previous frame."""

    def __init__(self) -> None:
        self.prev: np.ndarray | None = None
        self.total = 0.0
        self.pairs = 0

    def update(self, frames: np.ndarray) -> None:
        """Add a batch of consecutive (B, H, W, 3) uint8 frames."""
        # int16 so differences of uint8 values do not wrap; one vectorized pass per batch
        # (NumPy, not torch: no thread pool to wake up between the network's calls).
        seq = frames.astype(np.int16)
        if self.prev is not None:
            seq = np.concatenate([self.prev[None], seq])
        if len(seq) > 1:
            per_pair = np.abs(np.diff(seq, axis=0)).reshape(len(seq) - 1, -1).mean(axis=1)
            self.total += float(per_pair.sum()) / 255.0
            self.pairs += len(per_pair)
        self.prev = seq[-1]

    @property
    def mean(self) -> float:
        return self.total / self.pairs if self.pairs else 0.0


class _Job:
    """State of one `stylize_video` run: the input container in, one output file out."""

    def __init__(
        self,
        container: av.container.InputContainer,
        src: Path,
        *,
        stylize: Callable[[Tensor], Tensor],
        batch_size: int,
        fmt: str,
        codec: str | None,
        quality: int | None,
        pixel_format: str | None,
        audio: bool,
        progress: bool,
    ) -> None:
        self.container = container
        self.src = src
        self.stylize = stylize
        self.batch_size = batch_size
        self.fmt = fmt
        self.progress = progress
        self.quality = quality

        if not container.streams.video:
            raise VideoReadError(src, "no video stream")
        self.video = container.streams.video[0]
        self.video.thread_type = "AUTO"  # multi-threaded decoding; frames still come in order
        cc = self.video.codec_context
        self.width, self.height = cc.width, cc.height
        if self.width <= 0 or self.height <= 0:
            raise VideoReadError(src, "video stream has no frame size")
        self.rate = Fraction(
            self.video.average_rate or self.video.guessed_rate or self.video.base_rate or 0
        )
        if self.rate <= 0:
            log.warning("%s states no frame rate; assuming %s fps", src, _FALLBACK_RATE)
            self.rate = _FALLBACK_RATE
        self.in_time_base = Fraction(self.video.time_base or 1 / self.rate)
        self.in_audio = container.streams.audio[0] if audio and container.streams.audio else None
        self.audio_note = "none" if not container.streams.audio else "dropped (audio=False)"
        # Like ffmpeg, shift timestamps so the output starts at 0; the shift is the earliest
        # start of the streams kept, so audio and video keep their relative offset.
        starts = [
            s.start_time * Fraction(s.time_base)
            for s in (self.video, self.in_audio)
            if s is not None and s.start_time is not None and s.time_base
        ]
        self.offset = min(starts) if starts else Fraction(container.start_time or 0, av.time_base)

        self.codec = codec or self._pick_codec()
        self.pix_fmt = pixel_format or self._pick_pixel_format()

        self.frames = 0
        self.duration = 0.0
        self.input_flicker = _Flicker()
        self.output_flicker = _Flicker()

    # Choices --------------------------------------------------------------------------------

    def _pick_codec(self) -> str:
        for name in _CODEC_PREFERENCE[self.fmt]:
            if _has_encoder(name):
                return name
        raise ValueError(f"this FFmpeg build has no video encoder for {self.fmt} output")

    def _pick_pixel_format(self) -> str:
        formats = [f.name for f in av.Codec(self.codec, "w").video_formats or ()]
        odd = self.width % 2 == 1 or self.height % 2 == 1
        if "yuv420p" in formats and not (odd and self.codec in _EVEN_ONLY_420):
            return "yuv420p"
        if "yuv444p" in formats:
            if odd:
                log.warning(
                    "%s is %d×%d (odd): %s needs even sides for yuv420p, so the output is "
                    "yuv444p (H.264 High 4:4:4), which some browsers and hardware players cannot "
                    "play; use a .webm output (VP9) or an even size for the widest support",
                    self.src,
                    self.width,
                    self.height,
                    self.codec,
                )
            return "yuv444p"
        return formats[0] if formats else "yuv420p"

    def _time_base(self) -> Fraction:
        # The encoder's time base is the finest tick that holds both every input timestamp and
        # every multiple of 1/rate exactly, so frame timing is kept as is (variable frame rate
        # included) and constant-rate input stored with coarse ticks (Matroska/WebM count
        # milliseconds) can be put back on its exact frame grid (see _next_pts).
        # AVI stores one tick per frame and MPEG-4 Part 2 allows a 16-bit denominator, so those
        # fall back to 1/rate (constant frame rate).
        grid = 1 / self.rate
        tick = Fraction(1, math.lcm(self.in_time_base.denominator, grid.denominator))
        if self.fmt == "avi" or (
            self.codec == "mpeg4" and tick.denominator > _MPEG4_MAX_TIMEBASE_DEN
        ):
            return grid
        if tick.denominator > _MAX_TIMEBASE_DEN:
            return self.in_time_base
        return tick

    def _expected_frames(self) -> int | None:
        """Frame count for the progress bar: from the header, else estimated from the duration
        (Matroska/WebM headers carry no count); None if neither is known."""
        if self.video.frames:
            return self.video.frames
        if self.container.duration:
            return round(Fraction(self.container.duration, av.time_base) * self.rate) or None
        return None

    # Writing --------------------------------------------------------------------------------

    def write(self, fh: BinaryIO) -> None:
        """Decode, stylize and encode the whole video into the open file `fh`."""
        with av.open(fh, mode="w", format=self.fmt) as out:
            vstream = self._add_video_stream(out)
            astream, reencode = self._add_audio_stream(out)
            bar = tqdm(
                total=self._expected_frames(),
                unit="frame",
                desc=self.src.name,
                disable=not self.progress,
                dynamic_ncols=True,
            )
            with bar:
                batch: list[np.ndarray] = []
                pts: list[int] = []
                last = None
                for item in self._demux(decode_audio=reencode):
                    if isinstance(item, av.VideoFrame):
                        last = self._next_pts(item, last)
                        batch.append(self._to_rgb(item))
                        pts.append(last)
                        if len(batch) == self.batch_size:
                            self._encode_batch(out, vstream, batch, pts, bar)
                            batch, pts = [], []
                    elif astream is not None:
                        self._mux_audio(out, astream, item)
                if batch:
                    self._encode_batch(out, vstream, batch, pts, bar)
            if self.frames == 0:
                raise VideoReadError(self.src, "no decodable video frames")
            for packet in vstream.encode(None):  # drain the encoder's look-ahead
                out.mux(packet)
            if astream is not None and reencode:
                self._flush_audio(out, astream)
            if last is not None:
                # Last timestamp plus one frame: the span the frames cover on screen.
                self.duration = float(last * self.out_time_base + 1 / self.rate)

    def _add_video_stream(self, out: av.container.OutputContainer) -> av.VideoStream:
        stream = out.add_stream(self.codec, rate=self.rate)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height = self.width, self.height
        stream.pix_fmt = self.pix_fmt
        cc = stream.codec_context
        self.out_time_base = self._time_base()
        cc.time_base = self.out_time_base
        in_cc = self.video.codec_context
        if in_cc.sample_aspect_ratio:
            cc.sample_aspect_ratio = in_cc.sample_aspect_ratio  # non-square pixels display alike
        # Frames go RGB -> YUV through swscale's default matrix, BT.601 limited range; tag it so
        # players convert back with the same matrix (an untagged HD video is read as BT.709).
        # Primaries and transfer describe the RGB values themselves, which stylization keeps.
        cc.colorspace = 6  # AVCOL_SPC_SMPTE170M (BT.601)
        cc.color_range = 1  # AVCOL_RANGE_MPEG (limited)
        if in_cc.color_primaries != 2:  # 2 = unspecified
            cc.color_primaries = in_cc.color_primaries
        if in_cc.color_trc != 2:
            cc.color_trc = in_cc.color_trc
        q = self.quality if self.quality is not None else _DEFAULT_QUALITY.get(self.codec)
        if self.codec == "libx264":
            stream.options = {"crf": str(q), "preset": "medium"}
        elif self.codec == "libvpx-vp9":
            cc.bit_rate = 0
            stream.options = {"crf": str(q), "b": "0", "row-mt": "1"}
        elif self.codec == "libvpx":
            cc.bit_rate = 2_000_000
            stream.options = {"crf": str(q)}
        elif self.codec == "mpeg4":
            assert q is not None  # mpeg4 has a default quality
            cc.qscale = True
            cc.global_quality = q * 118  # FF_QP2LAMBDA: how ffmpeg's -q:v sets it
        log.info(
            "%s: %d×%d at %s fps -> %s %s (quality %s)",
            self.src,
            self.width,
            self.height,
            self.rate,
            self.codec,
            self.pix_fmt,
            q,
        )
        return stream

    def _add_audio_stream(
        self, out: av.container.OutputContainer
    ) -> tuple[av.AudioStream | None, bool]:
        """Add the output audio stream: (stream or None, whether frames must be re-encoded)."""
        a = self.in_audio
        if a is None:
            return None, False
        name = a.codec_context.name
        if name in out.supported_codecs:
            try:
                stream = out.add_stream_from_template(a)
            except (av.FFmpegError, ValueError) as err:
                log.debug("copying %s audio into %s failed: %s", name, self.fmt, err)
            else:
                self.audio_note = f"copied ({name})"
                return stream, False
        for enc in _AUDIO_ENCODERS.get(self.fmt, ()):
            if not _has_encoder(enc):
                continue
            rates = av.Codec(enc, "w").audio_rates
            rate = a.rate if not rates or a.rate in rates else max(rates)
            encoder = out.add_stream(enc, rate=rate)
            assert isinstance(encoder, av.AudioStream)
            encoder.layout = "mono" if a.channels == 1 else "stereo"
            self.audio_note = f"re-encoded ({name} -> {enc})"
            log.info(
                "%s: audio %s does not fit %s; re-encoding to %s", self.src, name, self.fmt, enc
            )
            return encoder, True
        log.warning(
            "%s: dropping the audio (%s): %s output can neither hold it nor has an audio encoder",
            self.src,
            name,
            self.fmt,
        )
        self.audio_note = f"dropped ({name} does not fit {self.fmt})"
        self.in_audio = None  # not even demuxed from here on
        return None, False

    def _demux(self, *, decode_audio: bool) -> Iterator[av.VideoFrame | av.AudioFrame | av.Packet]:
        """Video frames and audio packets (or frames) in file order; read errors name the file."""
        streams = [self.video] + ([self.in_audio] if self.in_audio is not None else [])
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

    def _next_pts(self, frame: av.VideoFrame, last: int | None) -> int:
        """Output timestamp (in the encoder's time base) of `frame`, strictly increasing."""
        tb = self.out_time_base
        if frame.pts is None:
            # No timestamp (some AVI/raw inputs): one frame after the previous one.
            return 0 if last is None else last + max(1, round(1 / (self.rate * tb)))
        t = frame.pts * Fraction(frame.time_base or self.in_time_base) - self.offset
        # A timestamp within one input tick of the constant-rate grid is the grid time rounded to
        # the container's ticks; put it back on the grid (n / rate) so the rate stays exact.
        n = round(t * self.rate)
        if abs(t - n / self.rate) <= self.in_time_base:
            t = n / self.rate
        pts = round(t / tb)
        if last is not None and pts <= last:
            pts = last + 1  # encoders reject repeated or backwards timestamps
        return pts

    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """(H, W, 3) uint8 RGB at the output size, read with the frame's own colour tags."""
        # Decoders may change size mid-stream; frames are scaled to the first size so the output
        # stays one size (a no-op otherwise). The colour matrix defaults to the frame's tag; the
        # range must be passed, or full-range (JPEG) YUV would be read as limited range.
        return frame.to_ndarray(
            format="rgb24",
            width=self.width,
            height=self.height,
            src_color_range=frame.color_range or None,
        )

    def _encode_batch(
        self,
        out: av.container.OutputContainer,
        stream: av.VideoStream,
        batch: list[np.ndarray],
        pts: list[int],
        bar: tqdm,
    ) -> None:
        rgb = np.stack(batch)  # (B, H, W, 3) uint8
        self.input_flicker.update(rgb)
        x = uint8_to_float(rgb)  # (B, 3, H, W)
        y = self.stylize(x)
        if not isinstance(y, Tensor) or y.shape != x.shape:
            got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
            raise ValueError(f"stylize returned {got} for frames of shape {tuple(x.shape)}")
        rgb = float_to_uint8(y)  # (B, H, W, 3)
        self.output_flicker.update(rgb)
        for image, t in zip(rgb, pts, strict=True):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = t
            frame.time_base = self.out_time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        self.frames += len(batch)
        bar.update(len(batch))

    def _mux_audio(
        self,
        out: av.container.OutputContainer,
        stream: av.AudioStream,
        item: av.Packet | av.AudioFrame,
    ) -> None:
        """Shift an audio packet (copy) or frame (re-encode) by the start offset and mux it."""
        shift = round(self.offset / Fraction(item.time_base)) if item.time_base else 0
        if item.pts is not None:
            item.pts -= shift
        if isinstance(item, av.AudioFrame):
            for packet in stream.encode(item):
                self._mux_audio_packet(out, packet)
            return
        if item.dts is not None:
            item.dts -= shift
        item.stream = stream
        self._mux_audio_packet(out, item)

    def _mux_audio_packet(self, out: av.container.OutputContainer, packet: av.Packet) -> None:
        if self.fmt not in _EDIT_LIST_FORMATS and packet.pts is not None:
            # Encoder priming sits before 0 (AAC: the first 1024 samples, MP3: 1105); MP4/MOV
            # cut it with an edit list, and decoders discard it. Other containers would shift
            # every stream to fit it, which in AVI (one tick per frame) pushes the video off its
            # frame grid: so drop priming-only packets, and in AVI any packet starting before 0
            # (losing at most a few ms of sound).
            end = packet.pts + (packet.duration or 0)
            if end <= 0 or (self.fmt == "avi" and packet.pts < 0):
                return
        out.mux(packet)

    def _flush_audio(self, out: av.container.OutputContainer, stream: av.AudioStream) -> None:
        """Drain a re-encoding audio encoder."""
        for packet in stream.encode(None):
            self._mux_audio_packet(out, packet)


def _output_format(dst: Path) -> str:
    fmt = _OUTPUT_FORMATS.get(dst.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"cannot write video {dst}: use one of {', '.join(sorted(_OUTPUT_FORMATS))}"
        )
    return fmt


def _has_encoder(name: str) -> bool:
    if name not in av.codecs_available:
        return False
    try:
        av.Codec(name, "w")
    except Exception:  # PyAV raises several types for "no such encoder"
        return False
    return True
