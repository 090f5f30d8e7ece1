"""`stylenet-upscale`: photos and folders ×scale, named and written as `stylenet-stylize` writes
them; tiles with the untiled result; bad models, arguments and inputs get one line."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from subprocess import PIPE

import numpy as np
import pytest
from PIL import Image

from stylenet.cli.upscale import main
from stylenet.inference import api, batch
from stylenet.inference.export import export_onnx
from stylenet.inference.model_card import ModelCard
from stylenet.io.images import load_image
from tests.helpers import photo, run_cli, save_tiny_sr_model


@pytest.fixture(scope="module")
def sr_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random ×4 model.pt."""
    return str(save_tiny_sr_model(tmp_path_factory.mktemp("sr"))[0])


def _levels(a: Path, b: Path) -> int:
    return int(np.abs(np.asarray(load_image(a), int) - np.asarray(load_image(b), int)).max())


def test_a_photo_and_folders_are_upscaled_and_named_as_stylize_names_them(
    tmp_path: Path, sr_model: str
) -> None:
    src = photo(tmp_path / "photo.jpg", size=(31, 22))
    rc, out, err = run_cli(main, [sr_model, str(src), "-o", str(tmp_path / "big.png"), "-q"])
    assert rc == 0, err
    assert load_image(tmp_path / "big.png").size == (124, 88)
    assert "done 1, failed 0; 0.00 MP upscaled ×4 in" in out
    assert f"wrote {tmp_path / 'big.png'}" in out

    root = tmp_path / "in"
    photo(root / "a.jpg", size=(20, 16))
    photo(root / "b.jpg", size=(20, 16))  # the same size: one batch
    photo(root / "sub" / "c.png", size=(17, 9))
    rc, out, err = run_cli(main, [sr_model, str(root), "-o", str(tmp_path / "out"), "-q"])
    assert rc == 0, err
    written = sorted(
        p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.*")
    )
    assert written == ["a.jpg", "b.jpg", "sub/c.png"]
    assert Image.open(tmp_path / "out" / "a.jpg").format == "JPEG"  # the input's format
    assert load_image(tmp_path / "out" / "sub" / "c.png").size == (68, 36)
    assert "done 3, failed 0" in out


def test_tiles_max_side_overwrite_and_backends(tmp_path: Path, sr_model: str) -> None:
    src = photo(tmp_path / "p.png", size=(61, 43))
    whole, tiled = tmp_path / "whole.png", tmp_path / "tiled.png"
    assert main([sr_model, str(src), "-o", str(whole), "-q"]) == 0
    assert main([sr_model, str(src), "-o", str(tiled), "-q", "--tile", "16"]) == 0
    assert load_image(tiled).size == (244, 172) and _levels(tiled, whole) <= 1
    onnx = tmp_path / "ort.png"
    assert main([sr_model, str(src), "-o", str(onnx), "-q", "--backend", "onnxruntime"]) == 0
    assert _levels(onnx, whole) <= 1
    exported = tmp_path / "sr.onnx"
    export_onnx(api.load(sr_model).backend.net, exported, card=ModelCard("", task="superres"))
    assert main([str(exported), str(src), "-o", str(tmp_path / "e.png"), "--tile", "20"]) == 0
    assert _levels(tmp_path / "e.png", whole) <= 1
    raw = tmp_path / "raw.png"  # without the paper's histogram matching, on by default
    assert main([sr_model, str(src), "-o", str(raw), "-q", "--no-match-histograms"]) == 0
    assert _levels(raw, whole) > 0
    small = tmp_path / "small.png"
    assert main([sr_model, str(src), "-o", str(small), "-q", "--max-side", "30"]) == 0
    assert load_image(small).size == (120, 84)  # 61×43 → 30×21, then ×4
    rc, _, err = run_cli(main, [sr_model, str(src), "-o", str(small), "-q"])
    assert rc == 2 and "--overwrite" in err
    assert main([sr_model, str(src), "-o", str(small), "-q", "--overwrite"]) == 0
    assert load_image(small).size == (244, 172)


def test_a_16_bit_png_is_upscaled_as_load_image_reads_it(tmp_path: Path, sr_model: str) -> None:
    ramp = np.linspace(0, 65535, 40 * 24).reshape(24, 40).astype(np.uint16)
    deep = tmp_path / "deep.png"
    Image.fromarray(ramp).save(deep)  # mode I;16
    assert Image.open(deep).mode.startswith("I")
    eight = tmp_path / "eight.png"
    load_image(deep).save(eight)  # its 8-bit RGB reading
    assert main([sr_model, str(deep), "-o", str(tmp_path / "a.png"), "-q"]) == 0
    assert main([sr_model, str(eight), "-o", str(tmp_path / "b.png"), "-q"]) == 0
    assert load_image(tmp_path / "a.png").size == (160, 96)
    assert _levels(tmp_path / "a.png", tmp_path / "b.png") == 0


