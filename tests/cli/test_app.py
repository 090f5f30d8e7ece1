"""`stylenet-app`: model discovery, the stylize function behind the page and its errors, and the
page itself served on a local port and called through gradio's own client: its limits (pixels,
photos at once, how long files are kept) and what its log shows of a user's error."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import stylenet.cli.app as app
from stylenet.cli.app import (
    CONCURRENCY,
    KEEP_FILES,
    build_app,
    build_parser,
    import_gradio,
    main,
    output_name,
    remove_old_results,
    user_message,
)
from stylenet.errors import ConfigError, StylenetError
from stylenet.inference.api import InputImageError
from stylenet.inference.model_file import ModelFileError
from stylenet.inference.serving import MAX_PIXELS, Models, find_models, style_choice, stylize_photo
from stylenet.io.images import ImageReadError, load_image
from tests.helpers import (
    REPO,
    photo,
    run_cli,
    save_tiny_model,
    save_tiny_multistyle_model,
    save_tiny_sr_model,
)

NAMES = ["mosaic", "candy", "udnie"]
# Issue 16: a PNG of 12 KB that decodes to 100 megapixels.
BOMB = (10_000, 10_000)


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


def _png(path: Path, width: int, height: int) -> Path:
    """A valid, all-black 1-bit PNG of width×height px: a few KB that decode to width·height
    pixels (Pillow: one byte each)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    packer = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)  # filter type 0, then 8 pixels a byte
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )
    return path


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
    # A file by name is labelled by its name (and its folder beside a/model.pt), and offered once
    # even if a folder has it too.
    named = runs / "b" / "model.pt"
    assert list(find_models([named, runs])) == ["b/model.pt", "a/model.pt"]
    assert list(find_models([runs / "a" / "checkpoints" / "last.ckpt"])) == ["last.ckpt"]

    with pytest.raises(ConfigError, match=r"nope: no such file or folder"):
        find_models([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"no model files in .*empty"):
        find_models([tmp_path / "empty"])
    with pytest.raises(ModelFileError, match=r"notes.txt"):
        find_models([runs / "notes.txt"])


def test_model_labels_never_show_the_servers_paths(tmp_path: Path, model_path: str) -> None:
    run = tmp_path / "outputs" / "train" / "mosaic" / "2024-01-01_12-00-00"
    for folder in (run, tmp_path / "x" / "runs" / "a", tmp_path / "y" / "runs" / "a"):
        folder.mkdir(parents=True)
        shutil.copy(model_path, folder / "model.pt")
    given = [run / "model.pt", tmp_path / "x" / "runs", tmp_path / "y" / "runs"]
    assert all(p.is_absolute() for p in given)
    files = find_models(given)
    # The shortest tails that tell the three model.pt files apart.
    assert files == {
        "2024-01-01_12-00-00/model.pt": run / "model.pt",
        "x/runs/a/model.pt": tmp_path / "x" / "runs" / "a" / "model.pt",
        "y/runs/a/model.pt": tmp_path / "y" / "runs" / "a" / "model.pt",
    }
    assert not any(str(tmp_path) in label or label.startswith("/") for label in files)
    models = Models(files, device="cpu")
    about = models.describe("x/runs/a/model.pt")
    assert about.startswith("x/runs/a/model.pt: one style;") and str(tmp_path) not in about
    # A model that cannot be loaded is named on the page by its file name, not its path.
    broken = tmp_path / "x" / "runs" / "a" / "broken.pt"
    broken.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ModelFileError) as err:
        Models({"broken": broken}, device="cpu").get("broken")
    assert user_message(err.value).startswith("cannot read model file broken.pt: ")


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


def test_models_lend_each_caller_its_own_network(model_path: str) -> None:
    # Tiling patches a network's norms in place: two photos stylized at once need two copies.
    models = Models({"x": Path(model_path)}, device="cpu")
    with models.borrow("x") as first, models.borrow("x") as second:
        assert first is not second and first.backend.net is not second.backend.net
    with models.borrow("x") as again:
        assert again in (first, second)  # both kept, neither loaded again


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
    with pytest.raises(ConfigError, match=r"max side must be 0 \(full size\) or more, got -3"):
        stylize_photo(one, tiny, max_side=-3)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's, at 89 MP
