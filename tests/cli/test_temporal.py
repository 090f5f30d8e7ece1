"""The temporal metrics through the commands: `stylenet-evaluate --moves / --video` and
`stylenet-stylize --temporal`; bad video inputs give one line and write nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stylenet.cli.evaluate import main as evaluate
from stylenet.cli.stylize import main as stylize
from tests.helpers import make_video, photo, read_video


def test_evaluate_moves_and_video_write_a_temporal_report(
    tmp_path, model_path, style_path, vgg16_weights, capsys
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    photo(photos / "a.png", size=(90, 70))
    clip = make_video(tmp_path / "clip.mp4", frames=6, width=64, height=48)
    out = tmp_path / "eval"
    args = [model_path, "--video", str(clip), "-o", str(out), "-q", "--frames", "3"]
    assert evaluate(args) == 0
    report = json.loads((out / "temporal.json").read_text())
    methods = [row["method"] for row in report["rows"]]
    assert methods == ["model", "model --temporal 0.5"]
    assert all(row["clip"] == "video" and row["seconds_per_frame"] > 0 for row in report["rows"])
    assert "DIS optical flow" in (out / "temporal.md").read_text()
    # An existing report is kept unless --overwrite.
    assert evaluate(args) == 2
    assert "temporal.json exists" in capsys.readouterr().err
    style = ["--style", str(style_path), "--size", "64"]
    assert evaluate([*args, "--overwrite", "--content", str(photos), "--moves", *style]) == 0
    rows = json.loads((out / "temporal.json").read_text())["rows"]
    assert [r["clip"] for r in rows if r["source"] == "a.png"] == ["pan", "zoom", "rotate", "noise"]
    only = [*args, "--overwrite", "--content", str(photos), "--moves", "pan", "noise", *style]
    assert evaluate(only) == 0
    rows = json.loads((out / "temporal.json").read_text())["rows"]
    assert [r["clip"] for r in rows if r["source"] == "a.png"] == ["pan", "noise"]
    pan = next(r for r in rows if r["clip"] == "pan")
    assert pan["input_error"] == 0 and pan["output_error"] > 0 and pan["ratio"] is None
    assert (out / "report.json").exists()  # the style report beside it


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--moves"], "--moves makes its clips from the --content photos"),
        (["--video", "missing.mp4"], "--video missing.mp4: no such file"),
        (["--video", "CLIP", "--temporal-strength", "1"], "--temporal-strength 1.0"),
        ([], "give --content PHOTOS"),
    ],
)
def test_evaluate_refuses_bad_temporal_options(
    tmp_path, model_path, capsys, extra, message
) -> None:
    clip = make_video(tmp_path / "clip.mp4", frames=3)
    extra = [str(clip) if e == "CLIP" else e for e in extra]
    assert evaluate([model_path, "-o", str(tmp_path / "eval"), "-q", *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "eval").exists()


def test_a_one_frame_or_empty_video_is_one_line(tmp_path, model_path, capsys) -> None:
    one = make_video(tmp_path / "one.mp4", frames=1)
    assert evaluate([model_path, "--video", str(one), "-o", str(tmp_path / "e"), "-q"]) == 2
    assert "1 frame(s); the warping error needs at least 2" in capsys.readouterr().err
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert evaluate([model_path, "--video", str(empty), "-o", str(tmp_path / "e"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "empty.mp4" in err and "Traceback" not in err
    assert not (tmp_path / "e" / "temporal.json").exists()


def test_stylize_temporal_keeps_frames_and_size(tmp_path, model_path, capsys) -> None:
    src = make_video(tmp_path / "clip.mp4", frames=6, width=48, height=32, fps=12)
    out = tmp_path / "steady.mp4"
    assert stylize([model_path, str(src), "-o", str(out), "-q", "--temporal"]) == 0
    frames, _, rate = read_video(out)
    assert frames.shape[0] == 6 and frames.shape[-2:] == (32, 48) and rate == 12
    assert stylize([model_path, str(src), "-o", str(tmp_path / "x.mp4"), "--temporal", "1.5"]) == 2
    assert "--temporal 1.5" in capsys.readouterr().err
    assert not Path(tmp_path / "x.mp4").exists()


def test_stylize_a_damaged_video_fails_it_alone_and_writes_nothing(
    tmp_path, model_path, capsys
) -> None:
    (tmp_path / "in").mkdir()
    good = make_video(tmp_path / "in" / "good.mp4", frames=30)
    data = bytearray(good.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 400] = bytes(b ^ 0x5A for b in data[middle : middle + 400])
    (tmp_path / "in" / "bad.mp4").write_bytes(bytes(data))
    out = tmp_path / "out"
    assert stylize([model_path, str(tmp_path / "in"), "-o", str(out), "-q", "--temporal"]) == 1
    err = capsys.readouterr().err
    assert "FAILED" in err and "bad.mp4: decoding failed after" in err
    assert sorted(p.name for p in out.iterdir()) == ["good.mp4"]  # no half video, no temp file
