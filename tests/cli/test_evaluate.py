"""`stylenet-evaluate`: a report even when some photos are unreadable or too small (exit 1); an
existing report or a model without a style refused (exit 2); LPIPS and SSIM beside the loss."""

from __future__ import annotations

import json

import pytest
import torch

import stylenet.cli.evaluate as cli_evaluate
from stylenet.cli.evaluate import main
from stylenet.inference.model_card import ModelCard, StyleRecord
from stylenet.inference.model_file import save_model
from stylenet.models import TransformerNet
from stylenet.reference.optimize import loss_preset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, style_path) -> str:
    torch.manual_seed(0)
    net = TransformerNet(base_channels=8, num_residual_blocks=1)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    styles = (StyleRecord(style_path.stem, str(style_path), 48),)
    save_model(net, path, card=ModelCard(network="", styles=styles, loss=loss_preset("johnson")))
    return str(path)


def test_cli_refuses_to_overwrite_and_skips_unreadable_photos(
    model_file, photo_dir, tmp_path, vgg16_weights, capsys
) -> None:
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "good.jpg").write_bytes((photo_dir / "coffee.jpg").read_bytes())
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    (photos / "empty.jpg").write_bytes(b"")
    Image.new("RGB", (96, 30), (90, 120, 60)).save(photos / "strip.png")  # 32×10 at --size 32
    out = tmp_path / "eval"
    args = [model_file, "--content", str(photos), "-o", str(out), "--size", "32"]
    assert main(args) == 1  # a report, but one photo was unreadable and one too small for LPIPS
    report = json.loads((out / "report.json").read_text())
    assert [r["photo"] for r in report["rows"]] == ["good.jpg"]
    skipped = {x["photo"]: x["error"] for x in report["skipped"]}
    assert set(skipped) == {"broken.jpg", "empty.jpg", "strip.png"}
    assert skipped["empty.jpg"].endswith("empty.jpg: empty file (0 bytes)")
    assert "LPIPS needs at least 16 px" in skipped["strip.png"]
    assert report["rows"][0]["optimization"] == {}  # not asked for
    # LPIPS and SSIM against the photo, beside the loss terms: the photo itself scores 0 and 1;
    # a random network's output is far from the photo, on those metrics' scales.
    row, summary = report["rows"][0], report["summary"]
    assert row["input"]["lpips"] == pytest.approx(0.0, abs=1e-6)
    assert row["input"]["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert 0.05 < row["model"]["lpips"] < 2.0 and -1.0 < row["model"]["ssim"] < 0.95
    assert (summary["model_lpips"], summary["model_ssim"]) == (
        row["model"]["lpips"],
        row["model"]["ssim"],
    )
    table = (out / "report.md").read_text()
    assert "| content | style | tv | total | LPIPS | SSIM | seconds |" in table
    assert f"LPIPS {summary['model_lpips']:.4g}" in table
    assert f"SSIM {summary['model_ssim']:.4g}" in table
    assert f"SSIM {summary['model_ssim']:.4g}" in capsys.readouterr().out  # printed too
    assert main(args) == 2  # report exists
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 1


def test_a_model_without_recorded_style_is_refused(tmp_path, photo_dir, capsys) -> None:
    path = tmp_path / "model.pt"
    save_model(TransformerNet(base_channels=8, num_residual_blocks=1), path)
    assert main([str(path), "--content", str(photo_dir), "-o", str(tmp_path / "e")]) == 2
    assert capsys.readouterr().err.strip().endswith("records no style image; pass --style PAINTING")


def test_a_multi_style_model_gets_a_report_per_style(tmp_path, photo_dir, vgg16_weights) -> None:
    from PIL import Image

    torch.manual_seed(0)
    net = TransformerNet(base_channels=8, num_residual_blocks=1, num_styles=2)
    paintings = []
    for name, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        paintings.append(StyleRecord(name, str(tmp_path / f"{name}.png"), 32))
        Image.new("RGB", (40, 40), colour).save(str(paintings[-1].image))
    path = tmp_path / "model.pt"
    card = ModelCard(network="", styles=tuple(paintings), loss=loss_preset("johnson"))
    save_model(net, path, card=card)
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "coffee.jpg").write_bytes((photo_dir / "coffee.jpg").read_bytes())
    args = [str(path), "--content", str(photos), "--size", "32"]
    assert main([*args, "-o", str(tmp_path / "all")]) == 0
    reports = {
        n: json.loads((tmp_path / "all" / n / "report.json").read_text()) for n in ("red", "blue")
    }
    assert reports["red"]["style_image"] == paintings[0].image
    assert reports["blue"]["style_image"] == paintings[1].image
    assert main([*args, "-o", str(tmp_path / "one"), "--model-style", "blue"]) == 0
    one = json.loads((tmp_path / "one" / "report.json").read_text())
    assert one["style_image"] == paintings[1].image
    scores = [r["rows"][0]["model"]["terms"] for r in (one, reports["blue"], reports["red"])]
    assert scores[0]["style"] == scores[1]["style"] != scores[2]["style"]