def test_stylize_photo_refuses_too_many_pixels_from_the_header(tmp_path: Path, models) -> None:
    bomb = _png(tmp_path / "bomb.png", *BOMB)
    assert bomb.stat().st_size < 20_000
    start = time.perf_counter()
    with pytest.raises(InputImageError) as err:
        stylize_photo(models.get("one"), bomb)
    assert time.perf_counter() - start < 1.0  # read from the header: 100 MP never decoded
    assert str(err.value) == (
        "bomb.png is 10000×10000 px (100 MP): photos of up to 50 MP are taken; shrink it first"
    )
    image = load_image(photo(tmp_path / "p.png", size=(90, 60)))
    with pytest.raises(InputImageError, match=r"the photo is 90×60 px .* up to 0.001 MP"):
        stylize_photo(models.get("one"), image, max_pixels=1000)
    assert stylize_photo(models.get("one"), image, max_pixels=90 * 60).image.size == (90, 60)


def test_remove_old_results(tmp_path: Path) -> None:
    old, new = tmp_path / "result-old", tmp_path / "result-new"
    other = tmp_path / "notes"  # not a result: never touched, however old
    for folder in (old, new, other):
        folder.mkdir()
        (folder / "x.png").write_bytes(b"png")
    hour_ago = time.time() - 3600
    for path in (old, other):
        os.utime(path, (hour_ago, hour_ago))
    remove_old_results(tmp_path, 60)
    assert not old.exists() and new.exists() and other.exists()
    remove_old_results(tmp_path / "nothing yet", 60)  # results folder not made yet: fine


def test_output_name_and_missing_gradio(monkeypatch, model_path: str) -> None:
    assert output_name("/tmp/x/chicago.jpg", ["candy"]) == "chicago_candy.jpg"
    assert output_name("shot.webp", ["a", "b"]) == "shot_a+b.png"
    assert output_name("p.png", []) == "p_styled.png"
    monkeypatch.setitem(sys.modules, "gradio", None)  # as if not installed
    with pytest.raises(StylenetError, match=r"pip install 'stylenet\[app\]'"):
        import_gradio()
    rc, _, err = run_cli(main, [model_path])
    assert rc == 2 and "stylenet-app needs gradio" in err and "stylenet[app]" in err


def test_cli_options_for_the_page(capsys) -> None:
    args = build_parser().parse_args([])
    assert (args.max_pixels, args.concurrency, args.keep_files) == (
        MAX_PIXELS,
        CONCURRENCY,
        KEEP_FILES,
    )
    args = build_parser().parse_args(["--max-pixels", "1000", "--concurrency", "4"])
    assert (args.max_pixels, args.concurrency) == (1000, 4)
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--concurrency", "0"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "argument --concurrency: must be at least 1, got 0" in err


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


@contextlib.contextmanager
def _served(demo: Any, **client_options: Any) -> Iterator[Any]:
    """`demo` served on a free port of 127.0.0.1, and gradio's client for it."""
    from gradio_client import Client

    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield Client(f"http://127.0.0.1:{port}/", verbose=False, **client_options)
    finally:
        demo.close()


@pytest.mark.filterwarnings("ignore:::gradio.queueing")  # gradio's own use of pandas
def test_the_page_through_gradios_client(tmp_path: Path, models) -> None:
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    with _served(build_app(models, out_dir=tmp_path / "out")) as client:
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


@pytest.mark.filterwarnings("ignore:::gradio.queueing")
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # gradio opens it too
def test_a_huge_photo_is_refused_from_its_header(tmp_path: Path, models) -> None:
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    bomb = handle_file(str(_png(tmp_path / "bomb.png", *BOMB)))
    with _served(build_app(models, out_dir=tmp_path / "out")) as client:
        start = time.perf_counter()
        job = client.submit("one", [], bomb, 1.0, False, None, api_name="/stylize")
        with pytest.raises(
            AppError, match=r"^bomb.png is 10000×10000 px \(100 MP\): photos of up to "
        ):
            job.result(timeout=20)  # decoded and stylized, it would take minutes
        assert time.perf_counter() - start < 10


