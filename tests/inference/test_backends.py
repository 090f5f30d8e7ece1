"""Backends: every model format detected by content and run through one contract; options
checked against what the file and device can do; bad files get clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from stylenet.inference.backends import load_backend, resolve_device
from stylenet.inference.model_file import ModelFileError
from stylenet.models import PadCrop, TransformerNet
from tests.helpers import tiny_net

TOL = 1e-4


@torch.inference_mode()
def eager(net: TransformerNet, x: torch.Tensor) -> torch.Tensor:
    return PadCrop(net)(x)


def test_load_backend_detects_every_format_by_content(exported, model, tmp_path: Path) -> None:
    path, net = model
    ckpt = tmp_path / "last.ckpt"
    torch.save(
        {
            "state_dict": {"net." + k: v for k, v in net.state_dict().items()},
            "global_step": 7,
            "stylenet": {"config": net.config.to_dict(), "style_image": "x.jpg"},
        },
        ckpt,
    )
    # Misleading names: detection must read the content.
    ts_renamed = shutil.copy(exported["torchscript"], tmp_path / "exported.onnx")
    onnx_renamed = shutil.copy(exported["onnx"], tmp_path / "exported.pt")
    expected = [
        (path, "stylenet", "eager"),
        (ckpt, "lightning", "eager"),
        (exported["torchscript"], "torchscript", "torchscript"),
        (exported["onnx"], "onnx", "onnxruntime"),
        (ts_renamed, "torchscript", "torchscript"),
        (onnx_renamed, "onnx", "onnxruntime"),
    ]
    x = torch.rand(2, 3, 45, 31)
    ref = eager(net, x)
    for file, fmt, name in expected:
        backend = load_backend(file, device="cpu")
        assert (backend.format, backend.name) == (fmt, name), file
        y = backend(x)
        assert y.dtype == torch.float32 and y.device.type == "cpu" and y.shape == x.shape
        assert float((y - ref).abs().max()) <= TOL, file


def test_a_model_file_runs_on_every_backend(model) -> None:
    path, net = model
    x = torch.rand(1, 3, 19, 26)
    ref = eager(net, x)
    for name in ("eager", "torchscript", "onnxruntime"):
        backend = load_backend(path, device="cpu", backend=name)
        assert backend.name == name
        assert float((backend(x) - ref).abs().max()) <= TOL


def test_backend_options(model, exported) -> None:
    path, net = model
    x = torch.rand(1, 3, 21, 30)
    ref = eager(net, x)
    y = load_backend(path, device="cpu", channels_last=True)(x)
    assert float((y - ref).abs().max()) <= TOL
    for file in (path, exported["torchscript"]):
        y = load_backend(file, device="cpu", precision="bf16")(x.double())
        assert y.dtype == torch.float32 and float((y - ref).abs().max()) < 0.05
    with pytest.raises(ValueError, match="fp16"):
        load_backend(path, device="cpu", precision="fp16")
    with pytest.raises(ValueError, match="fp32"):
        load_backend(exported["onnx"], device="cpu", precision="bf16")
    with pytest.raises(ValueError, match="channels_last"):
        load_backend(exported["onnx"], device="cpu", channels_last=True)
    with pytest.raises(ValueError, match="onnxruntime"):
        load_backend(exported["onnx"], device="cpu", backend="eager")
    with pytest.raises(ValueError, match="backend"):
        load_backend(path, device="cpu", backend="tensorflow")
    backend = load_backend(path, device="cpu")
    with pytest.raises(ValueError, match="B, 3, H, W"):
        backend(torch.rand(3, 8, 8))
    with pytest.raises(TypeError):
        backend(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None).type in ("cuda", "mps", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            resolve_device("cuda")


def _bad_files(root: Path) -> dict[str, Path]:
    root.mkdir(exist_ok=True)
    (root / "folder").mkdir(exist_ok=True)
    (root / "random.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    (root / "notes.pt").write_text("this is a text file, not a model\n")
    (root / "config.json").write_text('{"base_channels": 8}')
    (root / "garbage.onnx").write_bytes(np.random.default_rng(1).bytes(2048))
    torch.save(tiny_net().state_dict(), root / "state_dict.pt")
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, root / "vgg16.pt")
    return {
        "missing": root / "missing.pt",
        "directory": root / "folder",
        "random": root / "random.pt",
        "text": root / "notes.pt",
        "json": root / "config.json",
        "garbage_onnx": root / "garbage.onnx",
        "state_dict": root / "state_dict.pt",
        "vgg": root / "vgg16.pt",
    }


@pytest.mark.parametrize(
    "kind",
    ["missing", "directory", "random", "text", "json", "garbage_onnx", "state_dict", "vgg"],
)
def test_bad_files_get_clear_errors(kind: str, tmp_path: Path) -> None:
    path = _bad_files(tmp_path / "bad")[kind]
    with pytest.raises(ModelFileError, match=path.name):
        load_backend(path, device="cpu")
