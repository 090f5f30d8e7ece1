"""`stylenet-app`: model discovery, the stylize function behind the page and its errors, and the
page itself served on a local port and called through gradio's own client."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylenet.cli.app import (
    Models,
    build_app,
    find_models,
    import_gradio,
    main,
    output_name,
    style_choice,
    stylize_photo,
    user_message,
)
from stylenet.errors import ConfigError, StylenetError
from stylenet.inference.api import InputImageError
from stylenet.inference.model_file import ModelFileError
from stylenet.io.images import ImageReadError, load_image
from tests.helpers import REPO, photo, run_cli, save_tiny_model, save_tiny_multistyle_model

NAMES = ["mosaic", "candy", "udnie"]


@pytest.fixture(scope="module")
def multi_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random 3-style model.pt (styles mosaic, candy, udnie)."""
    path, _ = save_tiny_multistyle_model(tmp_path_factory.mktemp("multi"), NAMES)
    return path


@pytest.fixture(scope="module")
def models(model_path: str, multi_path: Path) -> Models:
    return Models({"one": Path(model_path), "multi": multi_path}, device="cpu")


def _checkpoint(path: Path) -> Path:
    """A Lightning-style checkpoint of the tiny model (state dict ``net.*``)."""
    _, net = save_tiny_model(path.parent)
    (path.parent / "model.pt").unlink()
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, path)
    return path


def _diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean())


def test_find_models_in_folders_and_files(tmp_path: Path, model_path: str) -> None:
    runs = tmp_path / "runs"
    for run in ("a", "b"):
        (runs / run / "checkpoints").mkdir(parents=True)
        shutil.copy(model_path, runs / run / "model.pt")
        _checkpoint(runs / run / "checkpoints" / "last.ckpt")
    (runs / "a" / ".hydra").mkdir()
    shutil.copy(model_path, runs / "a" / ".hydra" / "hidden.pt")  # hidden folder: skipped
    torch.save({"features.0.weight": torch.zeros(1)}, runs / "vgg16.pth")  # not a model: skipped
    (runs / "notes.txt").write_text("lr 1e-3")
    # A run's model.pt stands for its checkpoints ...
    assert find_models([runs]) == {
        "a/model.pt": runs / "a" / "model.pt",
        "b/model.pt": runs / "b" / "model.pt",
    }
    # ... which are offered where a folder holds nothing else.
    assert list(find_models([runs / "a" / "checkpoints"])) == ["last.ckpt"]
    # A file by name is labelled as given, and offered once even if a folder has it too.
    named = runs / "b" / "model.pt"
    assert list(find_models([named, runs])) == [str(named), "a/model.pt"]

    with pytest.raises(ConfigError, match=r"nope: no such file or folder"):
        find_models([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"no model files in .*empty"):
        find_models([tmp_path / "empty"])
    with pytest.raises(ModelFileError, match=r"notes.txt"):
        find_models([runs / "notes.txt"])


def test_models_are_loaded_once_and_bounded(tmp_path: Path, model_path: str) -> None:
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"PK\x03\x04 not a zip")
    files = {"x": Path(model_path), "y": Path(model_path), "broken": broken}
    models = Models(files, device="cpu", max_loaded=1)
    x = models.get("x")
    assert models.get("x") is x  # cached
    assert models.get("y") is not x
    assert models.get("x") is not x  # evicted by y: at most one kept
    assert "one style; eager on cpu" in models.describe("x")
    with pytest.raises(ConfigError, match=r"no model 'z'; the models are x, y, broken"):
        models.get("z")
    with pytest.raises(ModelFileError, match=r"broken.pt"):
        models.get("broken")


def test_style_choice() -> None:
    assert style_choice([], ["anything"]) == {}  # a one-style model
    assert style_choice(NAMES, ["candy"]) == {"style": "candy"}
    assert style_choice(NAMES, ["candy", "udnie"]) == {"mix": {"candy": 1.0, "udnie": 1.0}}
    with pytest.raises(ConfigError, match=r"pick a style \(mosaic, candy, udnie\)"):
        style_choice(NAMES, [])


def test_stylize_photo_keeps_size_and_honours_the_controls(tmp_path: Path, models) -> None:
    src = photo(tmp_path / "p.png", size=(90, 60), colour=(30, 160, 60))
    image = load_image(src)
    calls: list[tuple[float, str]] = []
    full = stylize_photo(models.get("one"), src, progress=lambda f, w: calls.append((f, w)))
    assert full.image.size == (90, 60) and _diff(full.image, image) > 5
    assert not full.tiled and "90×60 px in" in full.info and "one pass, not tiled" in full.info
    assert calls and calls[0][1] == "stylizing"
    # strength 0 is the photo; 0.5 lies between.
    none = stylize_photo(models.get("one"), image, strength=0.0)
    assert _diff(none.image, image) < 1
    half = stylize_photo(models.get("one"), image, strength=0.5)
    assert (
        0.3 * _diff(full.image, image) < _diff(half.image, image) < 0.7 * _diff(full.image, image)
    )
    # preserve colour keeps the photo's chroma (YCbCr's Cb, Cr).
    kept = stylize_photo(models.get("one"), image, preserve_color=True)
    chroma = lambda im: np.asarray(im.convert("YCbCr"), np.float32)[..., 1:]  # noqa: E731
    assert np.abs(chroma(kept.image) - chroma(image)).mean() < 2
    assert np.abs(chroma(full.image) - chroma(image)).mean() > 5
    # max side downscales first.
    small = stylize_photo(models.get("one"), image, max_side=45)
    assert small.image.size == (45, 30) and "resized from 90×60" in small.info