@pytest.mark.filterwarnings("ignore:::gradio.queueing")
def test_a_slow_photo_holds_up_no_one(tmp_path: Path, models, monkeypatch) -> None:
    from gradio_client import handle_file

    # A photo whose stylization waits, inside the server, until the next photo's answer is back:
    # it can only finish if two photos are stylized at once.
    held, answered = threading.Event(), threading.Event()
    stylize = app.stylize_photo

    def slow(stylizer: Any, photo: Any, **options: Any) -> Any:
        if Path(photo).name == "held.png":
            held.set()
            answered.wait(60)
        return stylize(stylizer, photo, **options)

    monkeypatch.setattr(app, "stylize_photo", slow)
    first = handle_file(str(photo(tmp_path / "held.png", size=(40, 30))))
    second = handle_file(str(photo(tmp_path / "next.png", size=(40, 30))))
    with _served(build_app(models, out_dir=tmp_path / "out")) as client:
        slow_job = client.submit("one", [], first, 1.0, False, None, api_name="/stylize")
        assert held.wait(20)
        try:
            job = client.submit("one", [], second, 1.0, False, None, api_name="/stylize")
            _, download, _ = job.result(timeout=20)  # one at a time: not before the first ends
            assert Path(download["value"]).name == "next_styled.png"
        finally:
            answered.set()
        _, download, _ = slow_job.result(timeout=20)
        assert Path(download["value"]).name == "held_styled.png"


@pytest.mark.filterwarnings("ignore:::gradio.queueing")
def test_user_errors_are_one_line_in_the_servers_log(tmp_path: Path, models, capfd) -> None:
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    src = handle_file(str(photo(tmp_path / "p.png", size=(40, 30))))
    refused = {  # through the API, past the page's slider, number field and menus
        r"strength must be in \[0, 1\], got 5": ("one", [], src, 5, False, None),
        r"max side must be 0 \(full size\) or more, got -3": ("one", [], src, 1.0, False, -3),
        r"no model 'nope'; the models are one, multi": ("nope", [], src, 1.0, False, None),
        r"no style 'nope' in this model; its styles are mosaic": (
            "multi",
            ["nope"],
            src,
            1,
            False,
            None,
        ),
    }
    with _served(build_app(models, out_dir=tmp_path / "out")) as client:
        capfd.readouterr()
        for message, args in refused.items():
            with pytest.raises(AppError, match=f"^{message}"):
                client.predict(*args, api_name="/stylize")
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert "stylenet-app: strength must be in [0, 1], got 5\n" in err
    assert "stylenet-app: max side must be 0 (full size) or more, got -3\n" in err


@pytest.mark.filterwarnings("ignore:::gradio.queueing")
def test_uploads_and_results_are_deleted(tmp_path: Path, models) -> None:
    from gradio_client import handle_file

    assert build_app(models, out_dir=tmp_path / "a").delete_cache == (900, 3600)
    out = tmp_path / "out"
    demo = build_app(models, out_dir=out, keep_files=3)
    assert demo.delete_cache == (1, 3)  # gradio checks every second for files 3 s old
    src = handle_file(str(photo(tmp_path / "p.png", size=(40, 30))))
    with _served(demo, download_files=False) as client:
        styled, _, _ = client.predict("one", [], src, 1.0, False, None, api_name="/stylize")
        cached = set().union(*demo.temp_file_sets)  # the upload and the result's copies
        assert styled["path"] in cached and all(Path(f).is_file() for f in cached)
        (first,) = out.iterdir()
        deadline = time.monotonic() + 20
        while any(Path(f).exists() for f in cached) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not any(Path(f).exists() for f in cached)
        # The app's own copy goes when the next photo is stylized.
        client.predict("one", [], src, 1.0, False, None, api_name="/stylize")
        (second,) = out.iterdir()
        assert second != first and second.name.startswith("result-")


# --- super-resolution models on the page ------------------------------------------------


