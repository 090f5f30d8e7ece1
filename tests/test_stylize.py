"""stylenet-stylize and the Python API: any size in, same size out; folders; never overwrite;
bad inputs reported by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import stylenet
from stylenet.images import load_image
from stylenet.model_file import save_model
from stylenet.models import TransformerNet
from stylenet.stylize import main, pad_to_multiple, stylize_tensor


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> str:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_model(TransformerNet(base_channels=8, num_residual_blocks=1), path)
    return str(path)


def photo(path, size=(57, 35), colour=(200, 30, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arr = (rng.random((size[1], size[0], 3)) * 60 + np.array(colour) * 0.7).astype(np.uint8)
    Image.fromarray(arr).save(path)
    return path


@pytest.mark.parametrize(("h", "w"), [(33, 51), (8, 8), (5, 3), (64, 64), (1, 17)])
def test_pad_and_crop_keep_the_size(h: int, w: int) -> None:
    x = torch.rand(1, 3, h, w)
    padded, size = pad_to_multiple(x)
    assert size == (h, w)
    assert padded.shape[-2] % 4 == 0 and padded.shape[-1] % 4 == 0
    assert padded.shape[-2] >= 8 and padded.shape[-1] >= 8
    torch.testing.assert_close(padded[..., :h, :w], x)  # the photo itself is untouched
    net = TransformerNet(base_channels=4, num_residual_blocks=1).eval()
    assert stylize_tensor(net, x).shape == x.shape


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
    with pytest.raises(SystemExit):
        main([model_path, str(src), "-o", str(src)])
    assert src.read_bytes() == before
    out = tmp_path / "exists.png"
    out.write_bytes(b"keep me")
    with pytest.raises(SystemExit):
        main([model_path, str(src), "-o", str(out)])
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


def test_api_accepts_pil_paths_and_tensors(tmp_path, model_path) -> None:
    stylize = stylenet.load(model_path, device="cpu")
    src = photo(tmp_path / "p.jpg", size=(45, 30))
    from_path = stylize(src)
    from_pil = stylize(Image.open(src))
    assert from_path.size == from_pil.size == (45, 30)
    assert np.array_equal(np.asarray(from_path), np.asarray(from_pil))
    batch = torch.rand(2, 3, 30, 45)
    out = stylize(batch)
    assert out.shape == batch.shape and out.device == batch.device
    assert stylize(batch[0]).shape == (3, 30, 45)
    torch.testing.assert_close(stylize(batch, strength=0.0), batch)
    gray = torch.full((1, 3, 16, 16), 0.5)
    assert stylize(gray, preserve_color=True).std(dim=1).max() < 1e-3  # gray stays gray


def test_cli_stylizes_a_video_and_reports_flicker(tmp_path, model_path, capsys) -> None:
    from tests.test_video import make_video, read_video

    src = make_video(tmp_path / "clip.mp4", frames=8, width=48, height=32, fps=12)
    out = tmp_path / "styled.mp4"
    assert main([model_path, str(src), "-o", str(out), "-q"]) == 0
    frames, _, rate = read_video(out)
    assert frames.shape[0] == 8 and frames.shape[-2:] == (32, 48) and rate == 12
    assert "flicker" in capsys.readouterr().out


@pytest.mark.slow
def test_compiled_backend_matches_eager(model_path) -> None:
    x = torch.rand(1, 3, 36, 44)
    eager = stylenet.load(model_path, device="cpu")(x)
    compiled = stylenet.load(model_path, device="cpu", compile=True)
    assert compiled.backend.compiled
    torch.testing.assert_close(compiled(x), eager, atol=1e-4, rtol=0)


def test_cli_tiled_output_keeps_size_and_refuses_exports(tmp_path, model_path, capsys) -> None:
    src = photo(tmp_path / "big.png", size=(203, 150))
    out = tmp_path / "tiled.png"
    args = [str(src), "-o", str(out), "-q", "--tile", "64", "--overlap", "16"]
    assert main([model_path, *args]) == 0
    assert load_image(out).size == (203, 150)
    from stylenet.export import export_onnx
    from stylenet.model_file import load_model

    onnx_path = tmp_path / "m.onnx"
    export_onnx(load_model(model_path), onnx_path)
    assert main([str(onnx_path), *args[:2], str(tmp_path / "x.png"), *args[3:]]) == 2
    assert "--tile" in capsys.readouterr().err
