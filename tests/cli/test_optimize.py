"""`stylenet-optimize`: writes the image and its snapshots; refuses before any work."""

from __future__ import annotations

import pytest

from stylenet.cli.optimize import main
from stylenet.io.images import load_image

pytestmark = pytest.mark.slow


def test_cli_writes_the_image_and_refuses_to_overwrite(
    tmp_path, photo_dir, style_path, vgg16_weights, capsys
) -> None:
    out = tmp_path / "o.png"
    args = ["style", "--content", str(photo_dir / "coffee.jpg"), "--style", str(style_path)]
    args += ["-o", str(out), "--size", "48", "--iterations", "4", "--save-every", "2"]
    assert main(args) == 0
    assert max(load_image(out).size) == 48
    assert (tmp_path / "o_00002.png").is_file()
    assert "s/iteration" in capsys.readouterr().out
    assert main(args) == 2  # the output exists
    assert "--overwrite" in capsys.readouterr().err
    assert main(["texture", "-o", str(tmp_path / "t.png")]) == 2
    assert (
        capsys.readouterr().err == "stylenet-optimize: mode texture needs a style image (--style)\n"
    )


def test_a_bad_layer_is_one_line_and_exit_status_2(tmp_path, style_path, capsys) -> None:
    args = ["texture", "--style", str(style_path), "-o", str(tmp_path / "t.png")]
    assert main([*args, "--style-layers", "relu9_9", "--size", "32", "-q"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("stylenet-optimize: unknown VGG-16 layer name(s) ['relu9_9']")
    assert not (tmp_path / "t.png").exists()


# --- issue 16: bad arguments and weight files are one line and exit status 2, nothing written --

ROWS: dict[str, tuple[list[str], str]] = {
    # Each was a traceback: Hydra's InstantiationException around vgg_weights' own errors, the
    # VGG's "Output size is too small", a 120 GB allocation, torch's "Invalid learning rate".
    "weights file missing": (
        ["--weights", "TMP/nowhere.safetensors"],
        "cannot read VGG weights TMP/nowhere.safetensors: no such file",
    ),
    "weights file not weights": (
        ["--weights", "TMP/notes.pt"],
        "cannot read VGG weights TMP/notes.pt: not a file written by torch.save",
    ),
    "weights file of another network": (
        ["--weights", "TMP/other.pt"],
        "cannot read VGG weights TMP/other.pt: no VGG-16 conv keys found",
    ),
    "size too small": (
        ["--size", "2"],
        "the image (2×2 px) is too small for VGG-16 up to relu4_3: each side needs at least "
        "8 px (raise --size)",
    ),
    "size too small for vgg19": (
        ["--net", "vgg19", "--size", "15"],
        "the image (15×15 px) is too small for VGG-19 up to relu5_1: each side needs at least "
        "16 px (raise --size)",
    ),
    "style size too small": (
        ["--style-size", "4"],
        "the style image (4×4 px) is too small for VGG-16 up to relu4_3",
    ),
    "size too large": (["--size", "100000"], "the image (100000×100000 px) needs about 37"),
    "lr negative": (["--optimizer", "adam", "--lr", "-1"], "argument --lr: must be a finite"),
    "lr nan": (["--optimizer", "adam", "--lr", "nan"], "argument --lr: must be a finite number"),
    # 0 used to become the default rate (`lr or 0.02`).
    "lr 0": (["--lr", "0"], "argument --lr: must be a finite number > 0, got 0"),
}


@pytest.mark.parametrize("row", list(ROWS))
def test_a_bad_argument_or_weight_file_is_one_line_and_exit_status_2(
    row, tmp_path, style_path, capsys
) -> None:
    import torch

    (tmp_path / "notes.pt").write_text("not weights")
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pt")
    args, message = ROWS[row]
    out = tmp_path / "t.png"
    argv = ["texture", "--style", str(style_path), "-o", str(out), "--iterations", "2", "-q"]
    argv += [a.replace("TMP", str(tmp_path)) for a in args]
    try:
        status = main(argv)
    except SystemExit as stop:  # argparse refuses a value its type refuses
        status = int(stop.code or 0)
    assert status == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("stylenet-optimize: " + message.replace("TMP", str(tmp_path))), line
    assert not out.exists()
