"""The default backend ("auto"): the fastest exact one for the device, chosen once, logged, and
the same for the CLI and the Python API; the ONNX conversion of a model file cached."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

import stylenet
from stylenet.cli.stylize import main as stylize_main
from stylenet.errors import ConfigError
from stylenet.inference import backends
from stylenet.inference.export import export_onnx
from stylenet.io.images import load_image, pil_to_tensor
from tests.helpers import photo, run_cli, save_tiny_model, save_tiny_multistyle_model


@pytest.fixture(autouse=True)
def default_backend(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No $STYLENET_BACKEND (the conftest pins eager for the other tests); a fresh cache."""
    monkeypatch.delenv(backends.BACKEND_ENV, raising=False)
    monkeypatch.setenv("STYLENET_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_choices() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    plain = {"precision": "fp32", "channels_last": False, "compile": False}
    assert backends.choose_backend("stylenet", cpu, **plain)[0] == "onnxruntime"
    assert backends.choose_backend("lightning", cpu, **plain)[0] == "onnxruntime"
    assert backends.choose_backend("stylenet", cuda, **plain)[0] == "eager"
    assert backends.choose_backend("torchscript", cpu, **plain)[0] == "torchscript"
    assert backends.choose_backend("onnx", cuda, **plain)[0] == "onnxruntime"
    for option in [{"precision": "bf16"}, {"channels_last": True}, {"compile": True}]:
        name, why = backends.choose_backend("stylenet", cpu, **{**plain, **option})
        assert name == "eager" and "eager PyTorch" in why


def test_a_model_file_runs_on_onnxruntime_on_the_cpu_with_eager_outputs(
    tmp_path: Path, default_backend: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, _ = save_tiny_model(tmp_path)
    with caplog.at_level(logging.INFO, logger="stylenet.inference.backends"):
        auto = stylenet.load(path, device="cpu")
    assert auto.backend.name == "onnxruntime"
    assert "backend onnxruntime (fastest exact on the CPU)" in caplog.text
    eager = stylenet.load(path, device="cpu", backend="eager")
    images = torch.rand(2, 3, 37, 50)
    torch.testing.assert_close(
        auto.stylize_batch(images), eager.stylize_batch(images), atol=1e-5, rtol=0
    )
    # Tiling still works: the converted backend keeps the network for it.
    assert auto.can_tile
    big = load_image(photo(tmp_path / "big.png", size=(150, 120)))
    tiled = auto(big, tile=64, overlap=16)
    want = eager(big, tile=64, overlap=16)
    assert (pil_to_tensor(tiled) - pil_to_tensor(want)).abs().max() <= 1 / 255 + 1e-6
    # The conversion is cached: a second load converts nothing.
    assert len(list((default_backend / "onnx").glob("*.onnx"))) == 1


def test_the_conversion_is_cached_and_a_damaged_cache_is_replaced(
    tmp_path: Path, default_backend: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = save_tiny_multistyle_model(tmp_path, ["a", "b"])
    conversions = 0
    convert = backends.onnx_model_proto

    def counting(net: torch.nn.Module, **kwargs: object) -> object:
        nonlocal conversions
        conversions += 1
        return convert(net, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(backends, "onnx_model_proto", counting)
    first = stylenet.load(path, device="cpu", style="a")
    other = first.with_style("b")  # another style: the same conversion (it takes style rows)
    images = torch.rand(1, 3, 24, 24)
    assert not torch.allclose(first.stylize_batch(images), other.stylize_batch(images))
    # Tiling runs the chosen style's network, as on eager.
    big = load_image(photo(tmp_path / "big.png", size=(150, 120)))
    want = stylenet.load(path, device="cpu", style="b", backend="eager")(big, tile=64)
    diff = pil_to_tensor(other(big, tile=64)) - pil_to_tensor(want)
    assert diff.abs().max() <= 1 / 255 + 1e-6
    assert conversions == 1
    (cached,) = (default_backend / "onnx").glob("*.onnx")
    cached.write_bytes(b"not an onnx model")
    again = stylenet.load(path, device="cpu", style="a")
    assert conversions == 2 and again.backend.name == "onnxruntime"
    torch.testing.assert_close(again.stylize_batch(images), first.stylize_batch(images))
    # A model file changed in place is converted again, not served from the old cache.
    save_tiny_model(tmp_path)
    stylenet.load(path, device="cpu")
    assert conversions == 3


def test_an_unwritable_cache_still_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = save_tiny_model(tmp_path)
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("")
    monkeypatch.setenv("STYLENET_CACHE", str(blocker))
    stylizer = stylenet.load(path, device="cpu")
    assert stylizer.backend.name == "onnxruntime"
    assert stylizer.stylize_batch(torch.rand(1, 3, 16, 16)).shape == (1, 3, 16, 16)


def test_exports_and_eager_only_options_keep_their_backend(tmp_path: Path) -> None:
    path, net = save_tiny_model(tmp_path)
    onnx = export_onnx(net, tmp_path / "m.onnx").path
    assert stylenet.load(onnx, device="cpu").backend.name == "onnxruntime"
    assert stylenet.load(path, device="cpu", precision="bf16").backend.name == "eager"
    assert stylenet.load(path, device="cpu", channels_last=True).backend.name == "eager"


def test_the_environment_and_the_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = save_tiny_model(tmp_path)
    monkeypatch.setenv(backends.BACKEND_ENV, "torchscript")
    assert stylenet.load(path, device="cpu").backend.name == "torchscript"
    onnx = export_onnx(save_tiny_model(tmp_path / "o")[1], tmp_path / "m.onnx").path
    assert stylenet.load(onnx, device="cpu").backend.name == "onnxruntime"  # its own, always
    assert stylenet.load(path, device="cpu", backend="auto").backend.name == "onnxruntime"
    monkeypatch.setenv(backends.BACKEND_ENV, "tensorrt")
    with pytest.raises(ConfigError, match=r"\$STYLENET_BACKEND must be one of"):
        stylenet.load(path, device="cpu")
    monkeypatch.delenv(backends.BACKEND_ENV)
    src = photo(tmp_path / "p.png")
    rc, out, _ = run_cli(stylize_main, [str(path), str(src), "-o", str(tmp_path / "o.png")])
    assert rc == 0 and "on onnxruntime/cpu" in out
    rc, out, _ = run_cli(
        stylize_main, [str(path), str(src), "-o", str(tmp_path / "e.png"), "--backend", "eager"]
    )
    assert rc == 0 and "on eager/cpu" in out
    got, want = (pil_to_tensor(load_image(tmp_path / n)) for n in ("o.png", "e.png"))
    assert (got - want).abs().max() <= 1 / 255 + 1e-6