def test_stylize_photo_styles_and_tiles(tmp_path: Path, models, monkeypatch) -> None:
    image = load_image(photo(tmp_path / "p.png", size=(96, 80)))
    multi = models.get("multi")
    mosaic = stylize_photo(multi, image, styles=["mosaic"]).image
    candy = stylize_photo(multi, image, styles=["candy"]).image
    blend = stylize_photo(multi, image, styles=["mosaic", "candy"]).image
    assert _diff(mosaic, candy) > 5
    assert _diff(blend, mosaic) > 1 and _diff(blend, candy) > 1
    with pytest.raises(ConfigError, match="pick a style"):
        stylize_photo(multi, image, styles=[])

    asked = stylize_photo(models.get("one"), image, tile=64)
    assert asked.tiled and asked.image.size == (96, 80)
    assert "tiled in 64-px tiles (as asked)" in asked.info
    monkeypatch.setattr(type(multi), "needs_tiling", lambda self, h, w: True)
    auto = stylize_photo(multi, image, styles=["udnie"])
    assert auto.tiled and "tiles (too large for the free memory in one pass)" in auto.info


def test_stylize_photo_errors(tmp_path: Path, models) -> None:
    one = models.get("one")
    tiny = photo(tmp_path / "tiny.png", size=(40, 5))
    with pytest.raises(InputImageError, match=r"40×5 px is too small"):
        stylize_photo(one, tiny)
    with pytest.raises(InputImageError, match=r"too small"):
        stylize_photo(one, photo(tmp_path / "p.png"), max_side=4)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ImageReadError) as err:
        stylize_photo(one, broken)
    assert user_message(err.value).startswith("cannot read image broken.jpg: ")  # no temp path
    with pytest.raises(ConfigError, match="strength"):
        stylize_photo(one, tiny, strength=1.5)


def test_output_name_and_missing_gradio(monkeypatch, model_path: str) -> None:
    assert output_name("/tmp/x/chicago.jpg", ["candy"]) == "chicago_candy.jpg"
    assert output_name("shot.webp", ["a", "b"]) == "shot_a+b.png"
    assert output_name("p.png", []) == "p_styled.png"
    monkeypatch.setitem(sys.modules, "gradio", None)  # as if not installed
    with pytest.raises(StylenetError, match=r"pip install 'stylenet\[app\]'"):
        import_gradio()
    rc, _, err = run_cli(main, [model_path])
    assert rc == 2 and "stylenet-app needs gradio" in err and "stylenet[app]" in err


def test_cli_names_a_missing_path(tmp_path: Path) -> None:
    rc, _, err = run_cli(main, [str(tmp_path / "nope.pt")])
    assert (
        rc == 2 and err.strip() == f"stylenet-app: {tmp_path / 'nope.pt'}: no such file or folder"
    )


def test_importing_the_app_does_not_import_gradio() -> None:
    code = "import sys, stylenet.cli.app; assert 'gradio' not in sys.modules, 'gradio'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.filterwarnings("ignore:::gradio.queueing")  # gradio's own use of pandas
def test_the_page_through_gradios_client(tmp_path: Path, models) -> None:
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    demo = build_app(models, out_dir=tmp_path / "out")
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        picker, about = client.predict("multi", api_name="/model")
        assert [c[0] for c in picker["choices"]] == NAMES and picker["visible"]
        assert "3 styles (mosaic, candy, udnie)" in about

        src = photo(tmp_path / "street.jpg", size=(75, 50))
        styled, download, info = client.predict(
            "multi", ["candy"], handle_file(str(src)), 1.0, False, None, api_name="/stylize"
        )
        out = load_image(styled)
        assert out.size == (75, 50) and _diff(out, load_image(src)) > 5
        assert Path(download["value"]).name == "street_candy.jpg"
        assert "75×50 px in" in info

        broken = tmp_path / "broken.jpg"
        broken.write_bytes(b"not an image at all")
        with pytest.raises(AppError, match=r"cannot read image broken.jpg: not an image"):
            client.predict(
                "one", [], handle_file(str(broken)), 1.0, False, None, api_name="/stylize"
            )
    finally:
        demo.close()
