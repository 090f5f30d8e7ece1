"""The transcoder: same frames, rate, size and timing out; files kept safe; frames read back."""

from __future__ import annotations

import pickle
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from stylenet.io.video import (
    VIDEO_EXTENSIONS,
    VideoReadError,
    is_video,
    output_codecs,
    read_frames,
    transcode_video,
    transcode_videos,
)
from tests.helpers import FPS, FRAMES, make_video, read_video

av = pytest.importorskip("av")


def invert(x: Tensor) -> Tensor:
    return 1 - x


def identity(x: Tensor) -> Tensor:
    return x


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("video") / "clip.mp4")


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".avi", ".mkv", ".mov"])
def test_inverted_video_keeps_frames_rate_size_and_timing(
    clip: Path, tmp_path: Path, suffix: str
) -> None:
    if not output_codecs(suffix):
        pytest.skip(f"no encoder for {suffix} in this FFmpeg build")
    dst = tmp_path / f"inverted{suffix}"
    report = transcode_video(clip, dst, map_frames=invert, progress=False)

    source, source_times, _ = read_video(clip)
    styled, times, rate = read_video(dst)
    assert (report.frames, report.width, report.height) == (FRAMES, 64, 48)
    assert report.frame_rate == FPS and report.fps == pytest.approx(FPS)
    assert styled.shape == source.shape
    assert rate == FPS
    # Every frame is shown when it was in the input (WebM stores milliseconds).
    assert [round(t * 1000) for t in times] == [round(t * 1000) for t in source_times]
    assert report.duration == pytest.approx(FRAMES / FPS)
    # Lossy codecs: compare on average, with a bound on the worst frame too.
    errors = (styled - (1 - source)).abs().mean(dim=(1, 2, 3))
    assert errors.mean() < 0.03 and errors.max() < 0.05, errors
    assert report.output == dst and report.input == clip and report.seconds > 0


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".avi"])
def test_odd_size_is_kept(tmp_path: Path, suffix: str) -> None:
    if not output_codecs(suffix):
        pytest.skip(f"no encoder for {suffix} in this FFmpeg build")
    src = make_video(tmp_path / "odd.mp4", width=65, height=49, frames=6)
    report = transcode_video(src, tmp_path / f"out{suffix}", map_frames=invert, progress=False)
    styled, _, _ = read_video(report.output)
    source, _, _ = read_video(src)
    assert (report.width, report.height) == (65, 49)
    assert styled.shape == (6, 3, 49, 65)
    assert (styled - (1 - source)).abs().mean() < 0.05
    if report.codec == "libx264":
        assert report.pixel_format == "yuv444p"  # 4:2:0 H.264 needs even sides


def test_read_frames_gives_the_decoded_frames_in_order(clip: Path) -> None:
    source, _, _ = read_video(clip)
    frames = np.stack(list(read_frames(clip)))
    assert frames.shape == (FRAMES, 48, 64, 3) and frames.dtype == np.uint8
    assert np.array_equal(frames, (source.permute(0, 2, 3, 1).numpy() * 255).round())
    assert len(list(read_frames(clip, max_frames=2))) == 2


def test_a_one_frame_video_is_transcoded(tmp_path: Path) -> None:
    one = make_video(tmp_path / "one.mp4", frames=1)
    report = transcode_video(one, tmp_path / "out.mp4", map_frames=invert, progress=False)
    assert report.frames == 1 and read_video(report.output)[0].shape[0] == 1


@pytest.mark.parametrize("batch_size", [1, 5, 64])
def test_stylize_never_sees_more_than_batch_size_frames(
    clip: Path, tmp_path: Path, batch_size: int
) -> None:
    seen: list[tuple[int, ...]] = []

    def record(x: Tensor) -> Tensor:
        seen.append(tuple(x.shape))
        assert x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1
        return x

    report = transcode_video(
        clip, tmp_path / "out.mp4", map_frames=record, batch_size=batch_size, progress=False
    )
    assert max(s[0] for s in seen) <= batch_size
    assert sum(s[0] for s in seen) == report.frames == FRAMES
    assert all(s[1:] == (3, 48, 64) for s in seen)
    # Full batches except possibly the last one.
    assert all(s[0] == min(batch_size, FRAMES) for s in seen[:-1])