def test_an_output_too_large_untiled_is_tiled_and_one_too_large_to_hold_is_refused(
    tmp_path: Path,
    sr_model: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    src = photo(tmp_path / "p.png", size=(40, 30))
    assert main([sr_model, str(src), "-o", str(tmp_path / "whole.png"), "-q"]) == 0
    # Half the free memory is less than an untiled forward: tiled, the same result.
    monkeypatch.setattr(api, "free_memory", lambda device: 40 * 30 * 16 * 8 * 18)
    with caplog.at_level(logging.WARNING, logger="stylenet.inference.batch"):
        rc, _, err = run_cli(main, [sr_model, str(src), "-o", str(tmp_path / "auto.png"), "-q"])
    assert rc == 0, err
    assert "need more memory untiled than is free; upscaling them in 192-px tiles" in caplog.text
    assert _levels(tmp_path / "auto.png", tmp_path / "whole.png") <= 1
    # Not even room for the result: that photo fails, in one line.
    monkeypatch.setattr(batch, "free_memory", lambda device: 10_000)
    rc, _, err = run_cli(main, [sr_model, str(src), "-o", str(tmp_path / "none.png"), "-q"])
    [line] = err.splitlines()
    assert rc == 1 and line == (
        f"FAILED {src}: 40×30 px upscaled ×4 to 160×120 px needs about 0.0 GB of memory to "
        "hold, more than the 0.0 GB free, tiled or not: choose a smaller --max-side"
    )
    assert not (tmp_path / "none.png").exists()


def _bomb(path: Path, width: int, height: int) -> Path:
    """A 1-bit PNG of width×height px in a few KB (see tests/cli/test_app.py)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    packer = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )
    return path


# --- bad models, arguments and inputs: one line each ------------------------------------

# (arguments, what the one line says, exit status); MODEL=style: the style model, PHOTO=name: that
# photo instead of the folder of good ones.
ROWS: dict[str, tuple[list[str], str, int]] = {
    "a style model": (
        ["MODEL=style"],
        "is a style model, not a super-resolution model: stylize photos with stylenet-stylize",
        2,
    ),
    "--style": (["--style", "candy"], "unrecognized arguments: --style candy", 2),
    "--mix": (["--mix", "a:1,b:1"], "unrecognized arguments: --mix a:1,b:1", 2),
    "--all-styles": (["--all-styles"], "unrecognized arguments: --all-styles", 2),
    "a video": (["PHOTO=clip.mp4"], "clip.mp4 is a video: this command takes photos only", 2),
    "tile too small": (["--tile", "8"], "argument --tile: must be at least 16, got 8", 2),
    "missing model": (["MODEL=missing.pt"], "missing.pt: no such file", 2),
    "a photo under the network's minimum": (
        ["PHOTO=tiny.png"],
        "image of 4×30 px is too small to upscale: each side needs at least 5 px",
        1,
    ),
    "a decompression bomb": (["PHOTO=bomb.png"], "decompression bomb", 1),
}


@pytest.fixture(scope="module")
def rows(tmp_path_factory, sr_model, model_path) -> dict[str, subprocess.CompletedProcess[str]]:
    tmp = tmp_path_factory.mktemp("rows")
    for name in ("a.jpg", "b.jpg"):
        photo(tmp / "photos" / name, size=(24, 18))
    photo(tmp / "tiny.png", size=(4, 30))
    _bomb(tmp / "bomb.png", 20_000, 10_000)  # 200 MP: past Pillow's limit of 2 × 89 MP
    (tmp / "clip.mp4").write_bytes(b"")
    models = {"style": model_path, "missing.pt": str(tmp / "missing.pt")}
    procs = {}
    for i, (name, (args, _, _)) in enumerate(ROWS.items()):
        given = dict(a.split("=", 1) for a in args if a.startswith(("MODEL=", "PHOTO=")))
        args = [a for a in args if not a.startswith(("MODEL=", "PHOTO="))]
        model = models.get(given.get("MODEL", ""), sr_model)
        src = tmp / given["PHOTO"] if "PHOTO" in given else tmp / "photos"
        out = tmp / f"out{i}"
        cmd = [sys.executable, "-m", "stylenet.cli.upscale", model, str(src), "-o", str(out)]
        procs[name] = (
            subprocess.Popen([*cmd, "-q", *args], stdout=PIPE, stderr=PIPE, text=True),
            out,
        )
    results = {}
    for name, (proc, out) in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
        assert not out.exists(), f"{name}: wrote {out}"
    return results


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("row", list(ROWS))
def test_a_bad_model_argument_or_input_is_one_line(row: str, rows) -> None:
    proc = rows[row]
    _, says, status = ROWS[row]
    assert proc.returncode == status, proc.stderr
    [line] = proc.stderr.splitlines()
    prefix = "stylenet-upscale: " if status == 2 else "FAILED "
    assert line.startswith(prefix) and says in line, line
