"""Tests for stylenet.io.images: every file mode ends up as upright 8-bit RGB, I/O fails loudly."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from stylenet.io.images import (
    IMAGE_EXTENSIONS,
    ImageReadError,
    find_images,
    fit_long_side,
    float_to_uint8,
    image_size,
    load_image,
    load_image_tensor,
    make_grid,
    pil_to_tensor,
    save_image,
    tensor_to_pil,
    uint8_to_float,
)


def _rgb_array(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _assert_rgb8(img: Image.Image, size: tuple[int, int]) -> np.ndarray:
    assert img.mode == "RGB"
    assert img.size == size
    a = np.asarray(img)
    assert a.dtype == np.uint8
    return a


# --- load_image: modes ------------------------------------------------------------------------


def test_cmyk_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 8), (0, 255, 255, 0)).save(path, quality=95)
    assert Image.open(path).mode == "CMYK"

    a = _assert_rgb8(load_image(path), (16, 8))
    r, g, b = a[4, 8].astype(int)
    assert r > 200 and g < 50 and b < 50  # pure red, not inverted


def test_16bit_grayscale_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    path = tmp_path / "gray16.png"
    gradient = np.tile(np.linspace(0, 65535, 257).round().astype(np.uint16), (4, 1))
    Image.fromarray(gradient).save(path)
    assert Image.open(path).mode == "I;16"

    a = _assert_rgb8(load_image(path), (257, 4))
    assert a[0, 0].tolist() == [0, 0, 0]
    assert a[0, -1].tolist() == [255, 255, 255]
    # Plain convert("RGB") clips everything above 255 to white; scaled, the middle is mid-grey.
    assert abs(int(a[0, 128, 0]) - 128) <= 1
    assert np.all(np.diff(a[0, :, 0].astype(int)) >= 0)


def test_16bit_big_endian_and_32bit_int(tmp_path: Path) -> None:
    big = Image.fromarray(np.full((2, 3), 32896, dtype=">u2"))  # 32896 = 128 * 257
    assert big.mode == "I;16B"
    assert pil_to_tensor(big).mul(255).round().unique().tolist() == [128.0]

    # Pillow opens 16-bit PGM as mode "I".
    path = tmp_path / "gray16.pgm"
    Image.fromarray(np.array([[0, 32896, 65535]], dtype=np.uint16)).save(path)
    assert Image.open(path).mode == "I"
    assert np.asarray(load_image(path))[0, :, 1].tolist() == [0, 128, 255]


def test_float_image(tmp_path: Path) -> None:
    path = tmp_path / "float.tif"
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), mode="F").save(path)
    assert Image.open(path).mode == "F"
    assert np.asarray(load_image(path))[0, :, 0].tolist() == [0, 128, 255]


def test_rgba_composited_over_white(tmp_path: Path) -> None:
    path = tmp_path / "rgba.png"
    a = np.zeros((2, 3, 4), dtype=np.uint8)  # transparent black everywhere
    a[0, 0] = (255, 0, 0, 255)  # opaque red
    a[0, 1] = (0, 0, 0, 128)  # half-transparent black
    Image.fromarray(a, mode="RGBA").save(path)

    out = _assert_rgb8(load_image(path), (3, 2))
    assert out[0, 0].tolist() == [255, 0, 0]
    assert all(abs(v - 127) <= 1 for v in out[0, 1].tolist())
    assert out[1, 2].tolist() == [255, 255, 255]


def test_palette_with_transparency(tmp_path: Path) -> None:
    path = tmp_path / "pal.png"
    img = Image.new("P", (4, 2), 1)
    img.putpalette([0, 0, 0, 0, 0, 255] + [0] * (254 * 3))  # 0: black, 1: blue
    img.putpixel((0, 0), 0)
    img.info["transparency"] = 0
    img.save(path, transparency=0)
    reread = Image.open(path)
    assert reread.mode == "P" and "transparency" in reread.info

    out = _assert_rgb8(load_image(path), (4, 2))
    assert out[0, 0].tolist() == [255, 255, 255]  # transparent index -> white, not black
    assert out[1, 3].tolist() == [0, 0, 255]


def test_palette_without_transparency_gif(tmp_path: Path) -> None:
    path = tmp_path / "pal.gif"
    Image.new("RGB", (5, 3), (0, 255, 0)).convert("P").save(path)
    assert _assert_rgb8(load_image(path), (5, 3))[1, 1].tolist() == [0, 255, 0]


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("L", 77, [77, 77, 77]),
        ("LA", (77, 255), [77, 77, 77]),
        ("LA", (0, 0), [255, 255, 255]),
        ("1", 1, [255, 255, 255]),
        ("RGB", (1, 2, 3), [1, 2, 3]),
    ],
)
def test_simple_modes(tmp_path: Path, mode: str, value, expected: list[int]) -> None:
    path = tmp_path / f"{mode}.png"
    Image.new(mode, (3, 2), value).save(path)
    assert Image.open(path).mode == mode
    assert _assert_rgb8(load_image(path), (3, 2))[1, 2].tolist() == expected


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_orientation_applied(tmp_path: Path, orientation: int) -> None:
    # Stored 40 x 20, with a red block at the stored top-left corner.
    a = np.full((20, 40, 3), 255, dtype=np.uint8)
    a[:6, :6] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"rot{orientation}.jpg"
    Image.fromarray(a).save(path, exif=exif, quality=95)

    out = _assert_rgb8(load_image(path), (20, 40))  # W and H swapped
    # 6 = "rotate 90° clockwise to display": the stored top-left goes to the top-right.
    # 8 = "rotate 90° counter-clockwise": it goes to the bottom-left.
    y, x = (2, 17) if orientation == 6 else (37, 2)
    r, g, b = out[y, x].astype(int)
    assert r > 200 and g < 60 and b < 60
    r, g, b = out[20, 10].astype(int)
    assert min(r, g, b) > 200
    assert image_size(path) == (20, 40)  # the header alone says the same


# --- load_image: failures ---------------------------------------------------------------------


def _jpeg_bytes(h: int = 64, w: int = 64) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_rgb_array(h, w)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("truncated.jpg", None, "truncated"),
        ("empty.jpg", b"", "empty"),
        ("text.jpg", b"this is not an image\n" * 10, "not an image"),
    ],
)
def test_unreadable_files_raise_image_read_error(
    tmp_path: Path, name: str, content: bytes | None, reason: str
) -> None:
    if content is None:
        data = _jpeg_bytes()
        content = data[: len(data) // 2]
    path = tmp_path / name
    path.write_bytes(content)
    before = ImageFile.LOAD_TRUNCATED_IMAGES

    with pytest.raises(ImageReadError) as info:
        load_image(path)
    assert info.value.path == path
    assert str(path) in str(info.value)
    assert reason in str(info.value).lower()
    assert before == ImageFile.LOAD_TRUNCATED_IMAGES
    if reason != "truncated":  # the header of a truncated file is whole
        with pytest.raises(ImageReadError, match=reason):
            image_size(path)


def test_image_size_reads_only_the_header(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (3000, 2000)).save(path)
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("decoded"))
    assert image_size(path) == (3000, 2000)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="no such file") as info:
        load_image(tmp_path / "nope.png")
    assert "nope.png" in str(info.value)


def test_decompression_bomb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (100, 100)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 10k pixels > 2 * limit -> error
    with pytest.raises(ImageReadError, match="decompression bomb"):
        load_image(path)


def test_image_read_error_pickles() -> None:
    # DataLoader workers send exceptions to the main process by pickling them.
    err = pickle.loads(pickle.dumps(ImageReadError("/x/y.jpg", "truncated")))
    assert err.path == Path("/x/y.jpg") and err.reason == "truncated"
    assert "/x/y.jpg" in str(err)


# --- tensors ----------------------------------------------------------------------------------


def test_pil_tensor_round_trip() -> None:
    img = Image.fromarray(_rgb_array(7, 5))
    t = pil_to_tensor(img)
    assert t.shape == (3, 7, 5) and t.dtype == torch.float32
    assert t.min() >= 0.0 and t.max() <= 1.0
    back = tensor_to_pil(t)
    assert back.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(back), np.asarray(img))
    np.testing.assert_array_equal(np.asarray(tensor_to_pil(t.unsqueeze(0))), np.asarray(img))


def test_tensor_to_pil_clamps_and_rounds() -> None:
    t = torch.tensor([-1.0, 0.5, 2.0, float("nan")]).view(1, 1, 4).expand(3, 1, 4)
    assert np.asarray(tensor_to_pil(t))[0, :, 0].tolist() == [0, 128, 255, 0]
    assert t[0, 0, 0] == -1.0  # input untouched
    with pytest.raises(ValueError):
        tensor_to_pil(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError):
        tensor_to_pil(torch.zeros(1, 4, 4))


def test_uint8_float_conversions_round_trip_batches_on_any_layout() -> None:
    pixels = np.stack([_rgb_array(6, 9, seed=1), _rgb_array(6, 9, seed=2)])  # (2, H, W, 3)
    images = uint8_to_float(pixels[:, :, ::2])  # a non-contiguous view
    assert images.shape == (2, 3, 6, 5) and images.dtype == torch.float32
    np.testing.assert_array_equal(float_to_uint8(images), pixels[:, :, ::2])
    x = torch.tensor([-0.5, 0.2, 1.5, float("nan")]).view(1, 1, 4).expand(3, 1, 4)
    assert float_to_uint8(x)[0, :, 0].tolist() == [0, 51, 255, 0]
    assert x[0, 0, 0] == -0.5  # input untouched
    with pytest.raises(ValueError, match="uint8"):
        uint8_to_float(pixels.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, H, W\)"):
        float_to_uint8(torch.zeros(4, 4))


def test_load_image_tensor_resizes_long_side(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    Image.fromarray(_rgb_array(50, 200)).save(path)
    assert load_image_tensor(path).shape == (3, 50, 200)
    t = load_image_tensor(path, size=64)
    assert t.shape == (3, 16, 64)
    assert t.min() >= 0.0 and t.max() <= 1.0
    assert load_image_tensor(path, size=400).shape == (3, 100, 400)
    for size in (64, 77, 400):  # fit_long_side predicts it, (W, H)
        w, h = fit_long_side((200, 50), size)
        assert load_image_tensor(path, size=size).shape == (3, h, w)


def test_make_grid() -> None:
    a, b = torch.zeros(3, 8, 10), torch.ones(3, 8, 10)
    grid = make_grid([(a, b), (a, b), (a, b)], padding=2)
    assert grid.shape == (3, 3 * 8 + 4 * 2, 2 * 10 + 3 * 2)
    with pytest.raises(ValueError):
        make_grid([(a, torch.zeros(3, 8, 9))])
    with pytest.raises(ValueError):
        make_grid([(a, b), (a,)])


# --- save_image -------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".JPEG", ".webp", ".bmp", ".tif"])
def test_save_image_formats(tmp_path: Path, suffix: str) -> None:
    t = torch.rand(3, 12, 16)
    path = save_image(t, tmp_path / "out" / "deep" / f"img{suffix}")
    assert path.exists() and path.parent.name == "deep"
    back = load_image_tensor(path)
    assert back.shape == (3, 12, 16)
    if suffix in (".png", ".bmp", ".tif"):
        torch.testing.assert_close(back, t, atol=0.5 / 255 + 1e-6, rtol=0)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp file left


def test_save_image_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    save_image(torch.zeros(3, 4, 4), path)
    with pytest.raises(FileExistsError, match=r"x\.png"):
        save_image(torch.ones(3, 4, 4), path)
    assert np.asarray(Image.open(path)).max() == 0  # untouched

    save_image(torch.ones(1, 3, 4, 4), path, overwrite=True)
    assert np.asarray(Image.open(path)).min() == 255
    assert os.listdir(tmp_path) == ["x.png"]


def test_save_image_pil_and_bad_extension(tmp_path: Path) -> None:
    img = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    # JPEG cannot store alpha; it is composited as on load (white).
    path = save_image(img, tmp_path / "a.jpg")
    assert min(np.asarray(Image.open(path))[2, 2].tolist()) > 240
    with pytest.raises(ValueError, match="format"):
        save_image(img, tmp_path / "a.unknown")
    assert not (tmp_path / "a.unknown").exists()


# --- find_images ------------------------------------------------------------------------------


def _touch_image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4)).save(path, format="PNG")
    return path


def test_find_images_recursive_sorted_hidden_skipped(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    expected = [
        _touch_image(root / "a.jpg"),
        _touch_image(root / "b.PNG"),
        _touch_image(root / "sub" / "deeper" / "c.webp"),
        _touch_image(root / "sub" / "d.JPeG"),
    ]
    _touch_image(root / ".hidden.jpg")
    _touch_image(root / ".cache" / "e.jpg")
    _touch_image(root / "sub" / ".git" / "f.png")
    (root / "notes.txt").write_text("not an image")
    (root / "noext").write_bytes(b"")
    (root / "dir.jpg").mkdir()

    assert find_images(root) == sorted(expected)
    assert find_images(str(root), recursive=False) == sorted(expected[:2])


def test_find_images_follows_symlinks_without_looping(tmp_path: Path) -> None:
    root = tmp_path / "root"
    img = _touch_image(root / "sub" / "a.png")
    (root / "sub" / "loop").symlink_to(root, target_is_directory=True)
    assert find_images(root) == [img]


def test_find_images_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing"):
        find_images(tmp_path / "missing")
    single = _touch_image(tmp_path / "one.jpg")
    assert find_images(single) == [single]
    other = tmp_path / "x.txt"
    other.write_text("x")
    with pytest.raises(ValueError, match=r"x\.txt"):
        find_images(other)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert find_images(empty) == []


def test_image_extensions_are_lowercase_with_dot() -> None:
    assert {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm"} <= IMAGE_EXTENSIONS
    assert all(e.startswith(".") and e == e.lower() for e in IMAGE_EXTENSIONS)