@pytest.fixture(scope="module")
def sr_models(tmp_path_factory: pytest.TempPathFactory, model_path: str) -> Models:
    """A tiny ×4 model first (the page opens on it), and a style model."""
    sr, _ = save_tiny_sr_model(tmp_path_factory.mktemp("sr"))
    return Models({"sr": sr, "one": Path(model_path)}, device="cpu")


def test_stylize_photo_upscales_with_a_superres_model(tmp_path: Path, sr_models) -> None:
    sr = sr_models.get("sr")
    assert sr_models.describe("sr") == "sr: ×4 super-resolution; eager on cpu"
    image = load_image(photo(tmp_path / "p.png", size=(30, 20)))
    calls: list[tuple[float, str]] = []
    plain = stylize_photo(sr, image, progress=lambda f, w: calls.append((f, w)))
    assert plain.image.size == (120, 80) and calls[0][1] == "upscaling"
    assert plain.info.startswith("30×20 px upscaled ×4 to 120×80 px in ")
    # Strength and preserve colours do not apply: ignored, and said so.
    ignored = stylize_photo(sr, image, strength=0.3, preserve_color=True)
    assert _diff(ignored.image, plain.image) == 0
    assert ignored.info.endswith(
        "; strength and preserve colours do not apply to super-resolution: ignored"
    )
    raw = stylize_photo(sr, image, match_histograms=False)  # matched by default, as the paper
    assert _diff(raw.image, plain.image) > 0
    assert _diff(stylize_photo(sr, image, match_histograms=True).image, plain.image) == 0
    tiled = stylize_photo(sr, image, tile=16)
    assert tiled.tiled and "tiled in 16-px tiles (as asked)" in tiled.info
    assert _diff(tiled.image, plain.image) < 0.01
    one = stylize_photo(sr_models.get("one"), image, match_histograms=True)
    assert one.info.endswith("; match histograms applies to super-resolution models only: ignored")
    with pytest.raises(InputImageError, match=r"4×20 px is too small to upscale: each side"):
        stylize_photo(sr, Image.new("RGB", (4, 20)))


def test_the_pixel_cap_counts_an_upscales_output(tmp_path: Path, sr_models) -> None:
    sr = sr_models.get("sr")
    src = photo(tmp_path / "p.png", size=(60, 40))
    # 2400 px in, 38,400 out: the output is what the cap holds to.
    with pytest.raises(InputImageError) as err:
        stylize_photo(sr, src, max_pixels=20_000)
    assert str(err.value) == (
        "p.png upscaled ×4 would be 240×160 px (0 MP): results of up to 0.02 MP are made; "
        "set a max side of 43 px or less"
    )
    fits = stylize_photo(sr, src, max_pixels=20_000, max_side=43)
    assert fits.image.size == (172, 116) and 172 * 116 <= 20_000
    assert stylize_photo(sr_models.get("one"), src, max_pixels=20_000).image.size == (60, 40)


@pytest.mark.filterwarnings("ignore:::gradio.queueing")
def test_the_page_offers_a_superres_model(tmp_path: Path, sr_models) -> None:
    from gradio_client import handle_file

    demo = build_app(sr_models, out_dir=tmp_path / "out")
    labels = {c.label: c for c in demo.blocks.values() if getattr(c, "label", None)}
    # Opened on the ×4 model: no style menu, strength or preserve colours; match histograms.
    assert not labels["Style"].visible and not labels["Strength"].visible
    assert not labels["Preserve colours"].visible and labels["Match histograms"].visible
    with _served(demo) as client:
        picker, about = client.predict("sr", api_name="/model")
        assert not picker["visible"] and about == "sr: ×4 super-resolution; eager on cpu"
        src = photo(tmp_path / "street.jpg", size=(25, 15))
        # The API as it was (six values), and with match histograms.
        for args in [(), (True,)]:
            upscaled, download, info = client.predict(
                "sr", [], handle_file(str(src)), 1.0, False, None, *args, api_name="/stylize"
            )
            assert load_image(upscaled).size == (100, 60)
            assert Path(download["value"]).name == "street_x4.jpg"
            assert "25×15 px upscaled ×4 to 100×60 px" in info
