"""The audio of a transcoded video: the first audio stream is copied untouched when the output
container accepts its codec, otherwise re-encoded (AAC for MP4/MOV, Opus for WebM/MKV, MP3 for
AVI; mono or stereo). If neither is possible it is dropped with a warning. Other streams
(subtitles, data, further audio tracks) and rotation metadata are not carried over.
"""

from __future__ import annotations

import logging
from pathlib import Path

import av

from stylenet.io.video.codecs import has_encoder
from stylenet.io.video.timing import Timeline

log = logging.getLogger(__name__)

# Audio encoders for re-encoding when a stream cannot be copied into the output container.
AUDIO_ENCODERS: dict[str, tuple[str, ...]] = {
    "mp4": ("aac",),
    "mov": ("aac",),
    "matroska": ("libopus", "aac"),
    "webm": ("libopus",),
    "avi": ("libmp3lame", "aac"),
}

# Containers that can start a stream before 0 (edit lists), so copied audio keeps its priming.
EDIT_LIST_FORMATS: frozenset[str] = frozenset({"mp4", "mov"})


class AudioTrack:
    """The input's first audio stream on its way into one or more output containers of one
    format (the same video written several ways shares one decode: `transcode_videos`).

    Args:
        container: The input.
        src: The input's path (for messages).
        fmt: The output muxer.
        keep: False drops the audio.

    Attributes:
        source: The input audio stream, or None (none, dropped, or nowhere to put it).
        note: What happened to it, in words ("none", "copied (aac)", ...).
        reencode: Whether its frames are decoded and encoded again (else packets are copied).
    """

    def __init__(
        self, container: av.container.InputContainer, src: Path, fmt: str, *, keep: bool
    ) -> None:
        audio = container.streams.audio
        self.source: av.AudioStream | None = audio[0] if keep and audio else None
        self.note = "none" if not audio else "dropped (audio=False)"
        self.src, self.fmt = src, fmt
        self.reencode = False
        self.outputs: list[tuple[av.container.OutputContainer, av.AudioStream]] = []

    def add_stream(self, out: av.container.OutputContainer) -> None:
        """Add the output audio stream to `out`: a copy of the input's where the container
        takes its codec, else an encoder for it; or none (the note says why). Every output
        gets what the first got."""
        a = self.source
        if a is None:
            return
        first = not self.outputs
        name = a.codec_context.name
        if name in out.supported_codecs and (first or not self.reencode):
            try:
                stream = out.add_stream_from_template(a)
            except (av.FFmpegError, ValueError) as err:
                log.debug("copying %s audio into %s failed: %s", name, self.fmt, err)
            else:
                self.note = f"copied ({name})"
                self.outputs.append((out, stream))
                return
        for enc in AUDIO_ENCODERS.get(self.fmt, ()):
            if not has_encoder(enc):
                continue
            rates = av.Codec(enc, "w").audio_rates
            rate = a.rate if not rates or a.rate in rates else max(rates)
            encoder = out.add_stream(enc, rate=rate)
            assert isinstance(encoder, av.AudioStream)
            encoder.layout = "mono" if a.channels == 1 else "stereo"
            self.note = f"re-encoded ({name} -> {enc})"
            if first:
                log.info(
                    "%s: audio %s does not fit %s; re-encoding to %s", self.src, name, self.fmt, enc
                )
            self.outputs.append((out, encoder))
            self.reencode = True
            return
        log.warning(
            "%s: dropping the audio (%s): %s output can neither hold it nor has an audio encoder",
            self.src,
            name,
            self.fmt,
        )
        self.note = f"dropped ({name} does not fit {self.fmt})"
        self.source = None  # not even demuxed from here on

    def mux(self, item: av.Packet | av.AudioFrame, clock: Timeline) -> None:
        """Shift an audio packet (copy) or frame (re-encode) by the start offset and mux it
        into every output."""
        if not self.outputs:
            return
        shift = clock.shift(item.time_base)
        if item.pts is not None:
            item.pts -= shift
        if isinstance(item, av.AudioFrame):
            for out, stream in self.outputs:
                for packet in stream.encode(item):
                    self._mux_packet(out, packet)
            return
        if item.dts is not None:
            item.dts -= shift
        for i, (out, stream) in enumerate(self.outputs):
            # Muxing hands the packet's data to the muxer: each output but the last gets a copy.
            packet = item if i == len(self.outputs) - 1 else _copy(item)
            packet.stream = stream
            self._mux_packet(out, packet)

    def flush(self) -> None:
        """Drain re-encoding audio encoders."""
        if self.reencode:
            for out, stream in self.outputs:
                for packet in stream.encode(None):
                    self._mux_packet(out, packet)

    def _mux_packet(self, out: av.container.OutputContainer, packet: av.Packet) -> None:
        if self.fmt not in EDIT_LIST_FORMATS and packet.pts is not None:
            # Encoder priming sits before 0 (AAC: the first 1024 samples, MP3: 1105); MP4/MOV
            # cut it with an edit list, and decoders discard it. Other containers would shift
            # every stream to fit it, which in AVI (one tick per frame) pushes the video off its
            # frame grid: so drop priming-only packets, and in AVI any packet starting before 0
            # (losing at most a few ms of sound).
            end = packet.pts + (packet.duration or 0)
            if end <= 0 or (self.fmt == "avi" and packet.pts < 0):
                return
        out.mux(packet)


def _copy(packet: av.Packet) -> av.Packet:
    """A packet with `packet`'s data, timing, key-frame flag and side data."""
    copy = av.Packet(bytes(packet))
    copy.pts, copy.dts, copy.duration = packet.pts, packet.dts, packet.duration
    copy.time_base = packet.time_base
    copy.is_keyframe = packet.is_keyframe
    for side in packet.iter_sidedata():
        copy.set_sidedata(side)
    return copy
