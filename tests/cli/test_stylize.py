"""`stylenet-stylize`: any size in, same size out; folders; never overwrite; bad inputs named and
skipped, bad options refused before any work."""

from __future__ import annotations

import subprocess
import sys
from subprocess import PIPE

import pytest
import torch
from PIL import Image

from stylenet.cli.stylize import main
from stylenet.inference.export import export_torchscript
from stylenet.inference.model_file import load_model
from stylenet.io.images import load_image
from tests.helpers import (
    make_video,
    photo,
    read_video,
    save_tiny_multistyle_model,
    save_tiny_sr_model,
)


def test_cli_keeps_odd_sizes_exactly(tmp_path, model_path) -> None:
    src = photo(tmp_path / "photo.jpg", size=(517, 333))
    out = tmp_path / "out" / "styled.png"
    assert main([model_path, str(src), "-o", str(out), "-q"]) == 0
    assert load_image(out).size == (517, 333)


def test_cli_refuses_one_pixel_images_by_name(tmp_path, model_path, capsys) -> None:
    line = tmp_path / "line.png"
    Image.new("RGB", (300, 1)).save(line)
    assert main([model_path, str(line), "-o", str(tmp_path / "o.png"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "line.png" in err and "too small" in err
    assert not (tmp_path / "o.png").exists()


def test_cli_max_side_and_scale(tmp_path, model_path) -> None:
    src = photo(tmp_path / "p.jpg", size=(200, 100))
    assert main([model_path, str(src), "-o", str(tmp_path / "a.png"), "--max-side", "64"]) == 0
    assert load_image(tmp_path / "a.png").size == (64, 32)
    assert main([model_path, str(src), "-o", str(tmp_path / "b.png"), "--scale", "0.5"]) == 0
    assert load_image(tmp_path / "b.png").size == (100, 50)


def test_cli_keeps_exif_orientation(tmp_path, model_path) -> None:
    src = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, displayed portrait
    Image.new("RGB", (40, 24), (10, 120, 200)).save(src, exif=exif)
    assert main([model_path, str(src), "-o", str(tmp_path / "r.png"), "-q"]) == 0
    assert load_image(tmp_path / "r.png").size == (24, 40)


def test_cli_folder_recursive_batches_and_reports_failures(tmp_path, model_path, capsys) -> None:
    root = tmp_path / "in"
    for i in range(3):
        photo(root / f"a{i}.jpg", size=(32, 24))  # same size: one batch
    photo(root / "sub" / "b.png", size=(40, 20))
    (root / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "empty.png").write_bytes(b"")
    out = tmp_path / "out"
    assert main([model_path, str(root), "-o", str(out), "--batch-size", "2"]) == 1
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.*"))
    assert written == ["a0.jpg", "a1.jpg", "a2.jpg", "sub/b.png"]
    assert load_image(out / "sub" / "b.png").size == (40, 20)
    captured = capsys.readouterr()
    assert "broken.jpg" in captured.err and "empty.png" in captured.err
    assert "done 4, failed 2" in captured.out
    assert "s/MP" in captured.out


def test_cli_never_overwrites(tmp_path, model_path, capsys) -> None:
    src = photo(tmp_path / "photo.jpg", size=(16, 16))
    before = src.read_bytes()
    assert main([model_path, str(src), "-o", str(src)]) == 2
    assert src.read_bytes() == before
    out = tmp_path / "exists.png"
    out.write_bytes(b"keep me")
    assert main([model_path, str(src), "-o", str(out)]) == 2
    assert out.read_bytes() == b"keep me"
    assert "--overwrite" in capsys.readouterr().err
    assert main([model_path, str(src), "-o", str(out), "--overwrite", "-q"]) == 0
    assert load_image(out).size == (16, 16)


def test_cli_reports_bad_inputs(tmp_path, model_path, capsys) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    assert main([model_path, str(bad), "-o", str(tmp_path / "o.png"), "-q"]) == 1
    assert "bad.jpg" in capsys.readouterr().err
    good = photo(tmp_path / "p.png", size=(16, 16))
    assert main([str(tmp_path / "missing.pt"), str(good), "-o", str(tmp_path / "o.png")]) == 2
    assert "missing.pt" in capsys.readouterr().err
    wrong = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2)}, wrong)
    assert main([str(wrong), str(good), "-o", str(tmp_path / "o.png")]) == 2
    assert "weights.pt" in capsys.readouterr().err
    empty = tmp_path / "nothing"
    empty.mkdir()
    assert main([model_path, str(empty), "-o", str(tmp_path / "o")]) == 1
    assert "no images" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()
    with pytest.raises(SystemExit) as stop:  # neither an input nor --list
        main([model_path, "-o", str(tmp_path / "o")])
    assert stop.value.code == 2
    assert "give at least one INPUT, or --list FILE" in capsys.readouterr().err


def test_an_empty_photo_is_named_as_empty(tmp_path, model_path, capsys) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    assert main([model_path, str(empty), "-o", str(tmp_path / "o.png"), "-q"]) == 1
    [line] = capsys.readouterr().err.splitlines()
    # The reason load_image gives every photo, not Pillow's "cannot identify image file".
    assert line == f"FAILED {empty}: cannot read image {empty}: empty file (0 bytes)"
    assert not (tmp_path / "o.png").exists()


def test_cli_stylizes_a_video_and_says_how_to_measure_flicker(tmp_path, model_path, capsys) -> None:
    src = make_video(tmp_path / "clip.mp4", frames=8, width=48, height=32, fps=12)
    out = tmp_path / "styled.mp4"
    assert main([model_path, str(src), "-o", str(out), "-q"]) == 0
    frames, _, rate = read_video(out)
    assert frames.shape[0] == 8 and frames.shape[-2:] == (32, 48) and rate == 12
    assert "stylenet-evaluate MODEL --video" in capsys.readouterr().out


