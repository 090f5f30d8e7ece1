"""Choosing a style of a multi-style model: names, indices and mixes, through the Python API,
stylenet-stylize and stylenet-export."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import stylenet
from stylenet.cli.export import main as export_main
from stylenet.cli.stylize import main as stylize_main
from stylenet.errors import ConfigError
from stylenet.inference.batch import Options, plan_styles, stylize_all
from stylenet.inference.model_card import ModelCard, StyleRecord
from stylenet.inference.model_file import detect_format
from stylenet.inference.styles import parse_mix, style_weights
from stylenet.io.images import load_image, pil_to_tensor
from stylenet.models import TransformerNet
from tests.helpers import make_video, photo, read_video, run_cli, save_tiny_multistyle_model

NAMES = ["mosaic", "candy", "udnie"]


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TransformerNet]:
    return save_tiny_multistyle_model(tmp_path_factory.mktemp("multi"), NAMES)


def test_names_mixes_and_weights() -> None:
    card = ModelCard(network="TransformerNet", styles=(StyleRecord("a"), StyleRecord("b")))
    assert card.style_names(2) == ["a", "b"]
    assert ModelCard(network="TransformerNet").style_names(3) == ["0", "1", "2"]  # indices
    legacy = ModelCard.from_legacy({"style_image": "/p/mosaic.jpg"}, {})  # a one-style model
    assert legacy.style_names(1) == ["mosaic"]
    assert parse_mix("mosaic:0.7, candy:0.3") == {"mosaic": 0.7, "candy": 0.3}
    with pytest.raises(ConfigError, match="expected NAME:WEIGHT pairs"):
        parse_mix("mosaic=0.7")
    assert style_weights(NAMES, style="candy").tolist() == [0, 1, 0]
    assert style_weights(NAMES, style=2).tolist() == [0, 0, 1]
    assert style_weights(NAMES, style="2").tolist() == [0, 0, 1]
    torch.testing.assert_close(
        style_weights(NAMES, mix={"mosaic": 3, 1: 1}), torch.tensor([0.75, 0.25, 0.0])
    )
    for kwargs, message in [
        ({}, r"carries 3 styles \(mosaic, candy, udnie\): choose one"),
        ({"style": "starry"}, r"no style 'starry' in this model; its styles are mosaic, candy"),
        ({"style": 3}, r"no style 3"),
        ({"mix": {"mosaic": -1}}, r"mix weight of 'mosaic' must be a finite number >= 0"),
        ({"mix": {"mosaic": 0}}, r"sum to 0"),
        ({"style": 0, "mix": {"mosaic": 1}}, r"a style or a mix, not both"),
    ]:
        with pytest.raises(ConfigError, match=message):
            style_weights(NAMES, **kwargs)


def test_mix_weights_must_be_finite(multi) -> None:
    # Issue 16: an infinite weight scaled the others to 0 and itself to nan (inf / inf), and
    # stylenet-stylize wrote an all-black image with exit status 0.
    for text, shown in [("mosaic:inf,candy:1", "inf"), ("mosaic:nan", "nan"), ("candy:-1", "-1")]:
        name = text.split(":")[0]
        with pytest.raises(
            ConfigError,
            match=rf"--mix '{text}': the weight of '{name}' must be a finite number >= 0, "
            rf"got {shown}$",
        ):
            parse_mix(text)
    for value in (math.inf, -math.inf, math.nan):
        with pytest.raises(ConfigError, match="mix weight of 'mosaic' must be a finite number"):
            style_weights(NAMES, mix={"mosaic": value, "candy": 1})
        with pytest.raises(ConfigError, match="must be a finite number"):
            stylenet.load(multi[0], device="cpu", mix={"mosaic": value, "candy": 1})
    # Finite weights too large for float32 still mix (they used to overflow to inf, then nan).
    torch.testing.assert_close(
        style_weights(NAMES, mix={"mosaic": 1e300, "candy": 1e300}), torch.tensor([0.5, 0.5, 0])
    )


def test_the_api_picks_a_style_per_call(multi, tmp_path: Path) -> None:
    path, net = multi
    image = load_image(photo(tmp_path / "p.png", size=(140, 100)))
    x = pil_to_tensor(image).unsqueeze(0)
    stylizer = stylenet.load(path, device="cpu")
    assert stylizer.styles == NAMES

    def expected(weights: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return net(x, weights)

    torch.testing.assert_close(stylizer(x), expected(torch.eye(3)[0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        stylizer(x, style="udnie"), expected(torch.eye(3)[2]), atol=1e-5, rtol=0
    )
    mixed = stylizer(x, mix={"mosaic": 0.5, "candy": 0.5})
    torch.testing.assert_close(mixed, expected(torch.tensor([0.5, 0.5, 0.0])), atol=1e-5, rtol=0)
    assert stylizer.with_style("udnie") is stylizer.with_style("udnie")  # loaded once
    # A tiled call stylizes with the chosen style's statistics too.
    tiled = stylizer(image, style="candy", tile=64, overlap=16)
    assert tiled.size == image.size
    with pytest.raises(ConfigError, match="no style 'starry'"):
        stylizer(x, style="starry")


def test_stylize_and_export_need_a_choice_for_a_multi_style_model(multi, tmp_path: Path) -> None:
    path, net = multi
    src = photo(tmp_path / "p.png", size=(40, 36))
    rc, _, err = run_cli(stylize_main, [str(path), str(src), "-o", str(tmp_path / "x.png")])
    assert rc == 2 and "carries 3 styles (mosaic, candy, udnie)" in err
    assert not (tmp_path / "x.png").exists()

    out = tmp_path / "candy.png"
    assert stylize_main([str(path), str(src), "-o", str(out), "--style", "candy", "-q"]) == 0
    api = stylenet.load(path, device="cpu", style="candy")(load_image(src))
    assert (pil_to_tensor(load_image(out)) - pil_to_tensor(api)).abs().max() <= 1 / 255
    rc, _, err = run_cli(
        stylize_main,
        [str(path), str(src), "-o", str(tmp_path / "y.png"), "--mix", "mosaic:1,nope:1"],
    )
    assert rc == 2 and "no style 'nope'" in err

    # --mix (or --style): one chosen blend, folded into a plain one-input export.
    rc, _, err = run_cli(
        export_main, [str(path), "-o", str(tmp_path / "ex"), "--mix", "mosaic:0.7,udnie:0.3"]
    )
    assert rc == 0, err
    onnx_file = next((tmp_path / "ex").glob("*.onnx"))
    assert detect_format(onnx_file) == "onnx"
    exported = stylenet.load(onnx_file, device="cpu")
    assert exported.styles == []
    x = pil_to_tensor(load_image(src)).unsqueeze(0)
    with torch.no_grad():
        want = net(x, torch.tensor([0.7, 0.0, 0.3]))
    torch.testing.assert_close(exported(x), want, atol=1e-4, rtol=0)
    with pytest.raises(ConfigError, match="exported onnx model of one style"):
        stylenet.load(onnx_file, style="candy")


def test_exports_of_a_multi_style_model_take_style_weights(multi, tmp_path: Path) -> None:
    """Without --style the exports keep every style: a style_weights (B, N) input next to the
    image, verified against eager on one-hot rows and a mix; stylenet.load feeds the choice."""
    import onnxruntime as ort

    path, net = multi
    rc, out, err = run_cli(export_main, [str(path), "-o", str(tmp_path / "ex")])
    assert rc == 0, err
    assert out.count("max |exported - eager|") == 2
    onnx_file = tmp_path / "ex" / "model.onnx"
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image", "style_weights"]
    x = torch.rand(2, 3, 37, 50)
    rows = torch.tensor([[0.0, 1.0, 0.0], [0.2, 0.3, 0.5]])
    got = session.run(None, {"image": x.numpy(), "style_weights": rows.numpy()})[0]
    assert got.shape == (2, 3, 37, 50)  # any size: the export pads and crops itself
    for exported in (onnx_file, tmp_path / "ex" / "model.torchscript.pt"):
        stylizer = stylenet.load(exported, device="cpu")
        assert stylizer.styles == NAMES
        with torch.no_grad():
            for style in range(3):
                torch.testing.assert_close(
                    stylizer(x[:1, :, :36, :48], style=NAMES[style]),
                    net(x[:1, :, :36, :48], torch.eye(3)[style]),
                    atol=1e-4,
                    rtol=0,
                )
            torch.testing.assert_close(
                stylizer(x[:1, :, :36, :48], mix={"candy": 1, "udnie": 1}),
                net(x[:1, :, :36, :48], torch.tensor([0.0, 0.5, 0.5])),
                atol=1e-4,
                rtol=0,
            )


def test_a_one_style_model_takes_its_index_and_nothing_else(model, tmp_path: Path) -> None:
    path, _ = model
    stylizer = stylenet.load(path, device="cpu", style=0)
    assert stylizer.styles == []
    with pytest.raises(ConfigError, match="no style 'candy' in this model; its styles are 0"):
        stylenet.load(path, style="candy")


def test_all_styles_writes_one_output_per_style(multi, tmp_path: Path) -> None:
    path, _ = multi
    src = photo(tmp_path / "p.png", size=(40, 36))
    out = tmp_path / "out.png"
    assert stylize_main([str(path), str(src), "-o", str(out), "--all-styles", "-q"]) == 0
    written = sorted(p.name for p in tmp_path.glob("out_*.png"))
    assert written == [f"out_{name}.png" for name in sorted(NAMES)]
    for name in NAMES:
        want = stylenet.load(path, device="cpu", style=name)(load_image(src))
        got = pil_to_tensor(load_image(tmp_path / f"out_{name}.png"))
        # One pass of (γ, β) rows vs the bound network: float noise, at most one 8-bit step.
        assert (got - pil_to_tensor(want)).abs().max() <= 1 / 255 + 1e-6
    # A folder: one subfolder per style; every output is checked before any is written.
    folder = tmp_path / "photos"
    folder.mkdir()
    photo(folder / "a.png", size=(40, 36))
    (tmp_path / "styled" / "udnie").mkdir(parents=True)
    (tmp_path / "styled" / "udnie" / "a.png").write_bytes(b"keep")
    rc, _, err = run_cli(
        stylize_main, [str(path), str(folder), "-o", str(tmp_path / "styled"), "--all-styles"]
    )
    assert rc == 2 and "exists" in err
    assert not (tmp_path / "styled" / "mosaic").exists()
    assert (
        stylize_main([str(path), str(folder), "-o", str(tmp_path / "s2"), "--all-styles", "-q"])
        == 0
    )
    assert sorted(p.parent.name for p in (tmp_path / "s2").rglob("*.png")) == sorted(NAMES)


@pytest.mark.parametrize("backend", ["eager", "torchscript", "onnxruntime"])
def test_one_pass_stylizes_each_image_in_its_own_style(multi, backend: str) -> None:
    path, _ = multi
    stylizer = stylenet.load(path, device="cpu", backend=backend, style="candy")
    photos = torch.rand(4, 3, 30, 42)
    styles = ["udnie", "mosaic", "candy", "udnie"]
    got = stylizer.stylize_batch(photos, styles=styles)
    for image, style, out in zip(photos, styles, got, strict=True):
        want = stylizer.with_style(style).stylize_batch(image[None])[0]
        torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)
    # Without styles, every image takes the stylizer's own style (candy, like image 2).
    torch.testing.assert_close(stylizer.stylize_batch(photos[2:3]), got[2:3], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="one style per image: 2 for 4"):
        stylizer.stylize_batch(photos, styles=["udnie", "candy"])
    with pytest.raises(ConfigError, match="no style 'starry'"):
        stylizer.stylize_batch(photos[:1], styles=["starry"])


def test_all_styles_is_one_forward_pass_per_photo(
    multi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = multi
    for name in ("a", "b"):
        photo(tmp_path / "in" / f"{name}.png", size=(40, 36))
    stylizer = stylenet.load(path, device="cpu", style=0)
    passes: list[list[list[float]]] = []
    run = stylizer.backend._run

    def counting_run(images: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        assert rows is not None
        passes.append(rows.tolist())
        return run(images, rows)

    monkeypatch.setattr(stylizer.backend, "_run", counting_run)
    work = plan_styles([tmp_path / "in"], tmp_path / "out", stylizer.styles)
    summary = stylize_all(stylizer, work, Options(batch_size=1, progress=False))
    assert summary.done == 6 and not summary.failed
    # One photo per pass (batch_size=1), in all three styles: one-hot rows in style order.
    assert passes == [torch.eye(3).tolist()] * 2
    written = sorted(
        str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.png")
    )
    assert written == sorted(f"{style}/{name}.png" for style in NAMES for name in "ab")


@pytest.mark.parametrize("temporal", [None, 0.5])
def test_all_styles_of_a_video_from_one_decode_and_one_pass_per_batch(
    multi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, temporal: float | None
) -> None:
    path, _ = multi
    clip = make_video(tmp_path / "clip.mp4", frames=6)
    stylizer = stylenet.load(path, device="cpu", style=0)
    passes: list[int] = []
    run = stylizer.backend._run

    def counting_run(images: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        passes.append(len(images))
        return run(images, rows)

    monkeypatch.setattr(stylizer.backend, "_run", counting_run)
    work = plan_styles([clip], tmp_path / "out.mp4", stylizer.styles)
    summary = stylize_all(stylizer, work, Options(batch_size=4, temporal=temporal, progress=False))
    assert summary.done == 3 and not summary.failed
    assert passes == [4 * 3, 2 * 3]  # 6 frames in batches of 4, each frame in all 3 styles
    # Each output is that style's video, as --style NAME writes it alone.
    for name in NAMES:
        alone = tmp_path / f"alone_{name}.mp4"
        args = [str(path), str(clip), "-o", str(alone), "--style", name, "-q"]
        assert stylize_main(args + ([] if temporal is None else ["--temporal", "0.5"])) == 0
        together, _, _ = read_video(tmp_path / f"out_{name}.mp4")
        assert (together - read_video(alone)[0]).abs().mean() < 2 / 255
    # The styles differ from each other (not one style written three times).
    videos = [read_video(tmp_path / f"out_{name}.mp4")[0] for name in NAMES]
    assert (videos[0] - videos[1]).abs().mean() > 0.01


def test_all_styles_needs_a_multi_style_model(model, tmp_path: Path) -> None:
    src = photo(tmp_path / "p.png", size=(40, 36))
    rc, _, err = run_cli(
        stylize_main, [str(model[0]), str(src), "-o", str(tmp_path / "o.png"), "--all-styles"]
    )
    assert rc == 2 and "--all-styles needs a multi-style model" in err


def test_a_video_takes_the_chosen_style(multi, tmp_path: Path) -> None:
    from tests.helpers import make_video, read_video

    path, _ = multi
    src = make_video(tmp_path / "clip.mp4", frames=4, width=48, height=32, fps=12)
    means = []
    for style in NAMES[:2]:
        out = tmp_path / f"{style}.mp4"
        assert stylize_main([str(path), str(src), "-o", str(out), "--style", style, "-q"]) == 0
        frames, _, _ = read_video(out)
        assert frames.shape[:1] == (4,)
        means.append(frames.mean(dim=(0, 2, 3)))
    assert (means[0] - means[1]).abs().max() > 0.02  # two styles, two different videos
