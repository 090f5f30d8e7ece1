"""Fixtures for the inference tests: a small model file, and its exports written once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from stylenet.inference.export import export_onnx, export_torchscript
from stylenet.inference.model_card import ModelCard, StyleRecord
from stylenet.models import TransformerNet
from tests.helpers import save_tiny_model


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # Tiny tensors gain nothing from threads, and on a busy 2-core machine OpenMP barriers
    # under oversubscription made the many small forward passes here ~100× slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="package")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TransformerNet]:
    return save_tiny_model(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="package")
def exported(model: tuple[Path, TransformerNet]) -> dict[str, Path]:
    """Both formats exported once (verified), next to model.pt."""
    path, net = model
    files = {
        "torchscript": path.with_name("model.torchscript.pt"),
        "onnx": path.with_name("model.onnx"),
    }
    card = ModelCard(network="", styles=(StyleRecord("x"),))
    export_torchscript(net, files["torchscript"], card=card)
    export_onnx(net, files["onnx"], card=card)
    return files
