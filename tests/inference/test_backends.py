"""Backends: every model format detected by content and run through one contract (style and
super-resolution models); options checked against what the file and device can do; bad files
get clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from stylenet.errors import ConfigError
from stylenet.inference.backends import load_backend, resolve_device
from stylenet.inference.export import export_onnx, export_torchscript
from stylenet.inference.model_card import ModelCard, card_for
from stylenet.inference.model_file import ModelFileError
from stylenet.models import PadCrop, SuperResolutionNet
from tests.helpers import save_tiny_sr_model, tiny_net

TOL = 1e-4


@torch.inference_mode()
def eager(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
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


# --- super-resolution models: outputs ×scale, no styles -------------------------------------


@pytest.fixture(scope="module")
def sr_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny ×4 model as model.pt, a Lightning checkpoint and both exports."""
    folder = tmp_path_factory.mktemp("sr")
    path, net = save_tiny_sr_model(folder)
    card = card_for(net, ModelCard(network="", task="superres"))
    ckpt = folder / "last.ckpt"
    state = {"net." + k: v for k, v in net.state_dict().items()}
    torch.save({"state_dict": state, "global_step": 3, "stylenet": {"card": card.to_dict()}}, ckpt)
    ts, onnx = folder / "m.torchscript.pt", folder / "m.onnx"
    export_torchscript(net, ts, card=card)
    export_onnx(net, onnx, card=card)
    return {"net": net, "model": path, "ckpt": ckpt, "torchscript": ts, "onnx": onnx}


def test_a_superres_model_runs_on_every_backend_and_format(sr_files) -> None:
    x = torch.rand(2, 3, 13, 22)
    ref = eager(sr_files["net"], x)
    assert ref.shape == (2, 3, 52, 88)
    runs = [(sr_files[key], None) for key in ("model", "ckpt", "torchscript", "onnx")]
    runs += [(sr_files["model"], name) for name in ("torchscript", "onnxruntime")]
    runs.append((sr_files["ckpt"], "onnxruntime"))
    for file, name in runs:
        backend = load_backend(file, device="cpu", backend=name)
        assert (backend.task, backend.scale, backend.styles) == ("superres", 4, []), file
        y = backend(x)
        assert y.shape == ref.shape and float((y - ref).abs().max()) <= TOL, (file, name)
    eager_backend = load_backend(sr_files["model"], device="cpu")
    assert isinstance(eager_backend.net, SuperResolutionNet)
    y = load_backend(sr_files["model"], device="cpu", precision="bf16", channels_last=True)(x)
    assert y.shape == ref.shape and float((y - ref).abs().mean()) < 0.01


def test_a_superres_model_has_no_styles(sr_files) -> None:
    for file in (sr_files["model"], sr_files["onnx"]):
        load_backend(file, device="cpu", style=0)  # any model's first style: the model itself
        for choice in ({"style": "mosaic"}, {"style": 1}, {"mix": {"a": 1.0}}):
            with pytest.raises(ConfigError) as err:
                load_backend(file, device="cpu", **choice)
            assert str(err.value) == (
                f"{file} is a ×4 super-resolution model: a super-resolution model has no styles"
            )
