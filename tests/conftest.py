"""Shared fixtures: offline settings, real VGG weights, tiny photo folders, composed configs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from stylenet.io.samples import package_photos, stained_glass
from tests.helpers import SHARED, ComposeTrain, save_tiny_model

pytest_plugins = ["tests.vgg_files"]

SHARED_VGG16 = SHARED / "vgg16_features_imagenet.safetensors"
SHARED_VGG19 = SHARED / "vgg19_features_imagenet_keras_kmeans256_fp16.safetensors"

# Tests never reach the network: W&B writes offline runs, torch hub has nowhere to download from.
os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")
os.environ["HYDRA_FULL_ERROR"] = "1"
if not os.environ.get("STYLENET_VGG16_WEIGHTS") and SHARED_VGG16.is_file():
    os.environ["STYLENET_VGG16_WEIGHTS"] = str(SHARED_VGG16)
if not os.environ.get("STYLENET_VGG19_WEIGHTS") and SHARED_VGG19.is_file():
    os.environ["STYLENET_VGG19_WEIGHTS"] = str(SHARED_VGG19)

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def vgg16_weights() -> str:
    """Path of the real ImageNet VGG-16 weights; tests that claim quality need them."""
    path = os.environ.get("STYLENET_VGG16_WEIGHTS")
    if not path or not Path(path).is_file():
        pytest.skip("real VGG-16 weights not available: set STYLENET_VGG16_WEIGHTS")
    return path


@pytest.fixture(scope="session")
def vgg19_weights() -> str:
    """Path of the real (8-bit-quantized, Caffe-convention) VGG-19 weights, if available."""
    path = os.environ.get("STYLENET_VGG19_WEIGHTS")
    if not path or not Path(path).is_file():
        pytest.skip("real VGG-19 weights not available: set STYLENET_VGG19_WEIGHTS")
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