# --- issue 16: one line, exit status 2, before the model, the loss network or any photo -------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # It used to score every photo first, then fail writing into the file (exit 1).
        (["--content", "PHOTOS", "-o", "FILE"], "-o/--output FILE is a file, not a folder"),
        (
            ["--content", "PHOTOS", "-o", "FILE/eval"],
            "-o/--output FILE/eval is inside FILE, which is a file, not a folder",
        ),
        # Exit 1 ("image folder not found"), where an empty folder is exit 2.
        (["--content", "MISSING/", "-o", "OUT"], "--content MISSING: no such file or folder"),
    ],
)
def test_a_bad_output_or_content_path_is_refused_before_any_work(
    model_file, photo_dir, tmp_path, monkeypatch, capsys, argv, message
) -> None:
    paths = {
        "PHOTOS": str(photo_dir),
        "FILE": str(tmp_path / "notes.txt"),
        "MISSING": str(tmp_path / "missing"),
        "OUT": str(tmp_path / "eval"),
    }

    def filled(text: str) -> str:
        for placeholder, path in paths.items():
            text = text.replace(placeholder, path)
        return text

    (tmp_path / "notes.txt").write_text("a file, not a folder")

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("the paths should have been refused before any work")

    monkeypatch.setattr(cli_evaluate, "load", no_work)
    monkeypatch.setattr(cli_evaluate, "evaluate_styles", no_work)
    assert main([model_file, *map(filled, argv), "-q"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line == "stylenet-evaluate: " + filled(message)
    assert (tmp_path / "notes.txt").read_text() == "a file, not a folder"


def test_truncated_vgg_weights_are_one_line_naming_the_file_and_the_variable(
    model_file, photo_dir, tmp_path, vgg16_weights, monkeypatch, capsys
) -> None:
    truncated = tmp_path / "vgg16.safetensors"
    with open(vgg16_weights, "rb") as f:
        truncated.write_bytes(f.read(100_000))  # the header and part of conv1_1
    monkeypatch.setenv("STYLENET_VGG16_WEIGHTS", str(truncated))
    out = tmp_path / "eval"
    assert (
        main([model_file, "--content", str(photo_dir), "-o", str(out), "--size", "32", "-q"]) == 2
    )
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(
        f"stylenet-evaluate: cannot read VGG weights {truncated}: not a readable safetensors file"
    )
    assert line.endswith("; the path comes from STYLENET_VGG16_WEIGHTS")
    assert not out.exists()


# --- issue 17: a super-resolution model is scored against bicubic (and --compare models) -------


@pytest.fixture(scope="module")
def sr_models(tmp_path_factory) -> dict[str, str]:
    """Tiny random super-resolution models: two ×4 and one ×8."""
    from tests.evaluation.test_superres import save_sr_model

    folder = tmp_path_factory.mktemp("sr_models")
    return {
        "X4": save_sr_model(folder / "sr_x4.pt", seed=1),
        "OTHER": save_sr_model(folder / "other_x4.pt", seed=2),
        "X8": save_sr_model(folder / "sr_x8.pt", scale=8, seed=3),
    }


def test_a_superres_model_is_scored_against_bicubic_and_each_model_compared(
    sr_models, photo_dir, tmp_path, vgg16_weights, capsys
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("astronaut.jpg", "coffee.jpg"):
        (photos / name).write_bytes((photo_dir / name).read_bytes())
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "eval"
    args = [sr_models["X4"], "--content", str(photos), "-o", str(out), "--size", "64", "-q"]
    args += ["--compare", sr_models["OTHER"]]
    assert main(args) == 1  # a report, but one photo was unreadable
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["scale"] == 4
    assert [m["name"] for m in report["methods"]] == ["bicubic", "model", "compare1"]
    assert report["methods"][2]["source"] == sr_models["OTHER"]
    assert [x["photo"] for x in report["skipped"]] == ["broken.jpg"]
    assert [r["photo"] for r in report["rows"]] == ["astronaut.jpg", "coffee.jpg"]
    table = (out / "report.md").read_text()
    for row in report["rows"]:
        assert list(row["scores"]) == ["bicubic", "model", "compare1"]
        h, w = row["size"]
        assert (h % 4, w % 4) == (0, 0) and max(h, w) == 64
        for method in ("bicubic", "model", "compare1"):
            assert table.count(f"| {row['photo']} | {h}×{w} | {method} |") == 1
    assert "| method | PSNR (dB) | vs bicubic (dB) | SSIM | LPIPS | seconds |" in table
    assert "LPIPS-VGG runs on the same ImageNet VGG-16 as the perceptual training loss" in table
    assert table in printed
    assert (out / "grid.jpg").is_file() and len(list((out / "images").iterdir())) == 2 * 5
    assert main(args) == 2  # the report exists
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        *(
            (
                ["X4", *flag],
                f"{flag[0]} is for style-transfer models; X4 is a super-resolution model (×4)",
            )
            for flag in (
                ["--style", "art.jpg"],
                ["--style-size", "64"],
                ["--optimize"],
                ["--model-style", "0"],
            )
        ),
        (
            ["X4", "--compare", "STYLE"],
            "--compare STYLE is a style-transfer model; --compare takes super-resolution models "
            "(×4, as X4)",
        ),
        (
            ["X4", "--compare", "OTHER", "--compare", "X8"],
            "--compare X8 upsamples ×8, X4 ×4: compare models of one scale",
        ),
        (
            ["STYLE", "--compare", "X4"],
            "--compare is for super-resolution models; STYLE is a style-transfer model",
        ),
    ],
)
def test_options_of_the_other_task_are_refused_before_any_work(
    model_file, sr_models, photo_dir, tmp_path, monkeypatch, capsys, argv, message
) -> None:
    import stylenet.evaluation.superres as superres_module

    paths = {**sr_models, "STYLE": model_file}

    def filled(text: str) -> str:
        for placeholder, path in paths.items():
            text = text.replace(placeholder, path)
        return text

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("refused too late: a network was built")

    for module, name in [
        (cli_evaluate, "load"),
        (cli_evaluate, "evaluate_styles"),
        (superres_module, "load_network"),
        (superres_module, "LPIPS"),
    ]:
        monkeypatch.setattr(module, name, no_work)
    out = tmp_path / "eval"
    argv = [filled(a) for a in argv]
    assert main([*argv, "--content", str(photo_dir), "-o", str(out), "-q"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line == "stylenet-evaluate: " + filled(message)
    assert not out.exists()