def test_refuses_to_overwrite(clip: Path, tmp_path: Path) -> None:
    dst = tmp_path / "taken.mp4"
    dst.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match=r"taken\.mp4"):
        transcode_video(clip, dst, map_frames=invert, progress=False)
    assert dst.read_bytes() == b"keep me"

    transcode_video(clip, dst, map_frames=invert, overwrite=True, progress=False)
    assert read_video(dst)[0].shape[0] == FRAMES
    with pytest.raises(ValueError, match="is the input"):
        transcode_video(clip, clip, map_frames=invert, overwrite=True, progress=False)


@pytest.mark.parametrize("content", [b"", b"random"])
def test_corrupt_video_is_a_read_error_naming_the_file(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(content and np.random.default_rng(0).bytes(20_000))
    with pytest.raises(VideoReadError, match=r"broken\.mp4") as info:
        transcode_video(bad, tmp_path / "out.mp4", map_frames=invert, progress=False)
    assert info.value.path == bad
    assert pickle.loads(pickle.dumps(info.value)).path == bad  # survives worker processes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.mp4"]


def test_failure_midway_leaves_no_output(clip: Path, tmp_path: Path) -> None:
    calls = 0

    def fail_on_third_batch(x: Tensor) -> Tensor:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("out of memory")
        return x

    with pytest.raises(RuntimeError, match="out of memory"):
        transcode_video(clip, tmp_path / "out.mp4", map_frames=fail_on_third_batch, progress=False)
    with pytest.raises(ValueError, match="map_frames returned"):
        transcode_video(
            clip, tmp_path / "out.mp4", map_frames=lambda x: x[:, :, :-1], progress=False
        )
    assert list(tmp_path.iterdir()) == []  # no half video, no temporary file


def test_rejects_bad_arguments(clip: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.gif"):
        transcode_video(clip, tmp_path / "out.gif", map_frames=invert, progress=False)
    with pytest.raises(ValueError, match="not available"):
        transcode_video(
            clip, tmp_path / "out.mp4", map_frames=invert, codec="no-such-codec", progress=False
        )
    with pytest.raises(ValueError, match="batch_size"):
        transcode_video(clip, tmp_path / "out.mp4", map_frames=invert, batch_size=0, progress=False)
    with pytest.raises(FileNotFoundError):
        transcode_video(
            tmp_path / "missing.mp4", tmp_path / "out.mp4", map_frames=invert, progress=False
        )


def test_audio_is_copied_or_reencoded(tmp_path: Path) -> None:
    src = make_video(tmp_path / "talk.mp4", frames=12, audio="aac")

    copied = transcode_video(src, tmp_path / "copy.mkv", map_frames=identity, progress=False)
    assert copied.audio == "copied (aac)"
    if "libopus" in av.codecs_available:
        reencoded = transcode_video(
            src, tmp_path / "opus.webm", map_frames=identity, progress=False
        )
        assert reencoded.audio.startswith("re-encoded")
    dropped = transcode_video(
        src, tmp_path / "mute.mp4", map_frames=identity, audio=False, progress=False
    )
    assert dropped.audio.startswith("dropped")

    for report, has_audio in [(copied, True), (dropped, False)]:
        with av.open(str(report.output)) as container:
            assert bool(container.streams.audio) == has_audio
            assert container.streams.video[0].average_rate == FPS
        # Video still starts at 0 and keeps its grid next to the audio.
        _, times, _ = read_video(report.output)
        assert [round(t * FPS) for t in times] == list(range(12))


def test_webm_millisecond_timestamps_go_back_on_the_frame_grid(tmp_path: Path) -> None:
    src = make_video(tmp_path / "clip.webm", frames=12)
    report = transcode_video(src, tmp_path / "out.mp4", map_frames=identity, progress=False)
    _, times, rate = read_video(report.output)
    assert rate == FPS
    assert times == [Fraction(i, FPS) for i in range(12)]  # exact, not 83 ms, 167 ms, ...


def test_is_video() -> None:
    assert {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"} <= VIDEO_EXTENSIONS
    assert is_video("a/b/Clip.MP4") and is_video(Path("x.webm"))
    assert not is_video("photo.jpg") and not is_video("mp4")


def test_a_damaged_middle_is_one_read_error_and_nothing_is_written(tmp_path: Path) -> None:
    good = make_video(tmp_path / "good.mp4", frames=30)
    data = bytearray(good.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 400] = bytes(b ^ 0x5A for b in data[middle : middle + 400])
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    with pytest.raises(VideoReadError, match=r"bad\.mp4: decoding failed after \d+ frames"):
        transcode_video(bad, tmp_path / "out.mp4", map_frames=invert, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4", "good.mp4"]


def test_a_variable_frame_rate_keeps_its_timestamps(tmp_path: Path) -> None:
    src = tmp_path / "vfr.mkv"
    shown = [0, 1, 3, 4, 8, 9]  # in 1/FPS ticks: frames held for 1, 2 and 4 ticks
    with av.open(str(src), "w") as out:
        stream = out.add_stream("libx264" if "libx264" in output_codecs(".mkv") else "mpeg4")
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, FPS)
        for i, tick in enumerate(shown):
            image = np.full((48, 64, 3), 30 * i, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = tick, Fraction(1, FPS)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    _, source_times, _ = read_video(src)
    report = transcode_video(src, tmp_path / "out.mkv", map_frames=invert, progress=False)
    _, times, _ = read_video(report.output)
    assert report.frames == len(shown)
    assert [round(t * 1000) for t in times] == [round(t * 1000) for t in source_times]
    assert [round(t * FPS) for t in times] == shown


def test_several_outputs_from_one_decode(tmp_path: Path) -> None:
    src = make_video(tmp_path / "talk.mp4", frames=12, audio="aac")
    calls: list[int] = []

    def both(x: Tensor) -> list[Tensor]:
        calls.append(len(x))
        return [1 - x, x]

    dsts = [tmp_path / "out" / "inverted.mkv", tmp_path / "out" / "same.mkv"]
    reports = transcode_videos(src, dsts, map_frames=both, batch_size=4, progress=False)
    assert calls == [4, 4, 4]  # each batch of frames mapped once for both outputs
    assert [r.output for r in reports] == dsts and all(r.frames == 12 for r in reports)
    source, source_times, _ = read_video(src)
    for dst, want in zip(dsts, [1 - source, source], strict=True):
        frames, times, rate = read_video(dst)
        assert rate == FPS  # and every frame shown when it was (Matroska stores milliseconds)
        assert [round(t * 1000) for t in times] == [round(t * 1000) for t in source_times]
        assert (frames - want).abs().mean() < 0.03
        with av.open(str(dst)) as container:  # each output has the audio, copied
            assert container.streams.audio[0].codec_context.name == "aac"
            assert sum(p.size for p in container.demux(audio=0)) > 0
    if "libopus" in av.codecs_available:  # re-encoded: one encoder per output
        webms = [tmp_path / "a.webm", tmp_path / "b.webm"]
        reports = transcode_videos(src, webms, map_frames=both, progress=False)
        assert all(r.audio.startswith("re-encoded") for r in reports)
        for dst in webms:
            with av.open(str(dst)) as container:
                assert sum(f.samples for f in container.decode(audio=0)) > 0


def test_several_outputs_are_refused_together(clip: Path, tmp_path: Path) -> None:
    (tmp_path / "b.mp4").write_bytes(b"keep")
    with pytest.raises(FileExistsError, match=r"b\.mp4"):
        transcode_videos(
            clip, [tmp_path / "a.mp4", tmp_path / "b.mp4"], map_frames=lambda x: [x, x]
        )
    with pytest.raises(ValueError, match="one format"):
        transcode_videos(
            clip, [tmp_path / "a.mp4", tmp_path / "a.mkv"], map_frames=lambda x: [x, x]
        )
    with pytest.raises(ValueError, match="2 output"):  # one batch for two outputs
        transcode_videos(
            clip, [tmp_path / "a.mp4", tmp_path / "c.mp4"], map_frames=lambda x: [x], progress=False
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.mp4"]  # nothing half-written
    assert (tmp_path / "b.mp4").read_bytes() == b"keep"