def test_cli_tiled_output_keeps_size_and_refuses_exports(tmp_path, model_path, capsys) -> None:
    src = photo(tmp_path / "big.png", size=(203, 150))
    out = tmp_path / "tiled.png"
    args = [str(src), "-o", str(out), "-q", "--tile", "64", "--overlap", "16"]
    assert main([model_path, *args]) == 0
    assert load_image(out).size == (203, 150)
    exported = tmp_path / "m.torchscript.pt"
    export_torchscript(load_model(model_path), exported)
    assert main([str(exported), *args[:2], str(tmp_path / "x.png"), *args[3:]]) == 2
    assert "--tile" in capsys.readouterr().err


def test_cli_tile_without_overlap_uses_a_fitting_default(tmp_path, model_path) -> None:
    src = photo(tmp_path / "big.png", size=(203, 150))
    assert main([model_path, str(src), "-o", str(tmp_path / "t.png"), "-q", "--tile", "64"]) == 0
    assert load_image(tmp_path / "t.png").size == (203, 150)


def test_an_output_that_cannot_be_written_fails_that_photo_only(
    tmp_path, model_path, capsys
) -> None:
    root = tmp_path / "in"
    photo(root / "a.jpg", size=(32, 24))
    photo(root / "sub" / "b.jpg", size=(32, 24))
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").write_text("a file where the folder for b.jpg would go")
    assert main([model_path, str(root), "-o", str(out), "-q"]) == 1
    assert load_image(out / "a.jpg").size == (32, 24)
    captured = capsys.readouterr()
    [failed] = [line for line in captured.err.splitlines() if line.startswith("FAILED")]
    assert "b.jpg" in failed and "cannot write" in failed
    assert "done 1, failed 1" in captured.out


# --- bad arguments: one line, exit status 2, nothing written; one row each ------------------

ROWS: dict[str, tuple[list[str], str]] = {
    "tile too small": (["--tile", "3"], "--tile must be a multiple of 4 and at least 64, got 3"),
    "overlap too large": (
        ["--tile", "256", "--overlap", "200"],
        "--overlap must be >= 0 and less than tile / 2 = 128, got 200",
    ),
    "overlap too large for the default tile": (
        ["--overlap", "500"],
        "--overlap must be >= 0 and less than tile / 2 = 384, got 500",
    ),
    "stats size 0": (["--stats-size", "0"], "--stats-size must be at least 64, got 0"),
    "max side 0": (["--max-side", "0"], "argument --max-side: must be at least 1, got 0"),
    "strength above 1": (["--strength", "2"], "strength must be in [0, 1], got 2.0"),
    "precision the CPU lacks": (["--device", "cpu", "--precision", "fp16"], "needs a GPU"),
    "missing model": (["MODEL=missing.pt"], "missing.pt: no such file"),
    "missing list file": (["--list", "absent.txt"], "--list absent.txt: cannot read it"),
    # Issue 16: an infinite scale overflowed (a traceback); nan, 0 and negative ones refused.
    **{
        f"scale {value}": (
            ["--scale", value],
            f"argument --scale: must be a finite number > 0, got {value}",
        )
        for value in ("inf", "nan", "0", "-1")
    },
    # An infinite mix weight made an all-black image (inf / inf); exit 0.
    **{
        f"mix weight {value}": (
            ["MODEL=multi/model.pt", "--mix", f"mosaic:{value},candy:1"],
            f"the weight of 'mosaic' must be a finite number >= 0, got {value}",
        )
        for value in ("inf", "nan", "-1")
    },
    # Issue 17: a super-resolution model is for stylenet-upscale, with or without style flags.
    **{
        f"super-resolution model{' ' + ' '.join(flags) if flags else ''}": (
            ["MODEL=sr/model.pt", *flags],
            "sr/model.pt is a ×4 super-resolution model, which has no styles: upscale photos "
            "with stylenet-upscale",
        )
        for flags in ([], ["--style", "candy"], ["--all-styles"])
    },
}


@pytest.fixture(scope="module")
def rows(tmp_path_factory, model_path) -> dict[str, subprocess.CompletedProcess[str]]:
    tmp = tmp_path_factory.mktemp("rows")
    save_tiny_multistyle_model(tmp / "multi", ["mosaic", "candy"])
    save_tiny_sr_model(tmp / "sr")
    for name in ("a.jpg", "b.jpg"):
        photo(tmp / "photos" / name, size=(40, 30))
    procs = {}
    for i, (name, (args, _)) in enumerate(ROWS.items()):
        model = next((a.split("=", 1)[1] for a in args if a.startswith("MODEL=")), None)
        args = [a for a in args if not a.startswith("MODEL=")]
        model = str(tmp / model) if model else model_path
        cmd = [sys.executable, "-m", "stylenet.cli.stylize", model, str(tmp / "photos")]
        cmd += ["-o", str(tmp / f"out{i}"), "-q", *args]
        procs[name] = (subprocess.Popen(cmd, stdout=PIPE, stderr=PIPE, text=True), tmp / f"out{i}")
    results = {}
    for name, (proc, out) in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
        assert not out.exists(), f"{name}: wrote {out}"
    return results


@pytest.mark.parametrize("row", list(ROWS))
def test_a_bad_argument_is_one_line_and_exit_status_2(row: str, rows) -> None:
    proc = rows[row]
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith("stylenet-stylize: ") and ROWS[row][1] in line, line
