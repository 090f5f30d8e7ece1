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
