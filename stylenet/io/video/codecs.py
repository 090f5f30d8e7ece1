"""Codec policy: which container an extension means, which encoder and pixel format a video is
written with, and the encoder's quality settings. Every choice is logged by the transcoder.

- **Video codec** (from the output extension, best available in this FFmpeg build first):
  .mp4/.m4v/.mov/.mkv: H.264 (libx264, CRF 18) else MPEG-4 Part 2; .webm: VP9 (CRF 31) else VP8;
  .avi: MPEG-4 Part 2 (qscale 3), the codec AVI players expect.
- **Odd sizes**: 4:2:0 chroma needs even sides in libx264, so an odd-sized H.264 output is encoded
  as 4:4:4 (``yuv444p``, H.264 "High 4:4:4" profile) instead of being padded or cropped. FFmpeg and
  VLC play it; some browsers and hardware decoders do not. VP9, VP8 and MPEG-4 take odd sizes in
  4:2:0 as they are. A warning says when this happens.
- **Colour**: frames are written as BT.601 limited range, tagged as such so players convert them
  back correctly (`configure_encoder`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import av

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

# Extensions this package writes, and the FFmpeg muxer for each. Named explicitly because the
# temporary file is written through a file object, which carries no extension to guess from.
OUTPUT_FORMATS: dict[str, str] = {
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
CODEC_PREFERENCE: dict[str, tuple[str, ...]] = {
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
DEFAULT_QUALITY: dict[str, int] = {"libx264": 18, "libvpx-vp9": 31, "libvpx": 10, "mpeg4": 3}


def is_video(path: str | os.PathLike) -> bool:
    """Whether `path` has a video extension (see `VIDEO_EXTENSIONS`); the file is not opened."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def output_format(dst: Path) -> str:
    """The FFmpeg muxer for an output path.

    Raises:
        ValueError: The extension is not one this package writes.
    """
    fmt = OUTPUT_FORMATS.get(dst.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"cannot write video {dst}: use one of {', '.join(sorted(OUTPUT_FORMATS))}"
        )
    return fmt


def has_encoder(name: str) -> bool:
    """Whether this FFmpeg build has the encoder `name`."""
    if name not in av.codecs_available:
        return False
    try:
        av.Codec(name, "w")
    except Exception:  # PyAV raises several types for "no such encoder"
        return False
    return True


def output_codecs(suffix: str) -> list[str]:
    """Video encoders this FFmpeg build offers for an output extension, best first.

    Args:
        suffix: Output extension, e.g. ".mp4".

    Raises:
        ValueError: The extension is not one this package writes.
    """
    fmt = output_format(Path(f"x{suffix}"))
    return [name for name in CODEC_PREFERENCE[fmt] if has_encoder(name)]


def pick_codec(fmt: str) -> str:
    """The best video encoder this build has for the muxer `fmt`."""
    for name in CODEC_PREFERENCE[fmt]:
        if has_encoder(name):
            return name
    raise ValueError(f"this FFmpeg build has no video encoder for {fmt} output")


def pick_pixel_format(codec: str, width: int, height: int, src: Path) -> str:
    """yuv420p where the encoder takes the size, else yuv444p (warned), else its first."""
    formats = [f.name for f in av.Codec(codec, "w").video_formats or ()]
    odd = width % 2 == 1 or height % 2 == 1
    if "yuv420p" in formats and not (odd and codec in _EVEN_ONLY_420):
        return "yuv420p"
    if "yuv444p" in formats:
        if odd:
            log.warning(
                "%s is %d×%d (odd): %s needs even sides for yuv420p, so the output is "
                "yuv444p (H.264 High 4:4:4), which some browsers and hardware players cannot "
                "play; use a .webm output (VP9) or an even size for the widest support",
                src,
                width,
                height,
                codec,
            )
        return "yuv444p"
    return formats[0] if formats else "yuv420p"


def configure_encoder(
    stream: av.VideoStream, source: av.VideoStream, codec: str, quality: int | None
) -> int | None:
    """Colour tags (copied from `source` where it states them) and the constant-quality
    setting of an output video stream; returns the quality used."""
    cc = stream.codec_context
    in_cc = source.codec_context
    if in_cc.sample_aspect_ratio:
        cc.sample_aspect_ratio = in_cc.sample_aspect_ratio  # non-square pixels display alike
    # Frames go RGB -> YUV through swscale's default matrix, BT.601 limited range; tag it so
    # players convert back with the same matrix (an untagged HD video is read as BT.709).
    # Primaries and transfer describe the RGB values themselves, which the frame map keeps.
    cc.colorspace = 6  # AVCOL_SPC_SMPTE170M (BT.601)
    cc.color_range = 1  # AVCOL_RANGE_MPEG (limited)
    if in_cc.color_primaries != 2:  # 2 = unspecified
        cc.color_primaries = in_cc.color_primaries
    if in_cc.color_trc != 2:
        cc.color_trc = in_cc.color_trc
    q = quality if quality is not None else DEFAULT_QUALITY.get(codec)
    if codec == "libx264":
        stream.options = {"crf": str(q), "preset": "medium"}
    elif codec == "libvpx-vp9":
        cc.bit_rate = 0
        stream.options = {"crf": str(q), "b": "0", "row-mt": "1"}
    elif codec == "libvpx":
        cc.bit_rate = 2_000_000
        stream.options = {"crf": str(q)}
    elif codec == "mpeg4":
        assert q is not None  # mpeg4 has a default quality
        cc.qscale = True
        cc.global_quality = q * 118  # FF_QP2LAMBDA: how ffmpeg's -q:v sets it
    return q
